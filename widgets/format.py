"""Formatting shared by the widgets: times, sizes, and text that came from a sandbox.

Anything that came from an agent is untrusted: it is made printable (no terminal escapes) and
always handed to Rich as `Text`, never as markup.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from console.protocol import LIVE_STATES
from console.text import (  # noqa: F401 - one set of formats and wordings, CLI and widgets
    clock,
    duration,
    printable,
    provenance_text,
    size,
)

DECISION_STYLES = {
    "allow": "bold green",
    "allowed": "bold green",
    "deny": "bold red",
    "denied": "bold red",
    "reject": "bold red",
    "forbid": "bold red",
    "ask": "bold yellow",
    "timeout": "bold red",
    "pending": "bold yellow",
}
STATE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "exited": "dim",
    "failed": "bold red",
    "killed": "red",
    "stopped": "dim",
    "lost": "bold red",
}
# Without colour (NO_COLOR), red on dark turns into dark grey on dark grey: the words that
# matter get styles that need no colour.
MONO_STYLES = {
    "bold green": "bold", "bold red": "bold reverse", "bold yellow": "bold underline",
    "green": "", "yellow": "", "red": "bold", "dim": "dim",
    "bold red reverse": "bold reverse", "bold reverse green": "bold reverse",
    "bold reverse yellow": "bold reverse",
}
_monochrome = False


def use_monochrome(on: bool) -> None:
    """Called once by the app when NO_COLOR is set."""
    global _monochrome
    _monochrome = on


def style(name: str) -> str:
    return MONO_STYLES.get(name, name) if _monochrome else name


def safe(text: Any, style: str = "", limit: int | None = None) -> Text:
    """Untrusted text as a Rich Text (never parsed as markup)."""
    return Text(printable(text, limit), style=style, no_wrap=True, overflow="ellipsis")


def live_first(run: dict[str, Any]) -> tuple[int, float, str]:
    """The runs' order everywhere: live runs first, newest first within each group; the id
    breaks ties, so every console lists the same runs in the same order."""
    return (0 if run.get("state") in LIVE_STATES else 1, -float(run.get("started_at") or 0),
            str(run.get("id")))


def decision_text(word: str | None) -> Text:
    """A decision as a word (colour is only a second cue)."""
    w = (word or "-").lower()
    return Text(w.upper() if w != "-" else "-", style=style(DECISION_STYLES.get(w, "")))


def state_text(state: str | None, exit_code: int | None = None) -> Text:
    s = state or "-"
    label = s if exit_code is None or s in LIVE_STATES else f"{s} ({exit_code})"
    return Text(label, style=style(STATE_STYLES.get(s, "")))


def run_state_text(run: dict[str, Any]) -> Text:
    """A run's state, marked `(!)` where its stored row is not what its recorded events say
    (runs.list's `warning`: an edited file; `ps --all` marks it the same way)."""
    text = state_text(run.get("state"), run.get("exit_code"))
    if not run.get("warning"):
        return text
    marked = Text("(!) ", style=style("bold red"))  # first: a narrow column cuts the end
    marked.append_text(text)
    return marked


def backend_text(backend: str | None) -> Text:
    if backend == "none":
        return Text("UNSANDBOXED", style=style("bold red reverse"))
    return Text(backend or "-")


def decision_of(event: dict[str, Any]) -> str | None:
    """The decision an event records, whichever field its kind uses."""
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    if not isinstance(data, dict):
        return None
    for key in ("decision", "action"):
        value = data.get(key)
        if isinstance(value, str):
            return value
    if isinstance(data.get("allow"), bool):
        return "allow" if data["allow"] else "deny"
    return None

