"""Helper 132's breaks of store.unconfirmed (6722baa): a waiter cancelled while its record's
batch commits, a writer closed while a stalled batch finishes, and a deny-side close (applied
whatever the store said) that `policy why` then called "not applied". The stall:
tests/core/store_stall.py."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from console.protocol import LIVE_STATES
from store.audit import verify
from store.db import open_db
from store.decisions import events_for_request, final_decision
from store.waits import StoreUncertain
from store.writer import StoreWriter
from tests.core.store_stall import STALL_S, stall_batches, stalled_inbox


def _rows(path: Path) -> list[tuple[int, str, Any]]:
    db = open_db(path, readonly=True)
    try:
        rows = db.conn.execute("SELECT id, kind, data FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    return [(i, k, json.loads(d) if d else None) for i, k, d in rows]


def _named(rows: list[tuple[int, str, Any]], kind: str) -> None:
    ids = [i for i, k, _ in rows if k == kind]
    assert len(ids) == 1, rows
    notes = [d["event_id"] for _, k, d in rows if k == "store.unconfirmed"]
    assert notes == ids, f"{kind} landed unwaited and no store.unconfirmed names it: {rows}"


def test_a_record_landing_while_the_writer_closes_is_still_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon stops (writer.close drains) while the stalled batch still commits: the
    allow lands during the drain, and its note must land in the same drain."""
    armed = stall_batches(monkeypatch)
    key = os.urandom(32)
    w = StoreWriter(tmp_path / "h.db", key).start()
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            w.commit("policy.decision", run_id="r1", data={"action": "allow"}, timeout=0.3)
        w.close(timeout=10)  # the batch is still stalled: it finishes inside the close
    finally:
        armed["on"] = False
        w.close()
    _named(_rows(tmp_path / "h.db"), "policy.decision")
    db = open_db(tmp_path / "h.db", readonly=True)
    try:
        assert verify(db, key, live_states=LIVE_STATES).ok
    finally:
        db.close()


def test_a_cancelled_waiter_whose_record_lands_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """await_ withdraws on CancelledError; a record already in the committing batch cannot
    be withdrawn, its caller never acts on it (it is gone), and it lands: as after a wait
    that ended, a note must name it."""
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()

    async def scene() -> None:
        task = asyncio.ensure_future(
            w.acommit("policy.decision", run_id="r1", data={"action": "allow"}, timeout=10))
        await asyncio.sleep(STALL_S / 3)  # its batch is committing now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    armed["on"] = True
    try:
        asyncio.run(scene())
        armed["on"] = False
        w.flush(timeout=10)
    finally:
        armed["on"] = False
        w.close()
    _named(_rows(tmp_path / "h.db"), "policy.decision")


def test_an_applied_cancellation_is_not_read_as_not_applied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deny-side close is applied whatever the store says (inbox._close_recorded): the
    request IS closed and the agent denied. When its uncertain record lands, `policy why`
    must not call it "not applied" (it said so), and the note must not say the daemon went
    on as if it were not recorded."""
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    inbox = stalled_inbox(w)

    async def scene() -> str:
        asking = asyncio.ensure_future(inbox.submit("r1", "demo", "exec", "make deploy"))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if inbox.pending():
                break
        rid = inbox.pending()[0].id
        armed["on"] = True
        await inbox.cancel_run("r1")  # applied though its record is uncertain
        outcome = await asking
        assert not outcome.allow
        assert not inbox.pending()
        armed["on"] = False
        return rid

    try:
        rid = asyncio.run(scene())
        w.flush(timeout=10)
        request = w.call(lambda db: events_for_request(db, rid)).result(5)
    finally:
        armed["on"] = False
        w.close()
    kinds = [e["kind"] for e in request.events]
    assert "store.unconfirmed" in kinds, kinds  # the scene did reach the uncertain landing
    final, unapplied = final_decision(request.events)
    assert final is not None and final["kind"] == "approval.cancelled"
    assert not unapplied, "an applied cancellation reads as 'not applied' in `policy why`"
    note = next(e for e in request.events if e["kind"] == "store.unconfirmed")
    assert "as if it was not recorded" not in note["text"], note["text"]


def test_the_note_is_queued_from_the_writer_thread_without_deadlock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held: the callback runs in the writer thread and takes writer._lock (submit); the
    thread resolves futures outside the lock, so it goes on."""
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            w.commit("approval.decided", data={"id": "q1", "allow": True}, timeout=0.3)
        armed["on"] = False
        w.flush(timeout=5)  # a deadlocked writer raises here
        assert threading.active_count() >= 1
    finally:
        armed["on"] = False
        w.close()
    _named(_rows(tmp_path / "h.db"), "approval.decided")


def test_a_profile_rules_policy_changed_does_not_close_the_request() -> None:
    """A profile-scope allow records approval.decided, then the saved rule's policy.changed
    (it carries the request id, so `policy why` shows it). final_decision took the
    policy.changed as the closing event: `policy why` said "denied" (no `allow` in its data)
    and "still pending" (no provenance in it) for an allow that was given."""
    prov = {"by": "person", "person": "alice", "scope": "profile"}
    events = [{"id": 1, "kind": "approval.requested", "data": {"id": "q1"}},
              {"id": 2, "kind": "approval.decided", "data": {"id": "q1", "allow": True,
                                                            "provenance": prov}},
              {"id": 3, "kind": "policy.changed", "data": {"request_id": "q1"}}]
    final, unapplied = final_decision(events)
    assert final is events[1] and not unapplied


def test_a_deny_named_unconfirmed_still_reads_denied() -> None:
    """A deny took effect whether or not its record was confirmed (inbox._close_recorded: a
    rule that outranks the approval closes it as denied, recorded as approval.decided)."""
    events = [{"id": 1, "kind": "approval.requested", "data": {"id": "q1"}},
              {"id": 2, "kind": "approval.decided", "data": {"id": "q1", "allow": False}},
              {"id": 3, "kind": "store.unconfirmed", "data": {"id": "q1", "event_id": 2}}]
    assert final_decision(events) == (events[1], False)
