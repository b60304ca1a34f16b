"""A run's end whose run.ended record is uncertain (store/waits.StoreUncertain) and then lands:
the run's row keeps the notes of the recorded end (no "could not record the end" added), so
`audit verify` holds on this honest history. Review s33 (helper 129). The stall:
store.batch.trace_seal (inside the SEAL item's transaction) sleeps 1.5 s; run.ended's timeout
0.3 s, SETTLE_S 0.3 s."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from console.config.load import load
from console.daemon import runs
from console.daemon.bus import Bus
from console.daemon.runs import RunManager
from console.paths import resolve
from console.protocol import LIVE_STATES, Failure
from store import batch, waits
from store.audit import verify
from store.db import open_db
from store.writer import StoreWriter


class BrokenBackend:
    name = "bwrap"

    def prestart(self) -> None:
        pass

    async def start(self, spec: Any, prepare: Any = None) -> Any:
        raise RuntimeError("the backend failed")


def test_an_uncertain_run_end_that_lands_verifies(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "SETTLE_S", 0.3)
    monkeypatch.setattr(runs, "END_WAIT_S", 0.3)
    real = batch.trace_seal

    def slow_seal(conn: Any, run_id: str) -> Any:
        time.sleep(1.5)  # the batch holding run.ended is committing, slowly
        return real(conn, run_id)

    monkeypatch.setattr(batch, "trace_seal", slow_seal)
    paths = resolve(tmp_path / "home")
    paths.ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    cfg = load(tmp_path / "config.toml",
               text='[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    key = os.urandom(32)
    writer = StoreWriter(paths.db_file, key).start()
    try:
        manager = RunManager(paths, lambda: cfg, writer, Bus(),
                             choose_backend=lambda *a: BrokenBackend())
        with pytest.raises(Failure):
            asyncio.run(manager.start("t", actor="alice", workspace=str(ws)))
        writer.flush()
        ended = writer.call(lambda db: db.conn.execute(
            "SELECT count(*) FROM events WHERE kind='run.ended'").fetchone()[0]).result(5)
        rows = writer.call(lambda db: db.conn.execute(
            "SELECT state, info FROM runs").fetchall()).result(5)
    finally:
        writer.close()
    db = open_db(paths.db_file, readonly=True)
    try:
        result = verify(db, key, live_states=LIVE_STATES)
    finally:
        db.close()
    assert ended == 1  # the end did land
    assert result.ok, (rows, result)  # an honest history must verify


class ShortEnd(StoreWriter):
    """run.ended's wait as short as END_WAIT_S below, through the writer's own acommit too
    (how the end was committed before s34: the before-run of the test below)."""

    async def acommit(self, kind: str, **kw: Any) -> dict[str, Any]:
        if kind == "run.ended":
            kw["timeout"] = 0.3
        return await super().acommit(kind, **kw)


class StallingBackend(BrokenBackend):
    """Fails to start, but first stalls the store: a batch with another security record
    stalls in write_head (tests/core/store_stall.py), so the run's end queues behind it."""

    def __init__(self, writer: StoreWriter, armed: dict[str, bool]) -> None:
        self.writer, self.armed = writer, armed

    async def start(self, spec: Any, prepare: Any = None) -> Any:
        self.armed["on"] = True
        self.writer.submit("daemon.stop", actor="test", text="a record in the stalled batch")
        async with asyncio.timeout(10):
            while not self.armed["stalling"]:  # until that batch is committing (stalled)
                await asyncio.sleep(0.01)
        raise RuntimeError("the backend failed")


def test_a_run_end_queued_behind_a_stuck_store_lands_with_its_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review s33 (helper 130): the end, queued behind a stuck batch, was withdrawn when its
    wait ended, while the run's row queued ahead of it (not withdrawable) landed saying the
    run ended: a row without its run.ended, which `audit verify` names. Now the end stays
    queued and lands with the row."""
    from tests.core.store_stall import stall_batches

    release = threading.Event()  # the store stalls until the test lets it go
    armed = stall_batches(monkeypatch, until=release)
    monkeypatch.setattr(runs, "END_WAIT_S", 0.3, raising=False)
    paths = resolve(tmp_path / "home")
    paths.ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    cfg = load(tmp_path / "config.toml",
               text='[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    key = os.urandom(32)
    writer = ShortEnd(paths.db_file, key).start()
    try:
        manager = RunManager(paths, lambda: cfg, writer, Bus(),
                             choose_backend=lambda *a: StallingBackend(writer, armed))
        with pytest.raises(Failure):
            asyncio.run(manager.start("t", actor="alice", workspace=str(ws)))
        answered_while_stalled = armed["stalling"]  # or start waited out the store
        armed["on"] = False
        release.set()
        writer.flush(timeout=10)
        ended = writer.call(lambda db: db.conn.execute(
            "SELECT count(*) FROM events WHERE kind='run.ended'").fetchone()[0]).result(5)
        rows = writer.call(lambda db: db.conn.execute(
            "SELECT state, info FROM runs").fetchall()).result(5)
    finally:
        armed["on"] = False
        release.set()
        writer.close()
    db = open_db(paths.db_file, readonly=True)
    try:
        result = verify(db, key, live_states=LIVE_STATES)
    finally:
        db.close()
    assert ended == 1, rows  # the end landed, after the row queued ahead of it
    assert result.ok, (rows, result)
    assert answered_while_stalled  # the end did not wait for the stuck store
