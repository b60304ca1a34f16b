"""An approval request whose approval.requested record is uncertain (store/waits.StoreUncertain)
is refused, and a close is recorded for it (tried again while the stuck store withdraws it):
when the request lands, the history does not show it pending for ever. Review s33 (helper
129). The stall: store.audit.write_head sleeps 1.5 s inside the batch; acommit timeout 0.3 s,
SETTLE_S 0.3 s."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from console.daemon.inbox import Inbox
from store.writer import StoreWriter

from .store_stall import stall_batches


def test_an_uncertain_request_gets_a_recorded_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    armed = stall_batches(monkeypatch)
    w = StoreWriter(tmp_path / "h.db", os.urandom(32)).start()

    async def record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return await w.acommit(kind, run_id=data.get("run_id"), actor=data.get("actor"),
                               text=str(data.get("text", ""))[:500], data=data, timeout=0.3)

    inbox = Inbox(record, timeout_s=5)
    armed["on"] = True
    try:
        outcome = asyncio.run(inbox.submit("r1", "demo", "network", "bad.example.net:443"))
        armed["on"] = False
        w.flush(timeout=10)
        rows = w.call(lambda db: db.conn.execute(
            "SELECT kind, data FROM events WHERE kind LIKE 'approval.%' ORDER BY id"
        ).fetchall()).result(5)
    finally:
        armed["on"] = False
        w.close()
    assert not outcome.allow and "not confirmed" in outcome.reason, outcome
    asked = {json.loads(d)["id"] for k, d in rows if k == "approval.requested"}
    closed = {json.loads(d).get("id") or json.loads(d).get("request_id")
              for k, d in rows if k != "approval.requested"}
    assert asked, rows  # the request did land
    assert asked <= closed, f"requests pending for good in the history: {asked - closed}"
