"""Review h183: an approver took away the owner's standing grants.

Since h179 an approver may not make a standing decision (scope `profile` or `global`): those are
the daemon owner's policy. But `grant.revoke` took any live grant away, the owner's global ones
too: the owner denies `make deploy` for every run (`--scope global`), an approver revokes that
grant, and every later run of the owner's is asked again, where the approver may allow it. An
approver unmade the owner's standing policy as h179 stopped them making it. Secure: revoking a
standing grant (scope profile or global) is the owner's alone: refused (`not-allowed`, saying
why and what to do), the grant stays, the attempt recorded as `operator.denied_op` with its
scope. A grant of one run or for a while stays the approver's to revoke, as to make.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.approvals.test_inbox_and_team_attacks import (
    deny_all,
    owner_call,
    pending_rows,
    root_only,
    start_agent,
    team_daemon,
)
from tests.approvals.test_team_reads_h135 import as_mate
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER


def _next_pending(d: Daemon, seen: set[str]) -> dict[str, Any]:
    """The first pending request not in `seen` (pending_rows waits for one, 40 s at most)."""
    for _ in range(400):
        rows = [r for r in pending_rows(d) if r["id"] not in seen]
        if rows:
            return rows[0]
    raise AssertionError(f"no new request: {d.log()}")


@root_only
@needs_bwrap
def test_an_approver_cannot_revoke_the_owners_standing_grant(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env, '[profiles.shell.exec]\nallow = ["echo"]\n')
    t = None
    try:
        # The third ask holds the run (and its run grant) until the end's deny_all.
        t = start_agent(d, workspace, "ph-ask exec -- make deploy; ph-ask exec -- make release; "
                                      "ph-ask exec -- make wait")
        first = pending_rows(d)[0]
        owner_call(d, "approval.decide", id=first["id"], allow=False, scope="global")
        second = _next_pending(d, {first["id"]})
        owner_call(d, "approval.decide", id=second["id"], allow=True, scope="run")
        grants = {g["scope"]: g for g in owner_call(d, "grants.list")}
        assert set(grants) == {"global", "run"}, grants
        standing, for_the_run = grants["global"], grants["run"]

        mate_dir = tmp_path / "mate"
        mate_dir.mkdir()
        [refused, revoked] = as_mate(APPROVER, d.sock, mate_dir, [
            ("grant.revoke", {"id": standing["id"]}), ("grant.revoke", {"id": for_the_run["id"]})])
        assert not refused.get("ok"), f"the approver revoked the owner's global grant: {refused}"
        error = refused["error"]
        assert error["code"] == "not-allowed", error
        assert "owner" in error["message"] and "global" in error["message"], error
        assert "ask the owner" in error["hint"], error
        assert [g["id"] for g in owner_call(d, "grants.list")] == [standing["id"]]
        denied = json.loads(d.cli("history", "--kind", "operator.denied_op", "--json").stdout)
        assert [(r["actor"], r["data"]["op"], r["data"].get("scope")) for r in denied] == [
            (APPROVER, "grant.revoke", "global")], denied
        assert [r["data"]["grant_id"] for r in json.loads(
            d.cli("history", "--kind", "grant.revoked", "--json").stdout)] == [for_the_run["id"]]

        # What an approver may do: a grant of one run (revoked above); the owner, any.
        assert revoked.get("ok"), revoked
        owner_call(d, "grant.revoke", id=standing["id"])
        assert owner_call(d, "grants.list") == []
    finally:
        deny_all(d)
        if t is not None:
            t.join(timeout=60)
        d.stop()
