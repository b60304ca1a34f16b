"""Review h186 (console): what the card says when its request closes before the person decides.

A request withdrawn by its agent (its ph-ask killed) while its card was open: the card moved
on, saying "Request reqa was cancelled by cancelled before you decided." (seen with a real
daemon and bubblewrap); nobody cancelled it, the asking process went away. With no person to
name, the card says how it closed, in the daemon's words.
"""

from __future__ import annotations

import pytest

from console.tui.link import DaemonEvent
from tests.tui.screen import app_with, card_drawn, settled, until
from tests.tui.test_display_attacks_s19 import request
from tests.tui.test_review_h160 import said

pytestmark = pytest.mark.usefixtures("utc")


@pytest.mark.parametrize(("state", "provenance", "words"), [
    ("cancelled", {"kind": "cancelled", "detail": "the asking process went away",
                   "text": "the asking process went away"},
     "was cancelled (the asking process went away) before you decided"),
    ("denied", {"kind": "timeout"}, "was denied (timeout) before you decided"),
], ids=["withdrawn", "no text"])
async def test_a_request_closed_with_no_person_says_how(
        state: str, provenance: dict[str, str], words: str) -> None:
    shown, other = request("cd01", "git status", age=2), request("cd02", "ls", age=1)
    app = app_with(approvals=[shown, other])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await card_drawn(pilot)
        app.post_message(DaemonEvent({"kind": "approval.resolved", "request": {
            **shown, "state": state, "provenance": provenance}}))
        await until(pilot, lambda: "cd01" in said(app), "the card's word on the closed request")
        await settled(pilot)
    assert words in said(app), said(app)
    assert "by cancelled" not in said(app) and "by timeout" not in said(app), said(app)
