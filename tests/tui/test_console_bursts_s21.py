"""A burst of the same decision key sends one decision.

y held down (the terminal's key repeat) on a card already read sent approval.decide once per
key handled before the first decision's worker ran: the decision was marked as under way
inside that worker, so every queued y found the card still free and started another. The
daemon answered the rest "already-decided", but a burst of n then y (a slip of the fingers)
on the same card sent both answers, and which one counted was a race.
"""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.screens.approval import ApprovalScreen
from tests.tui.screen import app_with, attached, until
from tests.tui.test_console_attacks_s19b import typed_ahead
from tests.tui.test_display_attacks_s19 import request

pytestmark = pytest.mark.usefixtures("utc")


def decides(app: Any) -> list[dict[str, Any]]:
    return [args for op, args in app.source.calls if op == "approval.decide"]


@pytest.mark.parametrize("burst", [("y",) * 6, ("n", "y", "y"), ("y", "n")],
                         ids=["y held down", "n then y", "y then n"])
async def test_a_burst_of_keys_on_a_read_card_sends_one_decision(burst: tuple[str, ...]) -> None:
    app = app_with(approvals=[request("rq01", "rm -rf build", age=50),
                              request("rq02", "ls", age=10)])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card")
        await pilot.pause(0.3)  # drawn: the card's whole request is on the screen
        typed_ahead(app, *burst)
        await pilot.pause(0.8)
        sent = decides(app)
        assert [d["id"] for d in sent] == ["rq01"], sent
        assert sent[0]["allow"] is (burst[0] == "y")
