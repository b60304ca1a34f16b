"""Upstream parking attacked (review s33, helper 124): nothing goes upstream once the gate is
closing and its close stays prompt, a dead parked connection frees its slot at once, a GET is
sent again only when not one byte came back, and the park time counts from the last answer.
Each test failed on the parking commit (d24348a)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from console.gate import GateLimits, upstreams

from .support import Harness, read_response, running
from .test_gate_upstream_parking import BODY, Upstream, request, rules, until


class Scripted(Upstream):
    """HTTP/1.1 server; `second` says what the second request on a connection gets:
    "silent" (never answered), "half" (half a status line, then close); "timeout": a
    keep-alive timeout of T s counted from its last answer, a request arriving as it fires
    dropped unanswered (what the parking tests' "drop-second" server stands for)."""

    T = 0.5

    def __init__(self, second: str = "answer") -> None:
        super().__init__("keep")
        self.second = second

    async def _serve(self, reader, writer):  # type: ignore[no-untyped-def]
        self.connections += 1
        loop, served, last = asyncio.get_running_loop(), 0, None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b"\r\n", 1)[0])
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(h.split(b":")[1]))
                served += 1
                if served >= 2 and self.second == "silent":
                    await asyncio.sleep(30)
                if served >= 2 and self.second == "half":
                    writer.write(b"HTTP/1.1 500 Internal")
                    await writer.drain()
                    break
                if self.second == "timeout" and last is not None and loop.time() - last >= self.T:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
                await writer.drain()
                last = loop.time()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()


async def _second_request_while_closing(h: Harness) -> Any:
    """A request whose decision is being committed (a store write) as the gate closes; the
    close must end within 10 s (a test that says it is not held sets the grace far longer)."""
    release, entered = asyncio.Event(), asyncio.Event()
    original = h.gate._record_fn

    async def slow(kind: str, payload: dict[str, Any]) -> None:
        if kind == "net.decision":
            entered.set()
            await release.wait()
        await original(kind, payload)

    h.gate._record_fn = slow
    reader, writer = await h.open()
    writer.write(b"GET http://example.com/two HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(entered.wait(), 5)
    closing = asyncio.ensure_future(h.close())  # the run ends
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(closing, 10)
    return writer


async def test_1a_no_request_goes_out_on_a_parked_connection_once_the_gate_is_closing() -> None:
    up = await Scripted().start()
    h = Harness(rules(), upstream_port=up.port)
    await h.gate.serve_unix(h.path)
    assert await request(h, path="/one") == (200, BODY)
    assert await until(lambda: h.gate.parked == 1)
    writer = await _second_request_while_closing(h)
    # with nothing parked, _open refuses ("this run's gate is closing") and nothing is sent
    assert up.requests == [b"GET /one HTTP/1.1"]
    writer.close()
    await up.close()


async def test_1b_close_is_not_held_by_a_parked_connection_taken_while_closing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Held, close would wait out the grace for the taken connection's answer, then cancel:
    # a grace far past the helper's 10 s bound tells held from not with no clock here.
    monkeypatch.setattr(upstreams, "CLOSE_GRACE_S", 60.0)
    up = await Scripted("silent").start()
    h = Harness(rules(), upstream_port=up.port)
    await h.gate.serve_unix(h.path)
    assert await request(h, path="/one") == (200, BODY)
    assert await until(lambda: h.gate.parked == 1)
    writer = await _second_request_while_closing(h)
    writer.close()
    await up.close()


async def test_2_a_dead_parked_connection_does_not_take_the_last_slot() -> None:
    up = await Upstream("quit-idle").start()  # closes 50 ms after each answer
    h = Harness(rules(), upstream_port=up.port, limits=GateLimits(max_tunnels=1))
    async with running(h):
        assert await request(h, path="/one") == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        await asyncio.sleep(0.2)  # its server has closed it meanwhile
        # without parking, the first connection ended with its client: this is a 200
        assert await request(h, path="/two") == (200, BODY)  # 503 "already has 1 open"
    await up.close()


async def test_3_a_get_whose_server_answered_is_not_sent_again() -> None:
    up = await Scripted("half").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h, path="/one") == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        await request(h, path="/two")
        # threat model: sent once more only when dropped "as it arrived (nothing came back)"
        assert up.requests.count(b"GET /two HTTP/1.1") == 1, up.requests
    await up.close()


async def test_4_park_time_counts_from_the_last_exchange(monkeypatch) -> None:
    monkeypatch.setattr(upstreams, "PARK_SECONDS", 0.4)  # under the server's 0.5, as 4 < 5
    up = await Scripted("timeout").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"GET http://example.com/one HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await read_response(reader))[2] == BODY
        await asyncio.sleep(0.3)  # the agent's client keeps its proxy connection a moment
        writer.close()
        await asyncio.sleep(0.25)  # 0.55 s after the last answer: the server's timer fires
        status, _ = await request(h, "POST", b"pay=1", path="/pay")  # a new client connection
        assert status == 200, up.requests  # 502: the POST went on the parked connection
    await up.close()



async def test_close_ends_even_when_recording_hangs_with_an_upstream_and_a_decision_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Older than parking (helper 124): a connection's task cancelled while its decision's
    record hung waited on a record again in its cleanup (its upstream's `net.closed`), and the
    gate's close never returned."""
    monkeypatch.setattr(upstreams, "CLOSE_GRACE_S", 1.0)  # what close() gives up on, sooner
    up = await Scripted().start()
    h = Harness(rules(), upstream_port=up.port)
    await h.gate.serve_unix(h.path)
    reader, writer = await h.open()
    writer.write(b"GET http://example.com/one HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await read_response(reader))[2] == BODY  # the connection keeps its upstream

    async def hang(kind: str, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    h.gate._record_fn = hang
    writer.write(b"GET http://example.com/two HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)  # its decision's record now hangs
    await asyncio.wait_for(h.close(), 15)  # grace 1 s, then the cancelled tasks' moment
    assert h.gate.tunnels == 0
    writer.close()
    await up.close()


class SaysKeepAlive(Upstream):
    """Answers with `Keep-Alive: timeout=N` and keeps the connection."""

    def __init__(self, header: bytes) -> None:
        super().__init__("keep")
        self.header = header

    async def _serve(self, reader, writer):  # type: ignore[no-untyped-def]
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b"\r\n", 1)[0])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (
                    len(BODY), self.header) + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def test_a_server_that_keeps_a_connection_one_second_is_not_parked() -> None:
    up = await SaysKeepAlive(b"Keep-Alive: timeout=1, max=100\r\n").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h) == (200, BODY)
        assert await until(lambda: h.gate.tunnels == 0)
        assert h.gate.parked == 0
    await up.close()


async def test_a_server_that_keeps_a_connection_long_enough_is_parked() -> None:
    up = await SaysKeepAlive(b"Keep-Alive: timeout=60\r\n").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h) == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        assert await request(h) == (200, BODY) and up.connections == 1
    await up.close()
