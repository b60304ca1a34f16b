"""What neutralise() lets through to a terminal: text, tabs, newlines and colour; every other
control is shown in caret notation instead of being obeyed."""

from __future__ import annotations

import pytest

from console.text import neutralise


@pytest.mark.parametrize("hostile", [
    "\x1b]52;c;c3RvbGVu\x07",          # OSC 52: write the clipboard
    "\x1b]8;;http://x.invalid\x1b\\",   # OSC 8: a hyperlink
    "\x1b[2J\x1b[H",                    # clear the screen, cursor home
    "\x1b[10A",                         # cursor up over earlier lines
    "\x1bP+q\x1b\\",                    # DCS: query the terminal
    "\x9b31m",                          # C1 CSI (8-bit)
    "abc\rxyz",                         # carriage return: overwrite the line
    "\x1b[6n",                          # ask the terminal to report (and type) its cursor
])
def test_controls_are_shown_not_obeyed(hostile: str) -> None:
    out = neutralise(hostile)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\r" not in out


def test_text_and_colour_pass_unchanged() -> None:
    text = "plain\ttext é 漢字 \x1b[1;31mred\x1b[0m \x1b[38;5;208morange\x1b[m"
    # and a reset at the end: a line's colours never reach the next (review s31)
    assert neutralise(text) == text + "\x1b[0m"


def test_escape_is_visible() -> None:
    assert neutralise("\x1b]52;c;x\x07") == "^[]52;c;x^G"


def test_colour_can_be_dropped_for_a_pipe() -> None:
    assert neutralise("\x1b[31mred\x1b[0m \x1b]52;c;x\x07", colour=False) == "red ^[]52;c;x^G"
