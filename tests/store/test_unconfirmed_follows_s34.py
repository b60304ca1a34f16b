"""A security record whose wait ended uncertain (store/waits.StoreUncertain: timed out inside
the batch being committed) may land later all the same. The daemon refused what it records
(a rule's allow, a person's allow), so the history must not show it as given: a
`store.unconfirmed` record follows it and names it; `policy why` calls such a decision "not
applied" and `policy shadow` does not count it. Review s33, helper 131 (findings 2 and 3):
before, the allow landed alone. The stall: tests/core/store_stall.py (store.audit.write_head
sleeps 1.5 s inside the batch; timeouts 0.3 s, SETTLE_S 0.3 s)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from console.policy.types import Provenance
from console.protocol import Failure
from store.decisions import events_for_request, final_decision, past_requests
from store.waits import StoreUncertain
from store.writer import StoreWriter
from tests.core.store_stall import stall_batches, stalled_inbox


def _events(w: StoreWriter) -> list[tuple[int, str, Any]]:
    import json

    w.flush(timeout=10)
    rows = w.call(lambda db: db.conn.execute(
        "SELECT id, kind, data FROM events ORDER BY id").fetchall()).result(5)
    return [(i, k, json.loads(d) if d else None) for i, k, d in rows]


def _followed(events: list[tuple[int, str, Any]], kind: str) -> tuple[int, dict[str, Any]]:
    """(the id of the one `kind` row, the store.unconfirmed row that names it), asserting both."""
    ids = [i for i, k, _ in events if k == kind]
    assert len(ids) == 1, events
    notes = [(i, d) for i, k, d in events if k == "store.unconfirmed"]
    assert [d["event_id"] for _, d in notes] == ids, (
        f"the {kind} row that landed after its wait ended is not named by a "
        f"store.unconfirmed record: {events}")
    note_id, note = notes[0]
    assert note_id > ids[0] and note["event_kind"] == kind
    return ids[0], note


def _writer(tmp_path: Path) -> StoreWriter:
    return StoreWriter(tmp_path / "h.db", os.urandom(32)).start()


@pytest.mark.parametrize("how", ["acommit", "commit"])
def test_a_landed_uncertain_record_is_followed_by_one_that_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    armed = stall_batches(monkeypatch)
    w = _writer(tmp_path)
    data = {"run_id": "r1", "kind": "exec", "subject": "make", "action": "allow"}
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            if how == "acommit":
                asyncio.run(w.acommit("policy.decision", run_id="r1", data=data, timeout=0.3))
            else:
                w.commit("policy.decision", run_id="r1", data=data, timeout=0.3)
        armed["on"] = False
        events = _events(w)
    finally:
        armed["on"] = False
        w.close()
    _, note = _followed(events, "policy.decision")
    assert note["waited_s"] == pytest.approx(0.6)


def test_a_record_whose_batch_failed_gets_no_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch, fail=True)
    w = _writer(tmp_path)
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            asyncio.run(w.acommit("policy.decision", run_id="r1",
                                  data={"action": "allow"}, timeout=0.3))
        armed["on"] = False
        events = _events(w)
    finally:
        armed["on"] = False
        w.close()
    kinds = [k for _, k, _ in events]
    assert "policy.decision" not in kinds and "store.unconfirmed" not in kinds, events


def test_a_rules_allow_that_was_refused_is_not_left_standing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 2: a rule-decided allow whose policy.decision record was uncertain."""
    armed = stall_batches(monkeypatch)
    w = _writer(tmp_path)
    inbox = stalled_inbox(w)
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            asyncio.run(inbox.record_policy("r1", "demo", "exec", "make test", "allow",
                                            Provenance("rule", detail="allow make")))
        armed["on"] = False
        events = _events(w)
        past = w.call(lambda db: past_requests(db)).result(5)
    finally:
        armed["on"] = False
        w.close()
    _followed(events, "policy.decision")
    assert not [p for p in past if p["subject"] == "make test"], past  # shadow: never given


def test_a_persons_allow_that_was_not_applied_reads_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 3: a person's allow whose approval.decided record was uncertain: refused, not
    applied; when it lands, `policy why` says "not applied", not "allowed"."""
    armed = stall_batches(monkeypatch)
    w = _writer(tmp_path)
    inbox = stalled_inbox(w)

    async def scene() -> tuple[str, Failure | None, bool]:
        asking = asyncio.ensure_future(inbox.submit("r1", "demo", "exec", "make deploy"))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if inbox.pending():
                break
        rid = inbox.pending()[0].id
        armed["on"] = True
        failed = None
        try:
            await inbox.decide(rid, True, "alice")
        except Failure as exc:
            failed = exc
        armed["on"] = False
        still_pending = any(r.id == rid for r in inbox.pending())
        await asyncio.to_thread(w.flush, 10)  # the stalled batch is done: the close lands
        await inbox.cancel_run("r1")
        outcome = await asking
        assert not outcome.allow, outcome
        return rid, failed, still_pending

    try:
        rid, failed, still_pending = asyncio.run(scene())
        events = _events(w)
        request = w.call(lambda db: events_for_request(db, rid)).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert failed is not None and "not confirmed" in str(failed), failed
    assert still_pending  # nothing of the answer was applied
    decided = [i for i, k, d in events if k == "approval.decided" and d.get("allow")]
    assert len(decided) == 1, events
    notes = [d for _, k, d in events if k == "store.unconfirmed"]
    assert [n["event_id"] for n in notes] == decided and notes[0]["id"] == rid, events
    kinds = [e["kind"] for e in request.events]
    assert "store.unconfirmed" in kinds, kinds  # `policy why` shows it with the request
    final, unapplied = final_decision(request.events)
    assert final is not None and final["kind"] == "approval.cancelled", kinds
    # Had the request been closed by nothing after it, the allow would be the final event:
    # still read as not applied.
    upto = [e for e in request.events if e["kind"] != "approval.cancelled"]
    final, unapplied = final_decision(upto)
    assert final is not None and final["id"] == decided[0] and unapplied


def test_history_without_notes_reads_as_before() -> None:
    events = [{"id": 1, "kind": "approval.requested", "data": {}},
              {"id": 2, "kind": "approval.decided", "data": {"allow": True}}]
    assert final_decision(events) == (events[1], False)
    assert final_decision(events[:1]) == (None, False)


def test_a_refused_start_that_landed_late_is_not_restored_as_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run.started whose wait ended uncertain: the start was refused and nothing ran. When it
    lands, the next daemon start did rebuild its row from it and mark the run lost (helper 132's
    note): a run that never ran, reported lost."""
    from store.runs_table import restore_missing_rows

    armed = stall_batches(monkeypatch)
    w = _writer(tmp_path)
    armed["on"] = True
    try:
        with pytest.raises(StoreUncertain):
            asyncio.run(w.acommit("run.started", run_id="r9", timeout=0.3, data={
                "profile": "demo", "backend": "bwrap", "workspace": "/w", "command": ["true"]}))
        armed["on"] = False
        _followed(_events(w), "run.started")
        restored = w.call(lambda db: restore_missing_rows(db.conn)).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert restored == [], restored
