"""Review s21 (console): a decision carries when the request it was about was asked.

The daemon decides by id, and ids come back. A card read on request rq01 `ls`, while the
daemon closed it and gave rq01 to `rm -rf ~/.ssh` (an event this console has not had yet):
the y sent "allow rq01" and the daemon decided the new request. The console now sends the
shown request's created_at, and the daemon (here the scripted source, as the daemon does:
tests/core/test_decide_by_request_s21.py) refuses another request under the id.
"""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.screens.approval import ApprovalScreen
from tests.tui.screen import app_with, attached, until
from tests.tui.test_display_attacks_s19 import request

pytestmark = pytest.mark.usefixtures("utc")


async def _on_the_card(pilot: Any, app: Any) -> None:
    await attached(pilot)
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card")
    await pilot.pause(0.3)


async def test_the_cards_yes_names_the_request_it_showed() -> None:
    shown = request("rq01", "ls", age=50)
    app = app_with(approvals=[shown])
    async with app.run_test(size=(80, 24)) as pilot:
        await _on_the_card(pilot, app)
        # The daemon's side moved on, unheard here: rq01 is now another request.
        app.source.approvals[:] = [request("rq01", "rm -rf ~/.ssh", age=1)]
        await pilot.press("y")
        await pilot.pause(0.5)
        sent = [args for op, args in app.source.calls if op == "approval.decide"]
        assert [s["created_at"] for s in sent] == [shown["created_at"]], sent
        said = " ".join(n.message for n in app._notifications)  # noqa: SLF001
        assert "not the one you were shown" in said, said


async def test_the_cards_grant_asks_what_it_covers_for_the_request_it_showed() -> None:
    """What a grant would answer too is asked for the request shown (its created_at), so the
    daemon refuses the list for another request that took the id (h186's open point)."""
    shown = request("rq02", "ls", age=50)
    app = app_with(approvals=[shown])
    async with app.run_test(size=(80, 24)) as pilot:
        await _on_the_card(pilot, app)
        await pilot.press("r")  # allow for this run: a grant, so what it covers is asked first
        await until(pilot, lambda: any(op == "approval.covers" for op, _ in app.source.calls),
                    "the covers question")
        asked = [args for op, args in app.source.calls if op == "approval.covers"]
        assert [a.get("created_at") for a in asked] == [shown["created_at"]], asked
