"""A real gate whose connections take their first step inside the accept (gate/eager.py),
attacked where that step can stop: a head that trickles in, a person asked, a recorder, a
resolver or a dial that hang, a recorder or a handler that fail, bursts bigger than one accept
callback. Whatever happens, the gate must end every connection it accepted and give back what
each one held: the fd budget, its place in the connection count, its upstream slot, its
descriptors and its loop registrations; and asyncio must have nothing to complain about."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.config.bounds import FdBudget
from console.gate import GateLimits, NetAsk, NetworkRules, Verdict, upstreams

from .support import Echo, Harness, connect, read_response, running

CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


def policy(**kw: Any) -> NetworkRules:
    base: dict[str, Any] = {"allow": ["example.com"], "default": "deny", "ports": [80, 443]}
    base.update(kw)
    return NetworkRules(**base)


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    e = await Echo().start()
    yield e
    await e.close()


@pytest.fixture(autouse=True)
def asyncio_complaints(caplog: pytest.LogCaptureFixture) -> Any:
    """Nothing asyncio logs about a task (destroyed pending, exception never retrieved)."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    yield
    gc.collect()
    said = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not said, said


def held(h: Harness) -> tuple[int, int, int]:
    """What a gate holds for its connections: (connections, upstreams, budget fds)."""
    budget = h.gate._budget
    return len(h.gate._conns), h.gate.tunnels, budget.used if budget is not None else 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def watched_fds() -> set[int]:
    """Descriptors the running loop watches (its selector's map)."""
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    return {key.fd for key in selector.get_map().values()}


