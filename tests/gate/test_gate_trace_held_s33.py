"""Request bodies a run's metered requests hold in the daemon are bounded across its requests
in flight (review s33, helper 122): each held up to 8 MiB until its answer ended, and 16
requests kept one byte short of their end grew the daemon by 130 MB (a run may have 64). Real
gate, real upstream socket, the real TraceRecorder."""

from __future__ import annotations

import asyncio
import os

from console.gate import NetworkRules
from console.gate.trace import MAX_HELD_PER_RUN, TraceRecorder

from .support import Harness, running


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_bodies_held_for_a_runs_metered_requests_in_flight_are_bounded() -> None:
    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1 << 20):  # a model API still reading: never answers
            pass

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = Harness(NetworkRules(["api.invalid"], [], "deny"), upstream_port=port,
                meter={("api.invalid", 80)})
    recorder = TraceRecorder(None)
    h.gate.trace = recorder
    count, size = 16, 8 * 1024 * 1024 - 1
    chunk = b"x" * (1 << 20)
    async with running(h):
        base = rss_mb()
        writers = []
        for _ in range(count):
            _, w = await h.open()
            w.write(f"POST http://api.invalid/v1/messages HTTP/1.1\r\n"
                    f"Content-Length: {size + 1}\r\n\r\n".encode())
            left = size
            while left:
                n = min(left, len(chunk))
                w.write(chunk[:n])
                left -= n
                await w.drain()
            writers.append(w)
        await asyncio.sleep(1.0)
        grown = rss_mb() - base
        held = recorder.held("run-1")
        for w in writers:
            w.close()
        for _ in range(200):
            if not recorder.held("run-1"):
                break
            await asyncio.sleep(0.01)
        assert recorder.held("run-1") == 0  # every request that ended gave its bytes back
    server.close()
    assert 0 < held <= MAX_HELD_PER_RUN
    assert grown < 64, f"RSS grew {grown:.0f} MB for {count} requests in flight"


def test_a_body_past_the_runs_bound_is_dropped_whole_and_given_back() -> None:
    recorder = TraceRecorder(None)
    big = MAX_HELD_PER_RUN // 2 - 10
    first, second, third = (recorder.begin("run-1", "POST", "api.invalid/v1") for _ in range(3))
    other = recorder.begin("run-2", "POST", "api.invalid/v1")
    first.request_body(b"a" * big)
    second.request_body(b"b" * big)
    third.request_body(b"c" * 5)
    third.request_body(b"c" * 20)  # past the run's bound: this one is recorded unshaped
    other.request_body(b"d" * 1000)  # another run's bound is its own
    assert recorder.held("run-1") == 2 * big
    assert recorder.held("run-2") == 1000
    third.request_body(b"c")  # over stays over
    assert recorder.held("run-1") == 2 * big
    for trace in (first, second, third, other):
        trace.finish(None, None)
    assert recorder.held("run-1") == 0 and recorder.held("run-2") == 0
