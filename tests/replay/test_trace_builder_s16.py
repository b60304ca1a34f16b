"""Trace rows are built one at a time, on a thread of their own (review s16, metering): parsing
an 8 MB request body of tiny JSON objects takes hundreds of MB for a moment, and the loop's
shared pool ran several at once (and held the threads the store's reads use meanwhile)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from console.gate import trace as trace_module
from console.gate.trace import TraceRecorder
from store.writer import StoreWriter


async def test_rows_are_built_one_at_a_time_on_their_own_thread(
        writer: StoreWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    real = trace_module.request_shape
    names: list[str] = []
    busy, most = 0, 0
    lock = threading.Lock()

    def watched(*args: Any, **kw: Any) -> Any:
        nonlocal busy, most
        with lock:
            busy += 1
            most = max(most, busy)
            names.append(threading.current_thread().name)
        time.sleep(0.02)  # a parse long enough that a pool would overlap two
        with lock:
            busy -= 1
        return real(*args, **kw)

    monkeypatch.setattr(trace_module, "request_shape", watched)
    recorder = TraceRecorder(writer, None, key=b"k" * 32)
    for _ in range(6):
        recorder.begin("run-a", "POST", "127.0.0.1:1/v1/chat/completions").finish(None, 200)
    for _ in range(200):
        if len(names) == 6 and not busy:
            break
        await asyncio.sleep(0.02)
    assert len(names) == 6, names
    assert most == 1, f"{most} bodies parsed at once"
    assert all(n.startswith("pilothouse-trace") for n in names), names
