"""Review h203 (console at 80x24, keyboard only), against a real daemon and real bubblewrap runs.

- Toasts other than y's note were drawn over the card's rows (c's "Copied", ctrl+n's
  "Desktop notifications off", a request closed elsewhere, an error): the command a person
  approves was partly hidden. Every notification while a card is shown now goes to a line under
  it, in the layout, and none is drawn over it or over a question asked from it.
- `g` on the card was "allow everywhere", where g/G are top/bottom everywhere else (tables, the
  log): now g/G jump to the card's top/bottom and `e` allows everywhere.
- The help dialog did not scroll with j/k, g/G at 80x24 (its last rows out of reach).
- A run's output line passed characters drawn at another width than the layout counts
  (skin-tone modifiers, spacing marks): 20 of them pushed a line's end off the screen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.tui.app import binding_scopes
from console.tui.keys import check_keymap, help_rows
from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.dialogs import ConfirmScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.history import HistoryScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import attached, make_app, pending_request, run_output, start_run, wait_for
from tests.tui.screen import screen_text
from tests.tui.test_review_h198 import card_shown, tall_card

pytestmark = needs_bwrap


def drawn_over(app: object, region: object) -> list[tuple[str, object]]:
    """The toasts drawn (on the screen, not hidden) over `region`."""
    toasts = app.screen.query("Toast")  # type: ignore[attr-defined]
    return [(str(t.render().plain), t.region) for t in toasts
            if t.region.area and t.region.overlaps(region)]  # type: ignore[attr-defined]


async def test_no_notification_covers_the_card_or_its_question(
        daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await attached(pilot)
        run = await start_run(daemon, workspace)
        await pending_request(pilot, run)
        await pilot.press("a")
        await card_shown(pilot, app)
        body = app.screen.query_one("#approval-body")
        await pilot.press("c", "ctrl+n")  # copy the command; desktop notifications on/off
        await wait_for(pilot, lambda: len(app._notifications) >= 2, "the notes")  # noqa: SLF001
        await pilot.pause()
        assert not drawn_over(app, body.region), f"drawn over the card: {drawn_over(app, body.region)}"
        text = screen_text(app)
        assert "Desktop notifications" in text and "pytest -q" in text, f"the note not shown:\n{text}"
        everywhere = app.key_for("approve_global", "e")
        await pilot.press(everywhere)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        dialog = app.screen.query_one("#dialog")
        app.report("the daemon did not answer in time\ntry again")  # as the link reports one
        await wait_for(pilot, lambda: "try again" in screen_text(app), "the error under the card")
        await pilot.pause()
        assert not drawn_over(app, dialog.region), f"over the question: {drawn_over(app, dialog.region)}"
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "back to the card")
        # a screen opened over the card (the palette's History) shows its notes as toasts again
        app.push_screen(HistoryScreen())
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        app.notify("a note over the history")
        await wait_for(pilot, lambda: any(t.region.area for t in app.screen.query("Toast")),
                       "the toast over the history")


async def test_g_and_shift_g_go_to_the_card_top_and_bottom_and_e_allows_everywhere(
        daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await tall_card(pilot, daemon, workspace)
        body = app.screen.query_one("#approval-body")
        await pilot.press("G")
        await wait_for(pilot, lambda: body.scroll_y and body.scroll_y == body.max_scroll_y,
                       "G to the card's bottom")
        await pilot.press("g")
        await wait_for(pilot, lambda: body.scroll_y == 0, "g to the card's top")
        assert isinstance(app.screen, ApprovalScreen), f"g asked something:\n{screen_text(app)}"
        rows = {binding_id: (key, does) for key, does, binding_id in help_rows(app, app.screen)}
        assert rows["approve_global"][0] == "e", rows
        assert rows["approval_top"][0] == "g" and rows["approval_bottom"][0] == "G", rows
        keys = str(app.screen.query_one("#approval-keys").render())
        assert " e  everywhere" in keys and " g " not in keys, keys
        _kept, refused = check_keymap({"approve_global": "g"}, [Path("config.toml")], binding_scopes())
        assert refused and "approval_top" in refused[0], refused


async def test_the_help_scrolls_with_j_k_g_and_shift_g(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()
        body = app.screen.query_one("#dialog-body")
        assert body.max_scroll_y > 0, "the help fits 80x24: nothing to scroll"
        await pilot.press("j")
        await wait_for(pilot, lambda: body.scroll_y == 1, "j to scroll down")
        await pilot.press("k")
        await wait_for(pilot, lambda: body.scroll_y == 0, "k to scroll up")
        await pilot.press("G")
        await wait_for(pilot, lambda: body.scroll_y == body.max_scroll_y, "G to the end")
        await pilot.press("g")
        await wait_for(pilot, lambda: body.scroll_y == 0, "g to the top")
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: body.scroll_y > 1, "page down")
        await pilot.press("pageup")
        await wait_for(pilot, lambda: body.scroll_y == 0, "page up")


@pytest.mark.parametrize("char", ["\U0001f3fb", "\u093e", "\u3248"], ids=["skin-tone", "spacing-mark", "glibc-wide"])
async def test_output_shows_characters_of_disputed_width_escaped(
        daemon: Daemon, workspace: Path, char: str) -> None:
    """rich counts these 0 (or 1) cells, a terminal draws them 1 (or 2): a row's end moves off
    the screen, and with it what a person would read there (review h185 fixed the card)."""
    octal = "".join(f"\\{b:03o}" for b in char.encode())
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        run = await start_run(daemon, workspace, f"printf 'shown{octal * 20} end-of-line\\n'")
        text = await run_output(pilot, run, "end-of-line")
        line = next(ln for ln in text.splitlines() if "end-of-line" in ln)
        escaped = f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
        assert char not in line and escaped in line, repr(line)
