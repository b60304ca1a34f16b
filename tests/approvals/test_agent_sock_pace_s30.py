"""Review s30 (helper 102): one run's agent.sock messages of any op, bounded.

Asks have a rate of their own; `status` and refused ops had none. 32 connections sending
`status` as fast as the daemon answered took the operator's `hello` from 1 ms to a median of
0.9 s (max 3.1 s): one run kept the daemon's loop busy. A run's messages now share a bucket
(MESSAGES_PER_SECOND, a burst of MESSAGE_BURST); past it, the next lines wait in their
sockets, unread.

The bucket's clock is held still here (its module's `time`), so what is counted is how many
answers come while no token is added: the burst, then as many as the clock is moved on for.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import console.gate.deciding as deciding
from console.daemon.agent_socket import MESSAGE_BURST, MESSAGES_PER_SECOND, start_agent_server
from console.daemon.inbox import Inbox
from console.wire import encode, request

CONNECTIONS, EACH = 8, 150  # 1,200 status requests at once, three times the burst


async def _record(kind: str, data: dict) -> dict:
    return {"id": 1}


async def _answers(readers: list[asyncio.StreamReader], settle: float = 0.5) -> int:
    """Lines answered on all connections until none comes for `settle` seconds."""
    got = 0
    reads = {asyncio.ensure_future(r.readline()): r for r in readers}
    try:
        while True:
            done, _ = await asyncio.wait(reads, timeout=settle,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return got
            for task in done:
                reader = reads.pop(task)
                if task.result():
                    got += 1
                    reads[asyncio.ensure_future(reader.readline())] = reader
    finally:
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)


@contextlib.asynccontextmanager
async def flooded(first: bytes) -> AsyncIterator[list[asyncio.StreamReader]]:
    """A run's agent.sock with CONNECTIONS connections, each having sent `first` then EACH
    status requests; their readers."""
    inbox = Inbox(_record, timeout_s=5)
    sock_dir = Path(tempfile.mkdtemp(prefix="ph-", dir="/tmp"))
    server = await start_agent_server(sock_dir / "agent.sock", "run-1", "demo", inbox,
                                      lambda *a, **k: None)  # type: ignore[arg-type]
    conns = [await asyncio.open_unix_connection(str(sock_dir / "agent.sock"))
             for _ in range(CONNECTIONS)]
    try:
        line = encode(request(1, "status", {"request_id": "zzzz"}))
        for _, writer in conns:
            writer.write(first + line * EACH)
            await writer.drain()
        yield [r for r, _ in conns]
    finally:
        for _, writer in conns:
            writer.close()
        server.close()
        await server.wait_closed()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The bucket's clock (its module's `time`), held still until moved on."""
    now = [1000.0]
    monkeypatch.setattr(deciding, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


async def test_a_runs_status_flood_waits_past_its_rate(clock: list[float]) -> None:
    async with flooded(b"") as readers:
        first = await _answers(readers)
        clock[0] += 1.0  # one second on: MESSAGES_PER_SECOND more
        second = await _answers(readers)
    assert first == MESSAGE_BURST, f"{first} answers with no time passing"
    assert second == MESSAGES_PER_SECOND, f"{second} answers in one more second"


async def test_lines_that_are_not_json_are_paced_too(clock: list[float]) -> None:
    """Second round (helper 104): a line that is not JSON was answered before the bucket was
    asked, so a flood of them went unpaced."""
    async with flooded(b"not json\n" * 7) as readers:  # 7 bad lines each: the 8th closes
        answered = await _answers(readers)
    assert answered == MESSAGE_BURST, f"{answered} answers to bad lines with no time passing"
