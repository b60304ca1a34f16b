"""A real gate at its connection limit (common.TurnAway: a refused connection waits for its
request's first bytes, its close or a second before its 503), attacked: floods of silent
connections, one byte then silence, a huge request, a half-close, and Gate.close while refused
connections wait. Whatever happens, the descriptors held stay bounded and Gate.close ends them
at once."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.config.bounds import FdBudget
from console.gate import GateLimits, NetworkRules, dial_address

from .support import LOCAL, Echo, Harness, connect, read_response, running
from .test_gate_upstream_parking import until

CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
# The refusal's timer (common.TurnAway.wait, a second) where a test says "at once": answered
# within a bound well under it means not by the timer, with no clock in the test.
LONG = 30.0
AT_ONCE = 10.0


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    e = await Echo().start()
    yield e
    await e.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def handle_tasks() -> set[asyncio.Task[Any]]:
    """Tasks running the gate's connection handler (refused ones included)."""
    return {t for t in asyncio.all_tasks()
            if "Gate.handle" in getattr(t.get_coro(), "__qualname__", t.get_coro().__name__)}


async def at_the_limit(echo: Echo, wait: float = 1.0) -> tuple[Harness, socket.socket]:
    """A gate serving with max_connections=1 (refusals waiting `wait`), and the one
    connection it holds."""
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port, limits=GateLimits(max_connections=1))
    h.gate._turn_away.wait = wait
    await h.gate.serve_unix(h.path)
    status, *_, holder = await connect(h, "example.com:443")
    assert status == 200
    return h, holder


def raw_client(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    return s


async def read_all(s: socket.socket, within: float = 5.0) -> bytes:
    """Everything until EOF (a reset after data counts as the end)."""
    loop = asyncio.get_running_loop()
    out = b""
    async with asyncio.timeout(within):
        while True:
            try:
                data = await loop.sock_recv(s, 65536)
            except ConnectionResetError:
                return out
            if not data:
                return out
            out += data


async def test_close_while_refused_connections_wait_ends_them_at_once(echo: Echo) -> None:
    """Refused connections waiting for their request are no connection of the gate's
    (_conns): Gate.close did not end them, so each went on holding its descriptor, its loop
    registration and its task for up to a second after close() returned."""
    tasks_before, fds = handle_tasks(), open_fds()
    h, holder = await at_the_limit(echo, wait=LONG)
    silent = [raw_client(h.path) for _ in range(5)]
    assert await until(lambda: h.gate._turn_away.waiting == 5), h.gate._turn_away.waiting
    await asyncio.wait_for(h.gate.close(), AT_ONCE)  # not after the timer
    holder.close()
    left = handle_tasks() - tasks_before
    assert not left, (len(left), left)
    for s in silent:
        answer = await read_all(s, within=AT_ONCE)  # ended by the close, not the timer
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503 ")
        s.close()
    await asyncio.sleep(0.05)
    assert open_fds() <= fds


async def test_a_connection_refused_while_the_gate_closes_is_answered_at_once(
        echo: Echo) -> None:
    """Once Gate.close began, nothing waits (a refused connection would hold close's
    descriptors past it)."""
    h, holder = await at_the_limit(echo, wait=LONG)
    await h.gate.close()
    holder.close()
    # A reader that never gets a byte: a wait would last the (long) timer, and a bound on it
    # would not do (a cancel once closed is taken as close's and swallowed). It must return
    # in its first step, waiting on nothing.
    waiting = asyncio.ensure_future(
        h.gate._turn_away.wait_for_request(asyncio.StreamReader()))
    await asyncio.sleep(0)  # the task's first step runs ahead of this one's
    done = waiting.done()
    if not done:
        h.gate._turn_away.closed = False  # so that the cancel below ends it
        waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert done, "a connection refused after close began waits for its request"


async def test_a_flood_of_silent_connections_holds_at_most_sixteen_descriptors(
        echo: Echo) -> None:
    h, holder = await at_the_limit(echo)
    try:
        baseline = open_fds()
        flood = [raw_client(h.path) for _ in range(200)]
        # Counted once the gate has taken its sixteen, not after a fixed 0.2 s (a loaded
        # machine may not have accepted them yet): the gate's side is theirs, no more.
        assert await until(lambda: h.gate._turn_away.waiting == 16), h.gate._turn_away.waiting
        gate_side = open_fds() - baseline - len(flood)
        assert gate_side <= 16, gate_side
        answers = await asyncio.gather(*(read_all(s) for s in flood))
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
        for s in flood:
            s.close()
        assert await until(lambda: h.gate._turn_away.waiting == 0), h.gate._turn_away.waiting
        assert open_fds() <= baseline
    finally:
        holder.close()
        await h.close()


async def test_one_byte_then_silence_is_answered_at_once_and_frees_its_place(
        echo: Echo) -> None:
    h, holder = await at_the_limit(echo, wait=LONG)
    try:
        slow = [raw_client(h.path) for _ in range(16)]
        assert await until(lambda: h.gate._turn_away.waiting == 16), h.gate._turn_away.waiting
        for s in slow:
            s.send(b"C")
        answers = await asyncio.gather(*(read_all(s, within=AT_ONCE) for s in slow))
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
        assert h.gate._turn_away.waiting == 0
        for s in slow:
            s.close()
        # The places are free again: the next silent connection waits.
        late = raw_client(h.path)
        assert await until(lambda: h.gate._turn_away.waiting == 1), h.gate._turn_away.waiting
        late.close()
    finally:
        holder.close()
        await h.close()


async def test_a_half_closed_client_is_answered_at_once(echo: Echo) -> None:
    h, holder = await at_the_limit(echo, wait=LONG)
    try:
        s = raw_client(h.path)
        s.shutdown(socket.SHUT_WR)
        answer = await read_all(s, within=AT_ONCE)
        assert answer.startswith(b"HTTP/1.1 503 ")
        s.close()
    finally:
        holder.close()
        await h.close()


async def test_a_huge_request_past_the_limit_is_answered_and_given_back(echo: Echo) -> None:
    """A request much bigger than what the gate discards before closing (an upload through
    the proxy): the gate must not hang on it nor keep it; the client gets its 503 or a reset,
    never a hang."""
    h, holder = await at_the_limit(echo)
    try:
        baseline = open_fds()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(h.path)
        s.settimeout(5)
        body = b"x" * (4 * 1024 * 1024)
        request = (b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body)) + body
        sent: list[BaseException | None] = []

        def send() -> None:
            try:
                s.sendall(request)
                sent.append(None)
            except OSError as exc:
                sent.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        for _ in range(100):
            if sent:
                break
            await asyncio.sleep(0.05)
        sender.join(1)
        assert sent, "the client's upload hung: the gate neither read nor refused it"
        assert h.gate._turn_away.waiting == 0
        s.close()
        await asyncio.sleep(0.05)
        assert open_fds() <= baseline
    finally:
        holder.close()
        await h.close()


