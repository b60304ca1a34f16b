"""Start a run: a profile, optionally a workspace and a command (shell words)."""

from __future__ import annotations

import shlex
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from console.tui.screens.dialogs import FormModal
from widgets.format import printable


class StartRunScreen(FormModal):
    """Returns {"profile", "workspace", "command"} or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="start_cancel")]
    SUBMIT_ID = "start"

    def __init__(self, profiles: list[dict[str, Any]], profile: str | None = None) -> None:
        super().__init__()
        self.profiles = profiles
        names = [p["name"] for p in profiles]
        self.profile = profile if profile in names else ("demo" if "demo" in names else (names[0] if names else None))

    def compose(self) -> ComposeResult:
        options = [(printable(p["name"]) + (" (UNSANDBOXED)" if p.get("sandbox") == "none" else ""), p["name"])
                   for p in self.profiles]
        # Compact fields, so the whole dialog (its buttons too) fits 80x24; the body scrolls
        # if the terminal is smaller still.
        with Vertical(id="dialog", classes="dialog"):
            yield Label("Start a run", id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Label("Profile")
                yield Select(options, value=self.profile if self.profile else Select.NULL,
                             allow_blank=self.profile is None, id="s-profile", compact=True)
                yield Static(id="s-about", classes="hint")
                yield Label("Workspace (empty: the profile's, else the folder the console started in)")
                yield Input(placeholder="/path/to/project", id="s-workspace", compact=True)
                yield Label("Command (empty: the profile's command)")
                yield Input(placeholder="sh -c 'make test'", id="s-command", compact=True)
                yield Static("", id="s-error", classes="error-text")
            with Horizontal(classes="buttons"):
                yield Button("Start (enter)", id="start", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self._about()
        # With a profile already chosen, enter should start it: focus a field whose enter
        # submits (enter on a Select only opens its list). shift+tab reaches the profile.
        first = "#s-workspace" if self.profile else "#s-profile"
        self.query_one(first).focus()

    def _about(self) -> None:
        prof = next((p for p in self.profiles if p["name"] == self.profile), None)
        about = self.query_one("#s-about", Static)
        if prof is None:
            about.update("")
            return
        cmd = " ".join(prof.get("command") or [])
        about.update(printable(f"{prof.get('description') or ''}  $ {cmd}  (sandbox {prof.get('sandbox')})", 200))

    @on(Select.Changed, "#s-profile")
    def _profile(self, event: Select.Changed) -> None:
        self.profile = event.value if isinstance(event.value, str) else None
        self._about()

    def _submit(self) -> None:
        if not self.profile:
            self.query_one("#s-error", Static).update("pick a profile")
            return
        raw = self.query_one("#s-command", Input).value.strip()
        try:
            command = shlex.split(raw) if raw else None
        except ValueError as exc:
            self.query_one("#s-error", Static).update(f"the command does not parse: {exc}")
            return
        workspace = self.query_one("#s-workspace", Input).value.strip() or None
        self.dismiss({"profile": self.profile, "workspace": workspace, "command": command})

