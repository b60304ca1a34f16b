"""A card asked for twice before it is drawn.

`esc enter y` typed ahead on a row: enter opened the card, and y, handled by the row before the
card was on the screen, asked for the card again. The second ask reached a card screen that had
not yet built its widgets, and the console stopped with NoMatches (CI, s39). The request named
is shown once the card is ready; nothing is decided by it.
"""

from __future__ import annotations

import pytest

from console.tui.screens.approval import ApprovalScreen
from tests.tui.screen import app_with, attached, screen_text, until
from tests.tui.test_display_attacks_s19 import allows, request

pytestmark = pytest.mark.usefixtures("utc")


async def test_a_card_asked_for_again_before_it_is_drawn_shows_the_request_named() -> None:
    app = app_with(approvals=[request("cd01", "rm -rf ~/.ssh", age=1),
                              request("cd02", "git status", age=1)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.action_open_approval("cd01")
        assert isinstance(app.screen, ApprovalScreen)
        app.action_open_approval("cd02")  # the same beat: the card has no widgets yet
        app.screen.on_tick(app.now())
        await until(pilot, lambda: "git status" in screen_text(app), "the second request")
        assert app.screen.request_id == "cd02"
        await pilot.pause(0.2)
        assert allows(app) == []


async def test_an_allow_on_a_card_not_yet_built_decides_nothing() -> None:
    """A card's allow reached in the same beat as its push (h160 found it reachable only by a
    direct call, never by keys): refused, not a crash, and nothing is allowed."""
    app = app_with(approvals=[request("cd03", "rm -rf ~/.ssh", age=1)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.action_open_approval("cd03")
        card = app.screen
        assert isinstance(card, ApprovalScreen)
        card.action_decide("once", True)
        await until(pilot, lambda: "rm -rf ~/.ssh" in screen_text(app), "the card")
        await pilot.pause(0.2)
        assert allows(app) == []
