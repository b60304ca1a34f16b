"""A security commit whose waiter gave up is withdrawn, not committed later (review s33, helper
121 finding B). Before, the timed-out item stayed queued and its row landed once the store
moved again: a run reported "not started" had a recorded start (and `audit verify` then read
the run's notes as tampering), and a revoke reported refused was in the history while the grant
kept allowing. Now a queued item is cancelled and skipped before its insert; one already in
the batch being committed is waited for (it is behind nothing), and only if even that does not
come is the caller told it may yet be recorded (store/waits.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from store.audit import verify
from store.db import StoreError, open_db
from store.writer import StoreWriter

Make = Callable[..., StoreWriter]
Raw = Callable[[], sqlite3.Connection]


def _started(raw: Raw) -> int:
    return raw().execute("SELECT count(*) FROM events WHERE kind = 'run.started'").fetchone()[0]


def _verified(db_path: Path, key: bytes) -> None:
    db = open_db(db_path, readonly=True)
    try:
        result = verify(db, key)
        assert result.ok, result
    finally:
        db.close()


def _hold(w: StoreWriter) -> tuple[threading.Event, Future[Any]]:
    """The writer busy in a batch (a call waiting on an event), as a stuck store is."""
    gate = threading.Event()
    held = w.call(lambda db: gate.wait(20))
    deadline = time.monotonic() + 5
    while not held.running():
        assert time.monotonic() < deadline, "the writer never took the call"
        time.sleep(0.01)
    return gate, held


def _queued(w: StoreWriter, n: int) -> None:
    deadline = time.monotonic() + 5
    while w.stats()["queued"] < n:
        assert time.monotonic() < deadline, w.stats()
        time.sleep(0.01)


def test_a_commit_that_timed_out_while_queued_is_not_recorded(make_writer: Make, raw: Raw,
                                                              db_path: Path, key: bytes) -> None:
    w = make_writer()
    gate, held = _hold(w)
    with pytest.raises(StoreError, match="timed out"):
        w.commit("run.started", run_id="r1", text="reported not started", timeout=0.3)
    gate.set()
    held.result(5)
    w.flush()
    assert _started(raw) == 0  # the caller said "not recorded": so it is not
    w.commit("approval.decided", text="the chain goes on")
    w.close()
    _verified(db_path, key)


def test_an_acommit_that_timed_out_while_queued_is_not_recorded(make_writer: Make, raw: Raw,
                                                                db_path: Path,
                                                                key: bytes) -> None:
    w = make_writer()
    gate, held = _hold(w)

    async def late() -> None:
        await w.acommit("run.started", run_id="r1", text="reported not started", timeout=0.3)

    with pytest.raises(StoreError, match="timed out"):
        asyncio.run(late())
    gate.set()
    held.result(5)
    w.flush()
    assert _started(raw) == 0
    w.close()
    _verified(db_path, key)


def _commit_in_batch(w: StoreWriter, timeout: float, slow_s: float) -> dict[str, Any]:
    """A commit whose waiter times out while its batch is committing: the batch holds it,
    then a call that takes slow_s, in the same transaction."""
    gate, held = _hold(w)
    out: dict[str, Any] = {}

    def commit() -> None:
        try:
            out["row"] = w.commit("run.started", run_id="r1", text="in the batch",
                                  timeout=timeout)
        except StoreError as exc:
            out["error"] = exc

    t = threading.Thread(target=commit)
    t.start()
    _queued(w, 1)
    w.call(lambda db: time.sleep(slow_s))  # same batch, after the event: the commit waits on it
    gate.set()
    held.result(5)
    t.join(20)
    assert not t.is_alive()
    return out


def test_a_commit_timed_out_in_the_committing_batch_gets_its_outcome(
        make_writer: Make, raw: Raw, db_path: Path, key: bytes) -> None:
    w = make_writer()
    out = _commit_in_batch(w, timeout=0.5, slow_s=2.0)
    # it could no longer be withdrawn, and it committed: the caller is told so, not "not recorded"
    assert "error" not in out, out
    assert out["row"]["kind"] == "run.started"
    assert _started(raw) == 1
    w.close()
    _verified(db_path, key)


def test_a_commit_still_unsettled_is_said_to_be_uncertain(
        make_writer: Make, raw: Raw, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import waits
    from store.waits import StoreUncertain

    monkeypatch.setattr(waits, "SETTLE_S", 0.3)
    w = make_writer()
    out = _commit_in_batch(w, timeout=0.3, slow_s=2.0)
    assert isinstance(out.get("error"), StoreUncertain), out
    assert "may yet be recorded" in str(out["error"])
    w.flush()
    assert _started(raw) == 1  # it did land: which is why the caller was not told otherwise


def test_a_flush_whose_waiter_gave_up_does_not_kill_the_writer(make_writer: Make) -> None:
    """Storage.flush() is bounded now (it waited for ever on a stuck store); asyncio's timeout
    cancels the index waiter, and the writer must skip it, not die on resolving it."""
    from store import fts

    w = make_writer()
    w.commit("approval.decided", text="one")
    w.flush()
    ends = w.call(fts.ends).result(5)
    gave_up = w._asked(lambda: w._index.want((ends[0] + 1, ends[1])))
    assert gave_up.cancel()  # what wait_for does to a bounded aflush's index wait
    w.record_output("r1", "out", "a line")  # and to its wait for a run's lines (s46)
    lines_given_up = w._asked(lambda: w._q.lines_in(["r1"]))
    lines_given_up.cancel()  # (may be done already: then nothing to skip)
    w.commit("approval.decided", text="two")
    w.flush(timeout=10)
    assert w.alive and w.stats()["last_error"] is None