async def test_the_asyncio_stream_of_a_refused_client_reads_the_503(echo: Echo) -> None:
    """As an agent's client does: connect, write the head, then read."""
    h, holder = await at_the_limit(echo)
    try:
        statuses = []
        for _ in range(20):
            reader, writer = await h.open()
            writer.write(CONNECT)
            await writer.drain()
            status, _, _ = await read_response(reader)
            statuses.append(status)
            writer.close()
        assert statuses == [503] * 20
    finally:
        holder.close()
        await h.close()


async def test_refused_at_the_fd_budget_nothing_waits_past_the_budget(echo: Echo) -> None:
    """The fd budget is the daemon's (all runs' gates draw on it; below it, a reserve keeps
    operator.sock answering). A connection refused because the budget ran out must not then
    hold its descriptor for a second: sixteen per gate, every run's gate flooded at once,
    ate the reserve the budget exists to keep."""
    budget = FdBudget(total=16, reserve=0)  # the smallest budget there is
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port, budget=budget)
    h.gate._turn_away.wait = LONG
    async with running(h):
        holders = [await connect(h, "example.com:443") for _ in range(8)]
        assert budget.used == budget.total
        flood = [raw_client(h.path) for _ in range(20)]
        await asyncio.sleep(0.1)
        assert h.gate._turn_away.waiting == 0 and budget.used == budget.total
        answers = await asyncio.gather(*(read_all(s, within=AT_ONCE) for s in flood))
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
        for s in flood:
            s.close()
        for *_, writer in holders:
            writer.close()


async def test_a_refused_connection_waiting_counts_against_the_fd_budget(echo: Echo) -> None:
    budget = FdBudget(total=64, reserve=0)
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port, budget=budget, limits=GateLimits(max_connections=1))
    async with running(h):
        status, *_, holder = await connect(h, "example.com:443")
        assert status == 200 and budget.used == 2
        silent = [raw_client(h.path) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert h.gate._turn_away.waiting == 5 and budget.used == 2 + 5
        for s in silent:
            s.send(b"G")
        answers = await asyncio.gather(*(read_all(s) for s in silent))
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers)
        assert budget.used == 2
        for s in silent:
            s.close()
        holder.close()


# -- Gate.close and the dial (proxy.Gate._open) --------------------------------------------

async def test_a_dial_that_fails_after_close_began_tries_no_other_address(echo: Echo) -> None:
    """A name with two addresses, the first slow to fail: Gate.close begins meanwhile, and the
    gate must not go on to dial the second (it did: the check was made once, before the
    first dial)."""
    first, second = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("93.184.215.15")
    h = Harness(NetworkRules(allow=["example.com"], default="deny", ports=[443]),
                upstream_port=echo.port, names={"example.com": [first, second]})
    dialled: list[str] = []
    dialling, fail_now = asyncio.Event(), asyncio.Event()

    async def dial(ip: Any, port: int, timeout: float) -> Any:
        dialled.append(str(ip))
        if ip == first:
            dialling.set()
            await fail_now.wait()
            raise OSError("connection timed out")
        return await dial_address(LOCAL, echo.port, timeout)

    h.gate._dial = dial
    await h.gate.serve_unix(h.path)
    reader, writer = await h.open()
    writer.write(CONNECT)
    await writer.drain()
    await asyncio.wait_for(dialling.wait(), 5)
    closing = asyncio.ensure_future(h.close())
    await asyncio.sleep(0.05)  # close began: it waits for the connection
    fail_now.set()
    await asyncio.wait_for(closing, 5)
    writer.close()
    assert dialled == [str(first)] and echo.connections == 0
    assert h.gate.tunnels == 0
