"""Rows drawn behind a dialog are not on the screen.

The inbox counts a row as seen when the screen is drawn with it under the cursor, so that y
typed ahead never allows a row the person has not seen. With a dialog open (the help, a
confirmation), the dashboard underneath is still drawn, dimmed or hidden, and a request that
arrived then counted as seen: `esc y`, typed together to close the help and allow what the
person remembered, allowed `rm -rf ~/.ssh`, never visible.
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


async def test_a_request_that_arrived_behind_the_help_is_not_allowed_by_esc_y(monkeypatch: Any) -> None:
    """The draws under the help no longer count, and the one just after esc (before the y is
    handled) is too recent to have been read: y opens the card. (The wait is made long here
    so a slow machine cannot stretch esc-to-y past it.)"""
    from widgets import tables
    from widgets.tables import ApprovalInbox

    monkeypatch.setattr(tables, "ROW_SEEN_S", 30.0)

    app = app_with(approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.screen.query_one(ApprovalInbox).focus()
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        arrived = request("bh01", "rm -rf ~/.ssh", age=1)
        app.source.approvals.append(arrived)
        app.post_message(DaemonEvent({"kind": "approval.requested", "request": arrived}))
        inbox: Any = app.screen_stack[0].query_one(ApprovalInbox)
        await until(pilot, lambda: inbox.selected_key() == "bh01", "the row behind the help")
        await pilot.pause(0.3)  # the dashboard behind the help is drawn again meanwhile
        assert "rm -rf ~/.ssh" not in screen_text(app)
        typed_ahead(app, "escape", "y")
        await pilot.pause(0.5)
        assert allows(app) == [], "allowed a row drawn only behind the help"
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card instead")
        assert app.screen.request_id == "bh01"


async def test_y_on_a_row_allows_once_it_has_been_on_the_screen_a_moment() -> None:
    from widgets import tables
    from widgets.tables import ApprovalInbox

    app = app_with(approvals=[request("on01", "echo shown", age=5)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.screen.query_one(ApprovalInbox).focus()
        await until(pilot, lambda: "echo shown" in screen_text(app), "the row")
        await pilot.pause(tables.ROW_SEEN_S + 0.1)
        await pilot.press("y")
        await until(pilot, lambda: allows(app), "the allow")
        assert allows(app) == [{"id": "on01", "allow": True, "scope": "once"}]


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
