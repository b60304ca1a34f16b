"""Review h179: an approver made the owner's standing rules.

`approval.decide` with scope `profile` wrote the rule into the daemon owner's config file, and
with scope `global` made a grant over every run (the owner's too) until the daemon stops; an
approver (a real second user in [team] approvers, on operator.sock) could do both, though they
may not even reload that config. Secure: an approver decides this request, this run or for a
while; `profile` and `global` are the owner's alone: refused (`not-allowed`, saying why and
what to do), nothing decided, nothing written, the attempt recorded as `operator.denied_op`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.approvals.test_inbox_and_team_attacks import (
    deny_all,
    owner_call,
    pending_rows,
    root_only,
    start_agent,
    team_daemon,
)
from tests.approvals.test_team_reads_h135 import as_mate
from tests.conftest import needs_bwrap
from tests.core.test_team import APPROVER, as_user


@root_only
@needs_bwrap
@pytest.mark.parametrize("scope", ["profile", "global"])
def test_an_approver_cannot_make_a_standing_rule(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path, scope: str) -> None:
    d = team_daemon(home, daemon_env, '[profiles.shell.exec]\nallow = ["echo"]\n')
    config = home / "config.toml"
    before = config.read_bytes()
    t = None
    try:
        t = start_agent(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        row = pending_rows(d)[0]
        rid = row["id"]
        mate_dir = tmp_path / "mate"
        mate_dir.mkdir()
        [answer] = as_mate(APPROVER, d.sock, mate_dir, [(
            "approval.decide", {"id": rid, "allow": True, "scope": scope,
                                "created_at": row["created_at"]})])
        assert not answer.get("ok"), f"the approver's {scope} decision was made: {answer}"
        error = answer["error"]
        assert error["code"] == "not-allowed", error
        assert "owner" in error["message"] and scope in error["message"], error
        assert "once" in error["hint"] and "run" in error["hint"], error
        # Nothing decided, nothing written, no grant.
        assert [r["id"] for r in owner_call(d, "approvals.list")] == [rid]
        assert config.read_bytes() == before
        assert owner_call(d, "grants.list") == []
        denied = json.loads(d.cli("history", "--kind", "operator.denied_op", "--json").stdout)
        assert [(r["actor"], r["data"]["op"], r["data"].get("scope")) for r in denied] == [
            (APPROVER, "approval.decide", scope)], denied
        assert not json.loads(d.cli("history", "--kind", "approval.decided", "--json").stdout)

        # The CLI says so before it previews or asks anything; the daemon is not asked to decide.
        out = as_user(APPROVER, d, "approve", rid, "--scope", scope, "--yes")
        assert out.returncode != 0, out.stdout
        assert "owner" in out.stderr and "this writes to" not in out.stdout, (out.stdout, out.stderr)
        assert [r["id"] for r in owner_call(d, "approvals.list")] == [rid]
        again = json.loads(d.cli("history", "--kind", "operator.denied_op", "--json").stdout)
        assert len(again) == len(denied), again

        # What an approver may do: this run.
        out = as_user(APPROVER, d, "approve", rid, "--scope", "run", "--yes")
        assert out.returncode == 0, out.stderr
        decided = json.loads(d.cli("history", "--kind", "approval.decided", "--json").stdout)
        assert [r["actor"] for r in decided] == [APPROVER], decided
        assert config.read_bytes() == before
    finally:
        deny_all(d)
        if t is not None:
            t.join(timeout=60)
        d.stop()


def test_the_clis_standing_scopes_are_the_policys() -> None:
    """The CLI's standing scope words (it does not load console.policy to start) are those
    parse_scope reads as standing."""
    from console.cli.approvals import STANDING_SCOPE_WORDS
    from console.policy import parse_scope
    from console.protocol import STANDING_SCOPES

    for word in ("once", "run", "10m", "2h", "profile", "global", "everywhere", " Profile "):
        assert parse_scope(word).standing == (word.strip().lower() in STANDING_SCOPE_WORDS), word
    assert set(STANDING_SCOPE_WORDS) == {*STANDING_SCOPES, "everywhere"}
