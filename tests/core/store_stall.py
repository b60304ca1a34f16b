"""A store whose committing batch stalls on demand, for the tests of uncertain records (s33b):
`store.audit.write_head` runs inside the batch after its rows and before COMMIT, so a security
future is already running when it sleeps; with `fail` the batch then fails too. A record's
timeout and SETTLE_S shorter than the sleep make it StoreUncertain."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from console.daemon.inbox import Inbox
from store import audit, waits
from store.writer import StoreWriter

STALL_S = 1.5


def stall_batches(monkeypatch: pytest.MonkeyPatch, *, fail: bool = False,
                  until: threading.Event | None = None) -> dict[str, bool]:
    """Arm with `armed["on"] = True`: each batch then stalls STALL_S, or with `until` until it
    is set (30 s at most), and fails with `fail`; `armed["stalling"]` while one stalls."""
    monkeypatch.setattr(waits, "SETTLE_S", 0.3)
    armed = {"on": False, "stalling": False}
    real = audit.write_head

    def head(*a: Any, **kw: Any) -> Any:
        if armed["on"]:
            armed["stalling"] = True
            try:
                if until is None:
                    time.sleep(STALL_S)
                else:
                    until.wait(30)
            finally:
                armed["stalling"] = False
            if fail:
                raise sqlite3.OperationalError("disk I/O error")
        return real(*a, **kw)

    monkeypatch.setattr(audit, "write_head", head)
    return armed


def stalled_inbox(w: StoreWriter) -> Inbox:
    """An inbox recording through `w` with the short timeout the stall outlasts (0.3 s)."""
    async def record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return await w.acommit(kind, run_id=data.get("run_id"), actor=data.get("actor"),
                               text=str(data.get("text", ""))[:500], data=data, timeout=0.3)

    return Inbox(record, timeout_s=5)
