"""`policy shadow` and `policy why` read a late record (a `store.unconfirmed` names it) the same
way: an allow that landed after its wait ended was refused, so it is not a past allow; a deny
that landed late took effect all the same (the daemon refuses whatever it could not record),
so it stays a past deny. Before review h144 `past_requests` dropped both, and a candidate
rule that would allow what was denied showed no change for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store.db import open_db
from store.decisions import final_decision, past_requests
from store.run_activity import run_activity
from store.writer import StoreWriter


def test_a_late_deny_stays_in_shadow_and_a_late_allow_does_not(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    w = make_writer()
    rows = [
        w.commit("policy.decision", run_id="r1", data={"kind": "exec", "subject": "rm -rf x",
                                                        "action": "deny", "run_id": "r1"}),
        w.commit("policy.decision", run_id="r1", data={"kind": "exec", "subject": "make",
                                                        "action": "allow", "run_id": "r1"}),
        w.commit("net.decision", run_id="r1", data={"host": "a.invalid", "port": 443,
                                                     "action": "deny", "run_id": "r1"}),
        w.commit("net.decision", run_id="r1", data={"host": "b.invalid", "port": 443,
                                                     "action": "allow", "run_id": "r1"}),
        w.commit("approval.decided", run_id="r1", data={"id": "d1", "kind": "exec",
                 "subject": "curl x", "allow": False, "run_id": "r1"}),
        w.commit("approval.decided", run_id="r1", data={"id": "a1", "kind": "exec",
                 "subject": "curl y", "allow": True, "run_id": "r1"}),
    ]
    for row in rows:
        w.commit("store.unconfirmed", run_id="r1",
                 data={"event_id": row["id"], "event_kind": row["kind"], "waited_s": 1.0})
    w.close()
    past = past_requests(open_db(db_path, readonly=True))
    got = sorted((p["subject"], p["decision"]) for p in past)
    assert got == [("a.invalid:443", "deny"), ("curl x", "deny"), ("rm -rf x", "deny")], got
    # the same rule as final_decision's: only an allow is "not applied"
    for row in rows[4:]:
        note = {"id": row["id"] + 100, "kind": "store.unconfirmed",
                "data": {"event_id": row["id"]}}
        _, unapplied = final_decision([{**row, "data": row["data"]}, note])
        assert unapplied == bool(row["data"]["allow"])
    # `pilothouse report` counts the late allows apart, the late denies as denies
    activity = run_activity(open_db(db_path, readonly=True), "r1")
    assert (activity["approved"], activity["denied_by_person"]) == (0, 1), activity
    assert (activity["policy_allowed"], activity["policy_denied"]) == (0, 1), activity
    assert activity["net"] == {"deny": 1} and activity["allows_not_applied"] == 3, activity
