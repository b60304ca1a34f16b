"""A Bash call Claude Code runs in the background (or outside its own sandbox), on the console at
80x24 (helper 134): the approval card says so in the daemon's words, not as one of the agent's
inputs, and the dashboard's inbox row carries the mark before the command. Requests are shaped
as the daemon lists the ones ph-claude-hook asks (tests/approvals/test_bash_run_flags.py)."""

from __future__ import annotations

from typing import Any

import pytest

from console.tui.screens.approval import ApprovalScreen
from tests.tui.fixed import APPROVALS
from tests.tui.screen import app_with, attached, until
from widgets.panels import ApprovalCard
from widgets.tables import ApprovalInbox

pytestmark = pytest.mark.usefixtures("utc")

SERVER = "python3 -m http.server 8000"


def bash_request(rid: str, **flags: bool) -> dict[str, Any]:
    return {**APPROVALS[0], "id": rid, "subject": SERVER, "title": "a quick check",
            "summary": f"exec {SERVER}", "rule_provenance": None,
            "detail": {"cwd": "/workspace", "tool_name": "Bash", "session_id": "s-1", **flags}}


async def card_and_row(req: dict[str, Any]) -> tuple[str, str]:
    """The card's text (as a person scrolls it) and the dashboard inbox row's REQUEST cell."""
    app = app_with(approvals=[req])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        row = app.screen.query_one(ApprovalInbox).cell_text(req["id"], "summary")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval card")
        await pilot.pause(0.1)
        return app.screen.query_one(ApprovalCard).shown, row


async def test_the_card_and_the_row_say_a_command_runs_in_the_background() -> None:
    text, row = await card_and_row(bash_request("bg1x", run_in_background=True))
    flat = " ".join(text.split())
    assert "runs in the background: Claude Code does not wait for it to end" in flat, text
    assert "run_in_background (agent)" not in flat, text  # the daemon's sentence, not an input
    assert row.startswith("⟨in the background⟩ python3"), row


async def test_the_card_and_the_row_say_claude_codes_sandbox_is_asked_off() -> None:
    text, row = await card_and_row(bash_request("sb0x", dangerouslyDisableSandbox=True))
    flat = " ".join(text.split())
    assert "outside Claude Code's own sandbox" in flat and "Pilothouse's sandbox still applies" in flat, text
    assert row.startswith("⟨Claude Code's sandbox off⟩ python3"), row


async def test_a_flag_that_is_not_true_is_never_read_as_the_daemons_words() -> None:
    """A stored request the daemon would refuse today (its value text): shown as the agent's input,
    escaped, never as the card's sentence or the row's mark."""
    text, row = await card_and_row(bash_request("tx1t", run_in_background="no"))  # type: ignore[arg-type]
    assert "does not wait" not in text and "⟨in the background⟩" not in row, (text, row)
    assert "run_in_background (agent)" in " ".join(text.split()), text
