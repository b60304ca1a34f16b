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


async def test_bodies_waiting_for_the_builder_are_bounded(
        writer: StoreWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent whose 8 MB requests are refused at once hands bodies over faster than one
    thread parses them: past MAX_WAITING_BODIES a request is recorded without its shape (and
    counted), instead of its body waiting in memory."""
    release = threading.Event()
    real = trace_module.request_shape
    parsed: list[int] = []

    def slow(body: bytes, *args: Any, **kw: Any) -> Any:
        release.wait(10)
        parsed.append(len(body))
        return real(body, *args, **kw)

    monkeypatch.setattr(trace_module, "request_shape", slow)
    recorder = TraceRecorder(writer, None, key=b"k" * 32)
    body = b'{"model": "m", "messages": [' + b'{"role": "user", "content": "x"},' * 1000 + b'{}]}'
    for _ in range(40):
        t = recorder.begin("run-a", "POST", "127.0.0.1:1/v1/chat/completions")
        t.request_body(body)
        t.finish(None, 400)
    release.set()
    for _ in range(200):
        if len(parsed) == 40:
            break
        await asyncio.sleep(0.02)
    assert len(parsed) == 40, "every request is still recorded"
    kept = [n for n in parsed if n]
    assert len(kept) <= trace_module.MAX_WAITING_BODIES, f"{len(kept)} bodies waited to be parsed"
    assert recorder.unshaped == 40 - len(kept)
