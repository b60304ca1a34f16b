"""Request ids are four characters and unique among the requests one daemon holds, not across
restarts. Before, `policy why ID` mixed the events of every request that ever had the id: a
request pending now was shown with an older request's decision, and the events of both were
listed as one request's."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, history_writer


def _request(w: object, run_id: str, subject: str, person: str, allow: bool) -> None:
    w.commit("approval.requested", run_id=run_id,  # type: ignore[attr-defined]
             data={"id": "abcd", "kind": "exec", "subject": subject, "run_id": run_id})
    w.commit("approval.decided", run_id=run_id, actor=person,  # type: ignore[attr-defined]
             data={"id": "abcd", "kind": "exec", "subject": subject, "allow": allow,
                   "run_id": run_id, "provenance": {"kind": "person", "person": person}})


def test_policy_why_shows_the_newest_request_of_a_reused_id(
        home: Path, daemon_env: dict[str, str]) -> None:
    with history_writer(home) as w:
        _request(w, "r1old", "make lint", "ann", True)  # an earlier daemon's request
        w.commit("policy.changed", actor="ann",  # type: ignore[attr-defined]
                 data={"cause": "profile-rule", "request_id": "abcd"})
        _request(w, "r2new", "rm -rf build", "bob", False)  # a later daemon's, same id
    d = Daemon(home, daemon_env)
    d.start()
    try:
        why = json.loads(d.cli("policy", "why", "abcd", "--json").stdout)
        assert why["state"] == "denied", why
        assert [e["run_id"] for e in why["events"]] == ["r2new", "r2new"], why["events"]
        assert [e["kind"] for e in why["events"]] == ["approval.requested", "approval.decided"]
        assert why["earlier"] == 1, why
        shown = d.cli("policy", "why", "abcd").stdout
        assert "1 earlier request had the id abcd" in shown, shown
        assert "r1old" not in shown and "ann" not in shown, shown
    finally:
        d.stop()
