"""Command palette providers (`:` or ctrl+p): start, open and stop runs, decide the oldest
approval, go to a screen."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from rich.cells import cell_len
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from console.text import names_letters
from console.tui.state import LIVE_STATES
from widgets.format import printable
from widgets.tables import command_line, summary

if TYPE_CHECKING:
    from console.tui.app import PilothouseApp


class ListedCommands(Provider):
    """A provider whose commands are a list of (title, help, callback).

    Textual reads a hit's help, and a title given as a string, as markup; the help holds an
    agent's command (the oldest request, a run's command line), so both go as plain Content.
    Titles hold run ids, and an ended run's id is what the history file holds (an edited row's
    `[/]` failed every search of the palette): the fuzzy highlight, which reads its string as
    markup, gets the title escaped."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(Content(title), callback, text=title,
                               help=cast(str, Content(help_text)))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(escape(title)), callback, text=title,
                          help=cast(str, Content(help_text)))


class StartRunCommands(ListedCommands):
    """"Start run: demo", one per profile in force."""

    async def startup(self) -> None:
        app = cast("PilothouseApp", self.app)
        self._profiles: list[dict[str, Any]] = list(app.state.profiles)
        if not self._profiles:
            try:
                self._profiles = await app.source.call("profiles")
            except Exception:  # not attached: the palette shows nothing to start
                self._profiles = []

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = cast("PilothouseApp", self.app)
        out = []
        for p in self._profiles:
            name = printable(p.get("name"))
            help_text = printable(p.get("description") or " ".join(p.get("command") or []), 80)
            out.append((f"Start run: {name}", help_text, partial(app.start_run, name)))
        out.append(("Start run...", "pick a profile, a workspace and a command", app.action_start_run))
        return out



class ScreenCommands(ListedCommands):
    """Go to a screen, open the oldest approval, toggle notifications."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = cast("PilothouseApp", self.app)
        return [
            ("Dashboard", "runs, approvals, network, GPU", app.action_dashboard),
            ("History", "search and export the recorded history", app.action_history),
            ("Policy", "the rules in force; test a command or a host", app.action_policy),
            ("GPU", "power, use and memory per GPU; tokens/s, J/token and cost per agent",
             app.action_gpu),
            ("Workload benchmark", "replay sweeps: tok/s per GPU against tok/s per user, TTFT, "
             "J/token, $/Mtok per step", app.action_bench),
            ("Toggle desktop notifications", "OSC 9 / OSC 777 on a new approval",
             app.action_toggle_notify),
            ("Keys", "the keys of this screen", app.action_help),
        ]


class RunCommands(ListedCommands):
    """"Open run k3mx" for every run shown; "Stop run"/"Kill run" for the live ones."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = cast("PilothouseApp", self.app)
        out = []
        for run in app.state.runs.values():
            rid = printable(run.get("id"))
            about = printable(f"{run.get('profile')} · {run.get('state')} · {command_line(run)}", 80)
            out.append((f"Open run {rid}", about, partial(app.open_run, str(run["id"]))))
            if run.get("state") in LIVE_STATES:
                out.append((f"Stop run {rid}", about, partial(app.confirm_stop, run, False)))
                out.append((f"Kill run {rid}", about, partial(app.confirm_stop, run, True)))
        return out


PALETTE_HELP_MAX = 80  # characters of the oldest request under its commands
# A hit's help is on the screen whole only on one row of the palette (its border, padding and a
# margin take PALETTE_SIDES columns), in a terminal tall enough to show the hit's title and that
# row under the palette's input (10 rows measured; a margin on top).
PALETTE_SIDES = 6
PALETTE_MIN_ROWS = 12


class ApprovalCommands(ListedCommands):
    """The request that has waited longest: open it, allow it once, deny it. Each command is
    bound to the request its help shows (the oldest may be another one by the time it is
    chosen), and allow opens the card instead when the help cannot show it whole, or when
    the key that chose it was typed before the help was first listed (one read: the palette's
    hits are gathered between its keys, and the enter chose one never drawn)."""

    async def startup(self) -> None:
        # This palette's: when (monotonic) each request's help was first listed.
        self._listed_at: dict[tuple[str, str], float] = {}

    def _commands(self) -> list[tuple[str, str, Any]]:
        app = cast("PilothouseApp", self.app)
        oldest = app.state.oldest()
        if oldest is None:
            about = "no approval is pending"
            return [("Open oldest approval", about, app.action_open_approval),
                    ("Allow oldest approval once", about, partial(app.decide_oldest, None, True)),
                    ("Deny oldest approval", about, partial(app.decide_oldest, None, False))]
        line = f"run {oldest.get('run_id')}: {oldest.get('kind')} {summary(oldest)}"
        detail = oldest.get("detail") if isinstance(oldest.get("detail"), dict) else {}
        # A file tool's change (the card's diff) and the names of letters outside ASCII are
        # never in the help: like a cut line, they are reviewed on the card.
        whole = (len(line) <= PALETTE_HELP_MAX and "tool_input" not in detail
                 and names_letters(oldest) is None)
        rid = str(oldest.get("id"))
        about = printable(line, PALETTE_HELP_MAX)
        width, height = app.size  # a small terminal (a tmux pane) cuts the help, or hides it
        whole = whole and cell_len(about) <= width - PALETTE_SIDES and height >= PALETTE_MIN_ROWS
        listed_at = self._listed_at.setdefault((rid, about), time.monotonic())
        return [
            ("Open oldest approval", about, partial(app.action_open_approval, rid)),
            ("Allow oldest approval once", about,
             partial(app.decide_oldest, rid, True, whole, listed_at, oldest)),
            ("Deny oldest approval", about, partial(app.decide_oldest, rid, False)),
        ]