async def settled(h: Harness, within: float = 5.0) -> tuple[int, int, int]:
    """held(h) once it reached (0, 0, 0), or what it was when `within` ran out."""
    deadline = time.monotonic() + within
    while held(h) != (0, 0, 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return held(h)


async def closed_within(h: Harness, seconds: float) -> float:
    started = time.monotonic()
    await asyncio.wait_for(h.gate.close(), seconds)
    return time.monotonic() - started


async def eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the gate closes the connection."""
    return await asyncio.wait_for(reader.read(), 5)


# -- Gate.close while the first step waits ------------------------------------------------

async def test_close_while_a_head_trickles_in_ends_it_and_gives_everything_back() -> None:
    fds, watched = open_fds(), watched_fds()
    h = Harness(policy(), upstream_port=1, budget=FdBudget(total=64, reserve=0))
    await h.gate.serve_unix(h.path)
    reader, writer = await h.open()
    writer.write(b"CONNECT exam")  # the first step waits on the rest of the head
    await writer.drain()
    for _ in range(100):
        if h.gate._conns:
            break
        await asyncio.sleep(0.01)
    (conn,) = h.gate._conns
    assert conn.task is not None and not conn.task.done()  # the task Gate.close waits on
    assert await closed_within(h, 2) < 2
    assert await eof(reader) == b""
    writer.close()
    assert held(h) == (0, 0, 0)
    await asyncio.sleep(0.05)
    assert open_fds() <= fds and watched_fds() == watched


async def test_close_while_a_person_is_asked_denies_and_gives_everything_back(
        echo: Echo) -> None:
    asked = asyncio.Event()

    async def never_answers(q: NetAsk) -> Verdict:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    h = Harness(policy(default="ask", allow=[]), upstream_port=echo.port, ask=never_answers,
                budget=FdBudget(total=64, reserve=0))
    await h.gate.serve_unix(h.path)
    reader, writer = await h.open()
    writer.write(b"CONNECT unknown.example:443 HTTP/1.1\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(asked.wait(), 5)
    assert await closed_within(h, 2) < 2
    writer.close()
    assert held(h) == (0, 0, 0) and echo.connections == 0
    assert [d["action"] for d in h.kinds("net.decision")] == ["deny"]


async def test_close_while_a_recorder_a_resolver_or_a_dial_hangs_ends_them_all(
        echo: Echo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hangs in the connection's first step; close() gives up waiting after
    upstreams.CLOSE_GRACE_S (1 s here) and cancels, and each connection's finally blocks still
    give back what it held."""
    monkeypatch.setattr(upstreams, "CLOSE_GRACE_S", 1.0)  # what close() gives up on, sooner
    hung = asyncio.Event()

    async def forever(*_: Any) -> Any:
        hung.set()
        await asyncio.Event().wait()

    fds, watched = open_fds(), watched_fds()
    recorder = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    resolver = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    dialler = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    recorder.gate._record_fn = forever
    resolver.gate._resolve = forever
    dialler.gate._dial = forever
    clients = []
    for h in (recorder, resolver, dialler):
        await h.gate.serve_unix(h.path)
        hung.clear()
        reader, writer = await h.open()
        writer.write(CONNECT)
        await writer.drain()
        await asyncio.wait_for(hung.wait(), 5)
        clients.append((reader, writer))
    await asyncio.wait_for(asyncio.gather(*(h.close() for h in (recorder, resolver, dialler))),
                           8)
    for reader, writer in clients:
        assert await eof(reader) == b""
        writer.close()
    assert [held(h) for h in (recorder, resolver, dialler)] == [(0, 0, 0)] * 3
    assert echo.connections == 0
    await asyncio.sleep(0.05)
    assert open_fds() <= fds and watched_fds() == watched


def slow_recorder(h: Harness, seconds: float, started: asyncio.Event) -> None:
    real_record = h.gate._record_fn

    async def slow(kind: str, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(seconds)
        await real_record(kind, payload)

    h.gate._record_fn = slow


async def test_a_slow_recorder_holds_only_its_own_connections(echo: Echo) -> None:
    """An async recorder that takes its time: each connection's first step ends there, the
    accept goes on with the next; all are served once their decisions are recorded."""
    h = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    slow_recorder(h, 0.2, asyncio.Event())
    async with running(h):
        answers = await asyncio.gather(*(one_connect(h.path) for _ in range(10)))
        assert [status for status, _ in answers] == [200] * 10
        assert len(h.kinds("net.decision")) == 10
        assert await settled(h) == (0, 0, 0)


async def closed_while_recording(h: Harness) -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]:
    """A CONNECT whose decision takes 0.3 s to record, and Gate.close while it does."""
    recording = asyncio.Event()
    slow_recorder(h, 0.3, recording)
    await h.gate.serve_unix(h.path)
    reader, writer = await h.open()
    writer.write(CONNECT)
    await writer.drain()
    await asyncio.wait_for(recording.wait(), 5)
    await closed_within(h, 5)
    return reader, writer


async def test_close_while_a_slow_recorder_records_gives_everything_back(echo: Echo) -> None:
    fds, watched = open_fds(), watched_fds()
    h = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    reader, writer = await closed_while_recording(h)
    assert await eof(reader) == b""
    writer.close()
    assert held(h) == (0, 0, 0)
    await asyncio.sleep(0.05)
    assert open_fds() <= fds and watched_fds() == watched


async def test_a_slow_recorder_finishing_after_close_began_dials_nothing(echo: Echo) -> None:
    """The gate is closing (the run ended); a decision still being recorded must not open
    an upstream connection afterwards (it did: a TCP handshake to the allowed and recorded
    destination, closed at once since the client was already dropped)."""
    h = Harness(policy(), upstream_port=echo.port)
    _, writer = await closed_while_recording(h)
    writer.close()
    assert h.dialled == [] and echo.connections == 0


# -- failures inside the first step -------------------------------------------------------

async def test_a_recorder_that_fails_refuses_a_whole_burst_with_503(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, record_fails=True,
                budget=FdBudget(total=1024, reserve=0),
                limits=GateLimits(lookups_per_second=1000))
    async with running(h):
        answers = await asyncio.gather(*(one_connect(h.path) for _ in range(80)))
        assert {status for status, _ in answers} == {503}
        assert all(b"could not be recorded" in body for _, body in answers)
        assert await settled(h) == (0, 0, 0)
    assert echo.connections == 0 and h.dialled == []


class _BrokenRules:
    """Rules whose every decision raises: a bug in the first step."""

    ports = (80, 443)
    allow = ()

    def decide(self, *_: Any) -> Any:
        raise RuntimeError("a bug in the rules")

    def suggestion(self, *_: Any) -> str:
        return ""


async def test_a_bug_in_the_first_step_ends_that_connection_only(
        echo: Echo, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    async with running(h):
        good_rules, h.gate.rules = h.gate.rules, _BrokenRules()  # type: ignore[assignment]
        reader, writer = await h.open()
        writer.write(CONNECT)
        await writer.drain()
        assert await eof(reader) == b""
        writer.close()
        assert await settled(h) == (0, 0, 0)
        assert "connection failed" in caplog.text
        h.gate.rules = good_rules
        status, *_, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.close()
    assert held(h) == (0, 0, 0)


# -- bursts -------------------------------------------------------------------------------

async def one_connect(path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(CONNECT)
        await writer.drain()
        status, _, body = await read_response(reader)
        return status, body
    finally:
        writer.close()


def queued_clients(path: str, n: int, head: bytes) -> list[socket.socket]:
    """n clients connected and their heads sent before the gate accepts any: the gate
    takes them in bursts of one accept callback each."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        if head:
            s.sendall(head)
        out.append(s)
    return out


async def status_of(sock: socket.socket) -> int:
    sock.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    status, _, _ = await read_response(reader)
    writer.close()
    return status


@pytest.mark.parametrize("limit", ["connections", "budget"])
async def test_a_burst_past_the_limits_is_answered_whole_and_given_back(
        echo: Echo, limit: str) -> None:
    fds, watched = open_fds(), watched_fds()
    budget = FdBudget(total=2 * 60 if limit == "budget" else 4096, reserve=0)
    h = Harness(policy(), upstream_port=echo.port, budget=budget,
                limits=GateLimits(max_connections=60 if limit == "connections" else 1000,
                                  max_tunnels=1000, lookups_per_second=1000))
    async with running(h):
        clients = queued_clients(h.path, 150, CONNECT)  # more than two accept callbacks
        statuses = await asyncio.gather(*(status_of(s) for s in clients))
        assert statuses.count(200) == 60 and statuses.count(503) == 90
        assert await settled(h) == (0, 0, 0)
        assert budget.used == 0
    await asyncio.sleep(0.05)
    assert open_fds() <= fds and watched_fds() == watched


async def test_clients_that_close_at_once_or_mid_head_leave_nothing_behind(echo: Echo) -> None:
    fds, watched = open_fds(), watched_fds()
    budget = FdBudget(total=4096, reserve=0)
    h = Harness(policy(), upstream_port=echo.port, budget=budget,
                limits=GateLimits(max_tunnels=1000, lookups_per_second=1000))
    async with running(h):
        for head in (b"", CONNECT[:20], CONNECT):
            for s in queued_clients(h.path, 100, head):
                s.close()
            assert await settled(h) == (0, 0, 0)
        status, *_, writer = await connect(h, "example.com:443")  # still serving
        assert status == 200
        writer.close()
        assert await settled(h) == (0, 0, 0)
    await asyncio.sleep(0.05)
    assert open_fds() <= fds and watched_fds() == watched


async def test_a_head_sent_in_pieces_is_served(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, budget=FdBudget(total=64, reserve=0))
    async with running(h):
        reader, writer = await h.open()
        for piece in (CONNECT[:3], CONNECT[3:30], CONNECT[30:-2], CONNECT[-2:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        assert (await read_response(reader))[0] == 200
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
        assert await settled(h) == (0, 0, 0)


async def test_a_head_timeout_ends_a_first_step_that_waits(echo: Echo) -> None:
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(head_timeout=0.2),
                budget=FdBudget(total=64, reserve=0))
    async with running(h):
        reader, writer = await h.open()
        writer.write(CONNECT[:10])
        await writer.drain()
        status, _, _ = await read_response(reader)
        assert status == 408
        writer.close()
        assert await settled(h) == (0, 0, 0)


async def test_a_client_refused_at_the_limit_reads_its_503_whole(echo: Echo) -> None:
    """A client sends its head right after connecting (as an agent's process does); at the
    limit the gate answers 503 without reading it and closes the socket with the head still
    unread in it. The kernel then resets the connection (ECONNRESET on a unix socket, RST on
    TCP), and a client that had not read the 503 yet lost it to "connection reset by peer"."""
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(max_connections=1))
    async with running(h):
        status, *_, holder = await connect(h, "example.com:443")
        assert status == 200
        (client,) = queued_clients(h.path, 1, CONNECT)
        client.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=client)
        status, _, body = await read_response(reader)
        assert status == 503 and b"as many connections open as it may" in body
        assert await eof(reader) == b""
        writer.close()
        holder.close()


async def test_a_client_refused_before_it_sent_its_head_still_reads_the_503(
        echo: Echo) -> None:
    """Since the first step runs inside the accept (eager.py), the refusal at the limit could
    be sent and the socket closed before this client wrote its head: the write met a closed
    socket (EPIPE) and asyncio's stream dropped the 503 it had received with the error. The
    refusal now waits for the request's first bytes (common.TurnAway)."""
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(max_connections=1))
    async with running(h):
        status, *_, holder = await connect(h, "example.com:443")
        assert status == 200
        reader, writer = await h.open()
        try:
            writer.write(CONNECT)
            await writer.drain()
            status, _, _ = await read_response(reader)
            assert status == 503
        finally:
            writer.close()
            holder.close()


async def test_refused_clients_that_send_nothing_hold_few_descriptors_and_are_answered(
        echo: Echo) -> None:
    """The wait for a refused client's request (common.TurnAway) is bounded twice: at most 16
    connections wait at once (the rest are answered at once, so a flood of silent connections
    cannot pile up descriptors), and none waits past a second."""
    h = Harness(policy(), upstream_port=echo.port, limits=GateLimits(max_connections=1))
    async with running(h):
        status, *_, holder = await connect(h, "example.com:443")
        assert status == 200
        silent = [await h.open() for _ in range(20)]
        answered: list[float] = []
        started = time.monotonic()

        async def answer(reader: asyncio.StreamReader) -> None:
            got = await asyncio.wait_for(reader.read(), 5)
            assert got.startswith(b"HTTP/1.1 503 ")
            answered.append(time.monotonic() - started)

        await asyncio.gather(*(answer(r) for r, _ in silent))
        at_once = sum(1 for t in answered if t < 0.5)
        assert at_once == 4, sorted(answered)
        assert max(answered) < 3
        for _, w in silent:
            w.close()
        holder.close()
