"""Reading the console's screen as text, fed fixed data at a frozen time (for the tests)."""

from __future__ import annotations

import io
import math
from typing import Any

from rich.console import Console
from textual.pilot import Pilot

from console.tui.app import PilothouseApp
from tests.tui.fixed import NOW, RUNS, FixedSource

QUOTED = ["sh", "-c", 'ph-ask exec --title "run the test suite" -- rm -rf ./build']
LONG = ["python", "-m", "pytest", "-q", "tests/integration/test_checkout_flow.py",
        "--maxfail=1", "--durations=20", "-k", "not slow and not network"]


def app_with(**data: Any) -> PilothouseApp:
    return PilothouseApp(source=FixedSource(**data), clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


def screen_text(app: PilothouseApp) -> str:
    """The whole screen as a person reads it (every layer, no colour)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)
    update = app.screen._compositor.render_update(  # noqa: SLF001 - what the terminal gets
        full=True, screen_stack=app._background_screens)  # noqa: SLF001
    console.print(update)
    return console.export_text()


def toast(app: PilothouseApp, start: str, sep: str = " ") -> str:
    """The shown toast whose text (its lines joined by `sep`, blanks folded) starts with `start`,
    or "". Joined with "", a word the toast wrapped reads whole."""
    said = [sep.join(str(t.render().plain).split()) for t in app.screen.query("Toast")]
    return next((s for s in said if s.startswith(start)), "")


def line_with(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "")


async def until(pilot: Pilot[Any], test: Any, what: str, tries: int = 200) -> Any:
    for _ in range(tries):
        value = test()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen_text(pilot.app)}")


async def attached(pilot: Pilot[Any]) -> PilothouseApp:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    await until(pilot, lambda: app.state.connected, "the console to attach")
    await pilot.pause()  # what the source sent with the attach (its events) handled too
    return app


def more_runs() -> list[dict[str, Any]]:
    ended = [{**RUNS[2], "id": f"e{i}aa", "started_at": NOW - 5000 - i, "command": ["true"],
              "state": "exited", "exit_code": 0} for i in range(5)]
    killed = {**RUNS[2], "id": "kl9x", "state": "killed", "exit_code": -9, "command": ["sleep", "300"],
              "started_at": NOW - 3000, "ended_at": NOW - 2900}
    stopped = {**RUNS[2], "id": "st1p", "state": "stopped", "exit_code": 143, "command": LONG,
               "started_at": NOW - 2000, "ended_at": NOW - 1900}
    quoted = {**RUNS[0], "id": "qu0t", "command": QUOTED, "started_at": NOW - 10}
    return [*RUNS, *ended, killed, stopped, quoted]


async def settled(pilot: Pilot[Any], rounds: int = 3) -> None:
    """What the keys and events so far set off has been handled: every message queued, and
    the first step of the workers they started (a decision's call to the source), as Textual's
    pilot judges it (the screen's queues emptied, then a 20 ms look in which the process did no
    work), `rounds` times over. The console decides nothing on a timer, only from a handler or
    a worker, so a decision a key would make has been asked for by then: a check that nothing
    was decided waits for this, not for a fixed time."""
    for _ in range(rounds):
        await pilot.pause()


async def card_drawn(pilot: Pilot[Any]) -> Any:
    """The approval card on the screen, drawn holding its request and every row of it drawn
    (what y checks before it allows): keys typed from now on are about what it shows."""
    from console.tui.screens.approval import ApprovalScreen
    from widgets.panels import ApprovalCard

    app = pilot.app

    def drawn() -> Any:
        screen = app.screen
        if not isinstance(screen, ApprovalScreen):
            return None
        card = screen.query_one(ApprovalCard)
        seen = screen._seen.first_unseen((card.holds, card.size.width), card.size.height)  # noqa: SLF001
        return card.holds is not None and card.drawn == card.holds and seen is None and card

    return await until(pilot, drawn, "the card drawn, all of its request on the screen", tries=1500)


async def row_drawn(pilot: Pilot[Any], inbox: Any) -> None:
    """The inbox's selected row drawn holding the request it shows (what y on it checks)."""
    await pilot.pause()
    await until(pilot, lambda: (key := inbox.selected_key()) is not None
                and inbox._drawn == inbox._held(key), "the inbox row drawn", tries=1500)  # noqa: SLF001


async def palette_ready(pilot: Pilot[Any], hit: str) -> None:
    """The command palette's hits for what was typed are all in (its search done), one of
    them reads `hit` and one is highlighted, then drawn: what enter would choose is on the
    screen."""
    from textual.command import CommandList, CommandPalette

    app = pilot.app

    def ready() -> bool:
        palette = app.screen
        if not isinstance(palette, CommandPalette):
            return False
        if any(w.node is palette and w.group == palette._GATHER_COMMANDS_GROUP  # noqa: SLF001
               and not w.is_finished for w in app.workers):
            return False
        hits = palette.query_one(CommandList)
        return hits.highlighted is not None and any(
            hit.lower() in str(option.prompt).lower() for option in hits.options)

    await until(pilot, ready, f"the palette's hit {hit!r}", tries=1500)
    await pilot.pause()


async def dialog_drawn(pilot: Pilot[Any]) -> None:
    """The dialog on the screen (a confirmation, a prompt) drawn with all of its question (what
    its yes checks before it answers)."""
    from console.tui.seen import SeenStatic

    app = pilot.app

    def drawn() -> bool:
        seen = getattr(app.screen, "_seen", None)
        shown = app.screen.query(SeenStatic)
        if seen is None or seen.since == math.inf or not shown:
            return False
        return seen.first_unseen(shown.first().size.width, shown.first().size.height) is None

    await until(pilot, drawn, "the dialog drawn, all of its question on the screen", tries=1500)


async def shows(pilot: Pilot[Any], needle: str) -> str:
    """The screen's text once it shows `needle` (30 s deadline): what the next check reads is
    drawn, however long the drawing took."""
    app = pilot.app
    return await until(pilot, lambda: needle in (text := screen_text(app)) and text,
                       f"{needle!r} on the screen", tries=1500)
