"""Review h142: await_ names a record that lands after its waiter was cancelled in the first
wait (7c3a2bb), but not one whose waiter is cancelled during the SETTLE_S wait that follows a
timeout: the record is in the committing batch, cannot be withdrawn, its caller is gone and
never acts on it, and it lands with no store.unconfirmed naming it (an allow reads as applied
in `policy why`, counts in `policy shadow`, a run start is restored and marked lost)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from store import waits
from store.db import open_db
from store.writer import StoreWriter
from tests.core.store_stall import STALL_S, stall_batches


def test_a_waiter_cancelled_while_settling_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()

    async def scene() -> None:
        task = asyncio.ensure_future(
            w.acommit("policy.decision", run_id="r1", data={"action": "allow"}, timeout=0.3))
        # past the 0.3 s timeout, inside the SETTLE_S (0.3 s) wait, before the stall ends
        await asyncio.sleep(0.3 + waits.SETTLE_S / 2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    armed["on"] = True
    try:
        asyncio.run(scene())
        armed["on"] = False
        w.flush(timeout=STALL_S * 4)
    finally:
        armed["on"] = False
        w.close()
    db = open_db(tmp_path / "h.db", readonly=True)
    try:
        rows = db.conn.execute("SELECT id, kind, data FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    decided = [i for i, k, _ in rows if k == "policy.decision"]
    assert len(decided) == 1, rows
    notes = [json.loads(d)["event_id"] for _, k, d in rows if k == "store.unconfirmed"]
    assert notes == decided, f"the allow landed unwaited and nothing names it: {rows}"
