"""Command palette providers (`:` or ctrl+p): start a run of any profile, go to a screen."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from widgets.format import printable

if TYPE_CHECKING:
    from console.tui.app import PilothouseApp


class ListedCommands(Provider):
    """A provider whose commands are a list of (title, help, callback)."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


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
            ("Open oldest approval", "decide the request that has waited longest",
             app.action_open_approval),
            ("Toggle desktop notifications", "OSC 9 / OSC 777 on a new approval",
             app.action_toggle_notify),
            ("Keys", "the keys of this screen", app.action_help),
        ]

