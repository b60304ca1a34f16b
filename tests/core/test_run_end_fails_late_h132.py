"""Helper 132 on 51c41d5: a run's end that outlived its wait (END_WAIT_S) stays queued; if its
batch then FAILS, neither the end nor the row queued with it is stored and nothing says so:
the row keeps saying the run is live (until the next start marks it lost) though it is gone
from the live table. Before 51c41d5 a withdrawn end was followed by the row with a "could not
record the end" note; the end's failure must still bring that note and row."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
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
from store.writer import StoreWriter
from tests.core.test_run_end_uncertain_s33b import BrokenBackend


def test_a_late_end_whose_batch_fails_leaves_the_row_saying_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waits, "SETTLE_S", 0.3)
    monkeypatch.setattr(runs, "END_WAIT_S", 0.3)
    real = batch.trace_seal
    stall = {"on": True}

    def failing_seal(conn: Any, run_id: str) -> Any:
        if stall["on"]:
            stall["on"] = False
            time.sleep(1.0)  # the batch holding the row and run.ended stalls, then fails
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn, run_id)

    monkeypatch.setattr(batch, "trace_seal", failing_seal)
    paths = resolve(tmp_path / "home")
    paths.ensure()
    ws = tmp_path / "ws"
    ws.mkdir()
    cfg = load(tmp_path / "config.toml",
               text='[profiles.t]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    writer = StoreWriter(paths.db_file, os.urandom(32)).start()

    async def scene(manager: RunManager) -> None:
        with pytest.raises(Failure):
            await manager.start("t", actor="alice", workspace=str(ws))
        assert not manager.runs  # gone from the live table
        await asyncio.sleep(1.5)  # the daemon lives on; the batch has failed by now
        await asyncio.to_thread(writer.flush, 10)

    try:
        manager = RunManager(paths, lambda: cfg, writer, Bus(),
                             choose_backend=lambda *a: BrokenBackend())
        asyncio.run(scene(manager))
        rows = writer.call(lambda db: db.conn.execute(
            "SELECT state, info FROM runs").fetchall()).result(5)
        ended = writer.call(lambda db: db.conn.execute(
            "SELECT count(*) FROM events WHERE kind='run.ended'").fetchone()[0]).result(5)
    finally:
        writer.close()
    assert ended == 0  # the scene: the end's batch failed
    assert len(rows) == 1, rows
    state, info = rows[0]
    notes = json.loads(info or "{}").get("notes", [])
    assert state not in LIVE_STATES, (
        f"the run ended and left the live table, but its row still says {state!r} and no note "
        f"says its end was not recorded: {rows}")
    assert any("could not record the end" in n for n in notes), rows
