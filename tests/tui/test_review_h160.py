"""A card whose request closed where the card could not hear of it (review h160).

The card moves on by itself when the request it shows is resolved elsewhere: it says so, and
the first y on the next request decides nothing (it was not chosen). Two ways around that:

- the request was closed between the push of its card and the card's compose (enter on its
  row, then the CLI denied it): the card, not yet listening, opened on the oldest other request
  without a word, and y, typed after it drew, allowed a request the person never chose;
- the request left the pending set without a resolution event (a poll, a resync after dropped
  events, a reconnect): the card stayed on it and read "No request pending." while others
  were, every key on it ignored.
"""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.link import Connected, DaemonEvent, Polled
from console.tui.screens.approval import ApprovalScreen
from tests.tui.fixed import HELLO
from tests.tui.screen import app_with, attached, card_drawn, screen_text, settled, until
from tests.tui.test_display_attacks_s19 import allows, request

pytestmark = pytest.mark.usefixtures("utc")


def said(app: Any) -> str:
    return " ".join(n.message for n in app._notifications)  # noqa: SLF001


async def test_a_request_closed_before_its_card_is_composed_moves_the_card_on_by_itself() -> None:
    chosen, other = request("cd01", "git status", age=2), request("cd02", "rm -rf ~/.ssh", age=1)
    app = app_with(approvals=[chosen, other])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.action_open_approval("cd01")  # enter on its row
        # the same beat: closed by the CLI before the card has widgets (or listens)
        app.post_message(DaemonEvent({"kind": "approval.resolved",
                                      "request": {**chosen, "state": "denied", "decided_by": "cli"}}))
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and app.screen.is_mounted,
                    "the card")
        await card_drawn(pilot)
        assert app.screen.request_id == "cd02"
        await pilot.press("y")  # typed after the draw, for the request the person chose
        await settled(pilot)
        assert allows(app) == [], "allowed a request the card moved to by itself"
        assert "nothing was decided" in said(app)
        assert "cd01" in said(app), "the card moved to another request without a word"


@pytest.mark.parametrize("how", ["poll", "reconnect"])
async def test_a_request_gone_without_a_resolution_moves_the_card_on(how: str) -> None:
    shown, other = request("cd01", "git status", age=2), request("cd02", "rm -rf ~/.ssh", age=1)
    app = app_with(approvals=[shown, other])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await card_drawn(pilot)
        assert app.screen.request_id == "cd01"
        runs = list(app.state.runs.values())
        if how == "poll":  # its resolution event was lost (a slow link)
            app.post_message(Polled(runs, [other]))
        else:  # it timed out while the daemon was away
            app.post_message(Connected(HELLO, runs, [other], [], None, ""))
        await until(pilot, lambda: "cd01" not in app.state.approvals, "the request gone")
        await settled(pilot)
        assert "No request pending" not in screen_text(app), "the card kept a request that went"
        assert app.screen.request_id == "cd02"
        assert "cd01" in said(app)
        await pilot.press("y")
        await settled(pilot)
        assert allows(app) == [], "allowed a request the card moved to by itself"
