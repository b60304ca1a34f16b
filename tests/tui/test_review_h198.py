"""Review h198 (console at 80x24 and 60x20, NO_COLOR, keyboard only), against a real daemon and
real bubblewrap runs.

- y on a card taller than the screen shows the next part and says so: the note was a toast,
  drawn over the right half of the very rows it had just scrolled in (counted as seen); in a
  confirmation (g's "Allow everywhere?") over the question's last words and its buttons.
- At 60 columns the approvals banner wrapped into a second row its one-row height hides: it
  read `oldest 3s ago, run` and stopped, the run's id and the request cut with no mark.
- On a card that fits the screen, down and up switched to another request, while the help
  listed them as scrolling the card (on a taller card they did scroll): one key, two meanings.
- The card's help and footer listed `a Approvals`, which does nothing on the card.
- The dashboard's filter hid every row without a word: `Approvals (1 pending)` over an empty
  table, the filter's text a bare line at the top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.tui.keys import help_rows
from console.tui.screens.approval import ApprovalScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import attached, make_app, pending_request, start_run, wait_for
from tests.tui.screen import line_with, screen_text
from widgets.panels import ApprovalBanner, ApprovalCard

pytestmark = needs_bwrap

# A command of 40 lines: its card is three screens tall at 80x24.
TALL = "ph-ask exec -- sh -c '" + "\n".join(f"echo step-{i:02d} &&" for i in range(40)) + \
       " rm -rf /tmp/last-line'; echo rc=$?"


async def tall_card(pilot: Any, daemon: Daemon, workspace: Path) -> ApprovalCard:
    """A run asks for TALL's command; its card opened (`a`) and drawn."""
    await pending_request(pilot, await start_run(daemon, workspace, TALL))
    await pilot.press("a")
    return await card_shown(pilot, pilot.app)


async def card_shown(pilot: object, app: object) -> ApprovalCard:
    """The card on the screen, drawn holding its request (its first part at least)."""
    def drawn() -> ApprovalCard | None:
        screen = app.screen  # type: ignore[attr-defined]
        if not isinstance(screen, ApprovalScreen):
            return None
        card = screen.query_one(ApprovalCard)
        return card if card.holds is not None and card.drawn == card.holds else None

    return await wait_for(pilot, drawn, "the card drawn")  # type: ignore[arg-type]


async def test_the_note_that_y_showed_more_covers_none_of_the_card(
        daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await attached(pilot)
        await tall_card(pilot, daemon, workspace)
        body = app.screen.query_one("#approval-body")
        await pilot.press("y")
        await wait_for(pilot, lambda: body.scroll_y > 0, "y to show the next part")
        status = app.screen.query_one("#approval-status")
        await wait_for(pilot, lambda: "It goes on" in str(status.render()) + " ".join(
            str(t.render().plain) for t in app.screen.query("Toast")), "the note that it goes on")
        await pilot.pause()
        covering = [(str(t.render().plain), t.region) for t in app.screen.query("Toast")
                    if t.region.overlaps(body.region)]
        assert not covering, f"drawn over the card ({body.region}): {covering}"
        assert "It goes on" in str(status.render()), screen_text(app)
        assert app.screen.request_id in app.state.approvals, "y decided instead of showing more"


async def test_the_banner_keeps_the_run_at_60_columns(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(60, 20)) as pilot:
        await attached(pilot)
        run = await start_run(daemon, workspace)
        await pending_request(pilot, run)
        banner = app.screen.query_one(ApprovalBanner)
        await wait_for(pilot, lambda: "1 pending" in banner.shown, "the banner")
        await pilot.pause()
        line = line_with(screen_text(app), "APPROVAL")
        assert f"run {run}" in line, f"the banner's run cut:\n{screen_text(app)}"
        assert "exec" in line or "…" in line, f"the request cut with no mark:\n{screen_text(app)}"


async def test_down_on_a_card_that_fits_does_what_the_help_says(
        daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        first = await start_run(daemon, workspace)
        one = await pending_request(pilot, first)
        second = await start_run(daemon, workspace, "ph-ask exec -- make second; echo rc=$?")
        await pending_request(pilot, second)
        await pilot.press("a")
        await card_shown(pilot, app)
        assert app.screen.request_id == one["id"]
        rows = help_rows(app, app.screen)
        said = {key: does for key, does, _id in rows}
        assert "scroll" in said.get("↓", "").lower(), said
        # a (open the approvals) does nothing on the card: not listed as if it did
        assert "open_approval" not in [binding_id for _key, _does, binding_id in rows], rows
        await pilot.press("down")
        await pilot.pause()
        assert app.screen.request_id == one["id"], \
            "down switched the card to another request; the help says it scrolls"
        await pilot.press("j")  # the card's own key for the next request
        await wait_for(pilot, lambda: app.screen.request_id != one["id"], "j to the next request")


async def test_a_filter_that_hides_rows_says_so(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        run = await start_run(daemon, workspace)
        await pending_request(pilot, run)
        await pilot.press("slash", "z", "z", "enter")
        await pilot.pause()
        title = str(app.screen.query_one("#approvals-panel").border_title)
        assert "0 of 1 shown" in title and "zz" in title, title
        runs = str(app.screen.query_one("#runs-panel").border_title)
        assert "0 of 1 shown" in runs, runs
        await pilot.press("escape")
        await pilot.pause()
        title = str(app.screen.query_one("#approvals-panel").border_title)
        assert title == "Approvals (1 pending)", title


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
async def test_the_note_that_y_showed_more_of_a_question_covers_none_of_it(
        daemon: Daemon, workspace: Path, size: tuple[int, int]) -> None:
    """The same in a confirmation (g's "Allow everywhere?" with a long command): the toast hid
    the question's last words (`for every run and every profile`) and its buttons."""
    from textual.widgets import Button

    from console.tui.screens.dialogs import ConfirmScreen

    app = make_app(daemon)
    async with app.run_test(size=size, notifications=True) as pilot:
        await attached(pilot)
        body = "\n".join(f"line {i}" for i in range(40)) + "\nfor every run and every profile?"
        app.push_screen(ConfirmScreen("Allow everywhere?", body, yes="Allow everywhere", danger=True))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.pause()
        dialog = app.screen.query_one("#dialog")
        scroll = app.screen.query_one("#dialog-body")
        await pilot.press("y")
        await wait_for(pilot, lambda: scroll.scroll_y > 0, "y to show the next part")
        notes = app.screen.query("#dialog-note")
        await wait_for(pilot, lambda: any(n.display for n in notes) or app.screen.query("Toast"),
                       "the note")
        await pilot.pause()
        covering = [(str(t.render().plain), t.region) for t in app.screen.query("Toast")
                    if t.region.overlaps(dialog.region)]
        assert not covering, f"drawn over the question ({dialog.region}): {covering}"
        note = app.screen.query_one("#dialog-note")
        assert "It goes on" in str(note.render()) and note.region.height == 1, note.region
        yes = app.screen.query_one("#yes", Button)
        assert yes.region.height and dialog.region.contains_region(yes.region), \
            f"the buttons pushed off: {yes.region} in {dialog.region}"
        assert isinstance(app.screen, ConfirmScreen), "y answered before all of it was shown"
