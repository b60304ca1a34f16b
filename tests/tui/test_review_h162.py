"""Review h162 of what a person is shown in the console: the card's command, wrapped, and the
desktop notification.

The card's command row is wrapped by rich, which breaks at a space and drops it, and folds a
word longer than the column without a mark: at 80x24 `rm -rf DIR/ ..`, DIR/ as wide as the
column, was drawn `rm -rf`, `DIR/`, `..`, the very lines `rm -rf DIR/..` is drawn as; the
space that makes it remove the folder above the one the agent runs in was not on the card,
and y allowed it. Each space a break takes is drawn as `␣` now (console/wrapping.py).

The desktop notification (OSC 9 and OSC 777) turned every `;` of the request into `,`: `echo
ok; rm -rf ~` was announced as `echo ok, rm -rf ~`, one echo. A `;` is kept where the
sequence allows it (OSC 9) and marked `⟨semicolon⟩` where it would end the field (OSC 777).
"""

from __future__ import annotations

import pytest

from console.text import shown
from console.tui.notify import osc_sequences
from tests.tui.screen import app_with, attached, card_drawn, screen_text
from tests.tui.test_display_attacks_s19 import request

pytestmark = pytest.mark.usefixtures("utc")

DIR = "/workspace/build/cache/" + "x" * 39 + "/"  # as wide as the card's column at 80x24


async def card_screen(subject: str) -> str:
    app = app_with(approvals=[request("wr01", subject)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await card_drawn(pilot)
        return screen_text(app)


def command_rows(screen: str) -> list[str]:
    """The card's command row and the lines it wraps onto, as drawn."""
    lines = screen.split("\n")
    first = next(i for i, line in enumerate(lines) if "│ command " in line)
    start = lines[first].index("command") + len("command")
    start += len(lines[first][start:]) - len(lines[first][start:].lstrip(" "))
    rows = [lines[first][start:].rstrip("│ ")]
    for line in lines[first + 1:]:
        if line[2:start].strip():  # the next label
            break
        rows.append(line[start:].rstrip("│ "))
    return rows


async def test_a_space_where_the_card_wraps_a_command_is_on_the_card() -> None:
    dangerous, harmless = f"rm -rf {DIR} ..", f"rm -rf {DIR}.."
    drawn = command_rows(await card_screen(dangerous))
    assert drawn != command_rows(await card_screen(harmless)), (
        f"two commands drawn alike on the card: {drawn}")
    assert "".join(drawn).replace("␣", " ") == shown(dangerous), drawn


def test_a_notification_shows_a_semicolon_as_one() -> None:
    seqs = osc_sequences("Pilothouse", "run k3mx asks: exec echo ok; rm -rf ~")
    osc9, osc777 = seqs.split("\x07")[:2]
    assert osc9.endswith("exec echo ok; rm -rf ~"), repr(osc9)
    assert osc777.endswith("exec echo ok⟨semicolon⟩ rm -rf ~"), repr(osc777)
    assert osc777.count(";") == 3, repr(osc777)  # 777;notify;TITLE;BODY: no other separator
