"""Review h179 (console): a profile rule or a grant everywhere is the daemon owner's alone (the
daemon refuses a teammate's: tests/approvals/test_standing_rules_h179.py). An approver's card
labels p, g and N as the owner's, and those keys say why and send nothing; y still decides."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.tui.app import PilothouseApp
from console.tui.link import Connected, Post
from console.tui.screens.dialogs import ConfirmScreen
from console.tui.screens.policy import GrantsTable, PolicyScreen
from tests.tui.fixed import GRANTS, HELLO, NOW, PROFILES, FixedSource
from tests.tui.screen import attached, card_drawn, screen_text, settled, until
from tests.tui.test_display_attacks_s19 import request

pytestmark = pytest.mark.usefixtures("utc")


class AsApprover(FixedSource):
    """The daemon's hello to a teammate listed in [team] approvers."""

    async def run(self, post: Post) -> None:
        self.post = post
        post(Connected({**HELLO, "user": "bob", "role": "approver"}, self.runs, self.approvals,
                       PROFILES, self.gpu, self.gpu_note))
        await asyncio.Event().wait()


def sent(app: Any, *ops: str) -> list[tuple[str, dict[str, Any]]]:
    return [(op, args) for op, args in app.source.calls if op in ops]


async def test_an_approvers_card_offers_no_standing_rule() -> None:
    source = AsApprover(approvals=[request("rq01", "rm -rf build", age=50)])
    app = PilothouseApp(source=source, clock=lambda: NOW, desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 40)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await card_drawn(pilot)
        text = screen_text(app)
        assert "everywhere (owner's)" in text and "profile: allow rule (owner's)" in text, text
        for key in ("p", "e", "N"):
            await pilot.press(key)
            await settled(pilot)
        assert sent(app, "approval.preview", "approval.decide") == []
        said = [n.message for n in app._notifications]  # noqa: SLF001
        assert len(said) == 3 and all("are the daemon owner's; you are bob (approver)" in m
                                      for m in said), said
        await pilot.press("y")
        await until(pilot, lambda: sent(app, "approval.decide"), "the decision")
        assert [a["scope"] for _, a in sent(app, "approval.decide")] == ["once"]


class AsApproverWithGrants(AsApprover):
    def __init__(self, grants: list[dict[str, Any]]) -> None:
        super().__init__()
        self.grants = grants

    async def call(self, op: str, **args: Any) -> Any:
        if op == "grants.list":
            self.calls.append((op, args))
            return self.grants
        if op == "grant.revoke":
            self.calls.append((op, args))
            self.grants = [g for g in self.grants if g["id"] != args["id"]]
            return {}
        return await super().call(op, **args)


async def test_an_approver_is_told_a_standing_grant_is_the_owners_to_revoke() -> None:
    """Review h183 (console): the daemon refuses a teammate's revoke of a profile or global
    grant; the policy screen says so at `d` and sends nothing, and still revokes a timed one."""
    standing = {**GRANTS[0], "id": "gglob1", "kind": "exec", "pattern": "make deploy",
                "effect": "deny", "scope": "global", "run_id": None, "profile": None,
                "expires_at": None}
    source = AsApproverWithGrants([standing, GRANTS[0]])
    app = PilothouseApp(source=source, clock=lambda: NOW, desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(160, 40)) as pilot:
        await attached(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PolicyScreen)
                    and app.screen.query_one(GrantsTable).row_count == 2, "the grants")
        table = app.screen.query_one(GrantsTable)
        table.focus()
        table.move_cursor(row=table.keys().index("gglob1"))
        await pilot.press("d")
        await settled(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        said = [n.message for n in app._notifications]  # noqa: SLF001
        assert any("gglob1 (global) is a standing rule" in m for m in said), said
        table.move_cursor(row=table.keys().index(GRANTS[0]["id"]))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await until(pilot, lambda: sent(app, "grant.revoke"), "the revoke")
        assert [a["id"] for _, a in sent(app, "grant.revoke")] == [GRANTS[0]["id"]]
