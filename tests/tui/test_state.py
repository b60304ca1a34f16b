"""The console's model of the daemon: snapshots and events in any order end up right."""

from __future__ import annotations

from console.tui.state import ConsoleState
from tests.tui.fixed import APPROVALS, NOW, RUNS


def test_a_stale_listing_does_not_bring_back_a_closed_request() -> None:
    state = ConsoleState()
    state.load_approvals(APPROVALS)
    first = APPROVALS[0]
    changes = state.apply({"kind": "approval.resolved", "request": {**first, "state": "allowed"}})
    assert [c.topic for c in changes] == ["approvals", "resolved"]
    assert first["id"] not in state.approvals
    # approvals.list answered before the decision, read after it: the request stays closed
    changes = state.load_approvals(APPROVALS)
    assert first["id"] not in state.approvals and not any(c.new for c in changes)
    assert list(state.approvals) == [APPROVALS[1]["id"]]


def test_an_ended_run_never_turns_live_again() -> None:
    state = ConsoleState()
    state.load_runs(RUNS)
    live = RUNS[0]
    state.apply({"kind": "run.state", "run_id": live["id"],
                 "run": {**live, "state": "exited", "exit_code": 0, "stats": None}})
    assert state.runs[live["id"]]["state"] == "exited"
    assert state.runs[live["id"]]["stats"] == live["stats"], "run.state keeps the last sample"
    state.load_runs([live])  # a runs.list taken just before the end
    assert state.runs[live["id"]]["state"] == "exited"
    assert state.ended_unknown({r["id"] for r in RUNS}) == []


def test_inbox_is_oldest_first_and_counts_per_run() -> None:
    state = ConsoleState()
    newer, older = APPROVALS[1], APPROVALS[0]
    state.apply({"kind": "approval.requested", "request": newer})
    state.apply({"kind": "approval.requested", "request": older})
    assert list(state.approvals) == [older["id"], newer["id"]]
    assert state.oldest() == older
    assert len(state.pending(older["run_id"])) == 1
    state.timeout_s = 120
    assert state.expires_in(older, NOW) == 78


def test_tokens_per_second_over_the_window() -> None:
    state = ConsoleState()
    for i in range(3):
        state.apply({"kind": "tokens", "run_id": "k3mx", "ts": NOW - i, "completion_tokens": 300})
    assert state.token_rate("k3mx", NOW) == 900 / 30
    assert state.token_rate("k3mx", NOW + 120) is None
    assert state.token_rate("none", NOW) is None
