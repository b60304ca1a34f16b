"""The console's notes (what a toast says), written in a screen's layout where a toast must not
be drawn: over an approval card, a toast hid rows of the command a person approves (review
h203: c's "Copied", ctrl+n, a request closed elsewhere, an error). While a NotesLine is on a
screen that shows (the top one, or one under dialogs only), no toast is drawn at all (over the
card, nor over a question asked from it); each note is written on the line, newest first, for as
long as its toast would have shown. A screen opened over the card (the palette's History) shows
toasts again.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, NamedTuple

from rich.text import Text
from textual.screen import ModalScreen
from textual.widgets import Static

from widgets.format import printable, style

HIDES_TOASTS = "-notes-in-layout"  # the app's class while a NotesLine is mounted (app.tcss)


class Note(NamedTuple):
    title: str
    message: str
    severity: str
    until: float  # time.monotonic()


class Notes:
    """The recent notes, each kept until its toast's timeout."""

    def __init__(self) -> None:
        self._notes: deque[Note] = deque(maxlen=20)

    def add(self, message: str, title: str, severity: str, timeout: float) -> None:
        self._notes.append(Note(title, message, severity, time.monotonic() + timeout))

    def current(self) -> list[Note]:
        now = time.monotonic()
        return [note for note in reversed(self._notes) if note.until > now]


class NotesLine(Static):
    """The notes, in the layout (a screen's rows, not a layer over them)."""

    _shown: str | None = None

    def on_mount(self) -> None:
        self.app.screen_change_signal.subscribe(self, lambda _screen: toasts_where_seen(self.app))
        self.set_interval(1.0, self.show_notes)  # a note goes when its toast would have
        toasts_where_seen(self.app)
        self.show_notes()

    def on_unmount(self) -> None:
        toasts_where_seen(self.app, gone=self)

    def show_notes(self) -> None:
        notes: Notes = getattr(self.app, "notes", None) or Notes()
        text = Text()
        for note in notes.current():
            if text:
                text.append("\n")
            loud = note.severity in ("warning", "error")
            head = note.title or ("Error" if note.severity == "error" else "")
            if head:
                text.append(f"{printable(head)}: ", style=style("bold red") if loud else "bold")
            # the words are often an agent's: one printable line each (a note's own breaks kept)
            text.append("\n".join(printable(line) for line in note.message.split("\n")))
        if text.plain != self._shown:  # every second: repaint only on a change
            self._shown = text.plain
            self.display = bool(text)
            self.update(text)


def toasts_where_seen(app: Any, gone: NotesLine | None = None) -> None:
    """Toasts hidden (the app's class) while a NotesLine shows: on the top screen, or on the
    screen under its dialogs."""
    shown = False
    for screen in reversed(app.screen_stack):
        shown = any(line is not gone for line in screen.query(NotesLine))
        if shown or not isinstance(screen, ModalScreen):
            break
    app.set_class(shown, HIDES_TOASTS)


def noted(app: Any, message: str, title: str, severity: str, timeout: float) -> None:
    """A note kept (app.notes), and written on every NotesLine of the screen stack (a card
    under a question shows it too)."""
    app.notes.add(message, title, severity, timeout)
    for line in [line for screen in app.screen_stack for line in screen.query(NotesLine)]:
        line.show_notes()
