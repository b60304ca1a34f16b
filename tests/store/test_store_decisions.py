"""The read-side queries the daemon's policy and report operations use (store/decisions.py,
store/run_activity.py), on a real database written by the real writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store.db import open_db
from store.decisions import events_for_request, past_requests
from store.run_activity import run_activity
from store.writer import StoreWriter


def _history(make_writer: Callable[..., StoreWriter]) -> None:
    w = make_writer()
    w.commit("approval.requested", run_id="r1", data={"id": "abcd", "kind": "exec",
                                                       "subject": "make lint", "run_id": "r1"})
    w.commit("approval.decided", run_id="r1", actor="ann",
             data={"id": "abcd", "kind": "exec", "subject": "make lint", "allow": True,
                   "run_id": "r1", "provenance": {"kind": "person", "person": "ann"}})
    w.commit("policy.changed", actor="ann", data={"cause": "profile-rule", "request_id": "abcd"})
    w.commit("approval.requested", run_id="r1", data={"id": "other", "kind": "exec",
                                                       "subject": "ls", "run_id": "r1"})
    w.commit("policy.decision", run_id="r1", data={"kind": "exec", "subject": "ls",
                                                    "action": "deny", "run_id": "r1"})
    w.commit("net.decision", run_id="r1", data={"host": "pypi.org", "port": 443,
                                                 "action": "allow", "run_id": "r1"})
    w.commit("net.decision", run_id="r1", data={"host": "x.invalid", "port": 443,
                                                 "action": "ask", "run_id": "r1"})
    w.commit("net.closed", run_id="r1", data={"bytes_up": 10, "bytes_down": 32})
    w.commit("net.closed", run_id="r1", data={"bytes_up": 5, "bytes_down": 8})
    w.close()


def test_a_requests_events_include_the_rule_it_saved(make_writer: Callable[..., StoreWriter],
                                                     db_path: Path) -> None:
    _history(make_writer)
    db = open_db(db_path, readonly=True)
    request = events_for_request(db, "abcd")
    kinds = [e["kind"] for e in request.events]
    assert request.earlier == 0
    assert kinds == ["approval.requested", "approval.decided", "policy.changed"]
    assert events_for_request(db, "nope").events == []


def test_past_requests_are_newest_first_without_the_gates_asks(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    _history(make_writer)
    past = past_requests(open_db(db_path, readonly=True))
    assert past == [
        {"kind": "network", "subject": "pypi.org:443", "decision": "allow", "run_id": "r1"},
        {"kind": "exec", "subject": "ls", "decision": "deny", "run_id": "r1"},
        {"kind": "exec", "subject": "make lint", "decision": "allow", "run_id": "r1"},
    ]


def test_run_activity_counts_asks_decisions_and_connections(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    _history(make_writer)
    activity = run_activity(open_db(db_path, readonly=True), "r1")
    assert activity == {
        "approvals_asked": 2, "approved": 1, "denied_by_person": 0, "policy_allowed": 0,
        "policy_denied": 1, "net": {"allow": 1, "ask": 1},
        "connections": {"count": 2, "bytes_up": 15, "bytes_down": 40},
        "allows_not_applied": 0,
    }


def test_a_reused_request_id_gives_the_newest_requests_events_only(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    """Ids are unique within one daemon's life only: the newest request with the id is the one
    asked about, and a pending one is not given an older request's decision."""
    w = make_writer()
    w.commit("approval.requested", run_id="r1", data={"id": "abcd", "subject": "make lint"})
    w.commit("approval.decided", run_id="r1", data={"id": "abcd", "allow": True})
    w.commit("policy.changed", data={"cause": "profile-rule", "request_id": "abcd"})
    w.commit("approval.requested", run_id="r2", data={"id": "abcd", "subject": "rm -rf x"})
    w.close()
    request = events_for_request(open_db(db_path, readonly=True), "abcd")
    assert [(e["kind"], e["run_id"]) for e in request.events] == [("approval.requested", "r2")]
    assert request.earlier == 1
