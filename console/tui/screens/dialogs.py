"""Small dialogs: confirm (yes/no, with what will happen shown first) and prompt (one value)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from console.tui.screens.base import PilotModal, ScrollsBody, scroll_keys
from console.tui.seen import PAGED_SHORT, SeenRows, SeenStatic
from widgets.format import printable
from widgets.tables import command_line


class ConfirmScreen(ScrollsBody, PilotModal):
    """Returns True (y, enter on yes) or False (n, escape). Yes answers only once all of the
    body (what will happen) has been on the screen; before, it shows the next part."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
        *scroll_keys("confirm"),
    ]

    def __init__(self, title: str, body: RenderableType, *, yes: str = "Yes", no: str = "No",
                 danger: bool = False) -> None:
        super().__init__()
        self._title, self._body, self._yes, self._no, self._danger = title, body, yes, no, danger
        self._seen = SeenRows()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(Text(self._title), id="dialog-title")  # never markup
            # y's note that the body goes on: in the dialog, not a toast, which was drawn over
            # the body's last rows and its buttons (review h198). It takes the blank row under
            # the title (class -paged), so the buttons stay on a 60x20 screen.
            note = Static(Text(PAGED_SHORT), id="dialog-note", classes="error-text")
            note.display = False
            yield note
            with VerticalScroll(id="dialog-body"):
                yield SeenStatic(self._body, self._seen)
            with Horizontal(classes="buttons"):
                yield Button(f"{self._yes} (y)", id="yes", variant="error" if self._danger else "primary",
                             compact=True)
                yield Button(f"{self._no} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#no" if self._danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        shown = self.query_one(SeenStatic)
        if yes and self.ph.input_time < self._seen.since:  # typed ahead of the question
            self.app.notify("This question was not yet on the screen when the key was typed: "
                            "nothing was decided. Read it, then y answers.")
            return
        if yes and not self._seen.page_on(self.query_one("#dialog-body", VerticalScroll),
                                          shown.size.width, shown.size.height):
            self.query_one("#dialog-note", Static).display = True
            self.query_one("#dialog").add_class("-paged")
            return
        self.dismiss(yes)


class FormModal(PilotModal):
    """A dialog whose enter (in any field) or submit button calls _submit; any other button
    cancels."""

    SUBMIT_ID = "ok"

    def _submit(self) -> None:
        raise NotImplementedError

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == self.SUBMIT_ID:
            self._submit()
        else:
            self.dismiss(None)


class PromptScreen(FormModal):
    """One value with a default; returns the text, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt_cancel")]

    def __init__(self, title: str, label: str, default: str = "", *,
                 check: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self._title, self._label, self._default, self._check = title, label, default, check
        self._seen = SeenRows()  # when the question was first on the screen

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(Text(self._title), id="dialog-title")  # never markup
            label = SeenStatic(Text(self._label), self._seen)  # wraps; never markup
            label.id = "prompt-label"
            yield label
            yield Input(value=self._default, id="prompt-value", select_on_focus=True, compact=True)
            yield Static("", id="prompt-error", classes="error-text")
            with Horizontal(classes="buttons"):
                yield Button("OK (enter)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#prompt-value", Input).focus()

    def _submit(self) -> None:
        # An enter typed with the key that opened it (one read: t enter) is not an answer: the
        # question, and the value it would send, were not yet on the screen.
        if self.ph.input_time < self._seen.since:
            self.app.notify("This question was not yet on the screen when the key was typed: "
                            "nothing was decided. Read it, then enter answers.")
            return
        value = self.query_one("#prompt-value", Input).value.strip()
        problem = self._check(value) if self._check else None
        if problem:
            self.query_one("#prompt-error", Static).update(problem)
            return
        self.dismiss(value)



def stop_text(run: dict[str, Any], kill: bool) -> Text:
    verb = "Kill (SIGKILL at once)" if kill else "Stop (SIGTERM, then SIGKILL after 2s)"
    text = Text()
    text.append(f"{verb} run ")
    text.append(str(run.get("id")), style="bold")
    text.append(f" ({run.get('profile')})?\n")
    text.append(printable(command_line(run), 200), style="dim")
    return text
