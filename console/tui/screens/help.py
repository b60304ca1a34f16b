"""The keys of the screen underneath (`?` or F1), its own first, with the id to remap each in
the config."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from console.tui.screens.base import PilotModal, ScrollsBody, scroll_keys

REMAP = ('Remap any key in your config file, by id (docs/policy.md, "Keys"):\n'
         '  [keys]\n  approve_once = "Y"\n  history = "ctrl+h"\n'
         "then restart the console. A key another action already has is refused.")


class HelpScreen(ScrollsBody, PilotModal):
    BINDINGS = [Binding("escape,q,question_mark,f1", "cancel", "Close", id="help_close"),
                *scroll_keys("help")]

    def __init__(self, title: str, rows: list[tuple[str, str, str]]) -> None:
        """rows: (key as shown, what it does, binding id)."""
        super().__init__()
        self._title = title
        self._rows = rows

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, padding=(0, 1))
        # Headers as Text: a plain string would be read as markup, and "[keys]" would vanish.
        table.add_column(Text("KEY"), style="bold", no_wrap=True)
        table.add_column(Text("DOES"))
        table.add_column(Text("ID (for [keys])"), style="dim", no_wrap=True)
        for key, does, binding_id in self._rows:
            table.add_row(Text(key), Text(does), Text(binding_id))
        with Vertical(id="dialog", classes="dialog wide"):
            yield Label(f"Keys: {self._title}", id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(table)
                yield Static(Text(REMAP, style="dim"))
