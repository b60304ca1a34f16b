"""Upstream connections parked between client connections (gate/upstreams.py): the next
request still gets its own decision, and a parked connection is used only while it is open,
quiet, allowed and within its idle time; a request the server dropped as it arrived is sent
again only when it may be (GET, no body). Real sockets throughout: a real upstream server that
counts its connections, the gate on a unix socket."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from console.config.bounds import FdBudget
from console.gate import GateLimits, NetworkRules, upstreams

from .support import Harness, connect, read_response, running

BODY = b"hello from upstream\n"


class Upstream:
    """An HTTP/1.1 server on 127.0.0.1 with a behaviour per test:
    keep: answers and keeps the connection; close: answers `Connection: close` and closes;
    http10: answers as HTTP/1.0 (no keep-alive); drop-second: closes, unanswered, the second
    request on a connection (a keep-alive timeout firing as a request arrives); quit-idle:
    closes 50 ms after each answer; chatty: sends a second, unasked answer 50 ms later."""

    def __init__(self, mode: str = "keep") -> None:
        self.mode = mode
        self.connections = 0
        self.requests: list[bytes] = []  # request lines, in arrival order
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0]
                self.requests.append(line)
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(h.split(b":")[1]))
                served += 1
                if self.mode == "drop-second" and served == 2:
                    break
                version = b"HTTP/1.0" if self.mode == "http10" else b"HTTP/1.1"
                close = b"Connection: close\r\n" if self.mode == "close" else b""
                writer.write(version + b" 200 OK\r\nContent-Length: " + str(len(BODY)).encode()
                             + b"\r\n" + close + b"\r\n" + BODY)
                await writer.drain()
                if self.mode in ("close", "http10"):
                    break
                if self.mode in ("quit-idle", "chatty"):
                    await asyncio.sleep(0.05)
                    if self.mode == "chatty":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
                        await writer.drain()
                        continue
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def rules(**kw: Any) -> NetworkRules:
    base: dict[str, Any] = {"allow": ["example.com"], "default": "deny", "ports": [80]}
    base.update(kw)
    return NetworkRules(**base)


async def request(h: Harness, method: str = "GET", body: bytes = b"",
                  path: str = "/") -> tuple[int, bytes]:
    """One request on a new client connection, which is closed after the answer."""
    reader, writer = await h.open()
    extra = b"Content-Length: %d\r\n" % len(body) if body else b""
    writer.write(f"{method} http://example.com{path} HTTP/1.1\r\nHost: example.com\r\n".encode()
                 + extra + b"\r\n" + body)
    await writer.drain()
    status, _, got = await read_response(reader)
    writer.close()
    return status, got


async def until(check: Any, within: float = 5.0) -> bool:
    for _ in range(int(within / 0.01)):
        if check():
            return True
        await asyncio.sleep(0.01)
    return bool(check())


async def test_a_new_client_connection_reuses_the_parked_one_and_is_still_decided() -> None:
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h, path="/one") == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        assert await request(h, path="/two") == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        assert up.connections == 1 and len(up.requests) == 2
        assert h.gate.tunnels == 1  # a parked connection is an open one
        decisions = h.kinds("net.decision")
        assert [d["action"] for d in decisions] == ["allow", "allow"]
        assert not h.kinds("net.closed")
    await up.close()
    closed = h.kinds("net.closed")  # the gate's close ends it, counted whole
    assert len(closed) == 1 and closed[0]["bytes_down"] > 2 * len(BODY)
    assert h.gate.tunnels == 0 and h.gate.parked == 0


async def test_new_rules_that_deny_it_end_a_parked_connection() -> None:
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        assert h.gate.replace_rules(rules(allow=[], deny=["example.com"])) == 1
        assert await until(lambda: h.gate.tunnels == 0 and h.kinds("net.closed"))
        assert [c["how"] for c in h.kinds("net.closed")] == ["policy"]
        status, _ = await request(h)
        assert status == 403 and up.connections == 1 and len(up.requests) == 1
    await up.close()


async def test_rules_that_still_allow_it_leave_it_parked() -> None:
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        assert h.gate.replace_rules(rules(allow=["example.com", "example.org"])) == 0
        assert h.gate.parked == 1
        assert (await request(h))[0] == 200 and up.connections == 1
    await up.close()


async def test_a_parked_connection_is_used_only_for_an_address_now_allowed() -> None:
    first, second = ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("93.184.215.15")
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port, names={"example.com": [first]})
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        h.names["example.com"] = [second]  # the name now resolves elsewhere
        assert (await request(h))[0] == 200
        assert [ip for ip, _ in h.dialled] == [str(first), str(second)]
        assert up.connections == 2
    await up.close()


async def test_a_parked_connection_its_server_closed_is_not_used() -> None:
    up = await Upstream("quit-idle").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h) == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        await asyncio.sleep(0.2)  # the server has closed it meanwhile
        assert await request(h) == (200, BODY)
        assert up.connections == 2 and len(up.requests) == 2
        assert [c["how"] for c in h.kinds("net.closed")][:1] == ["closed"]
    await up.close()


async def test_an_answer_nobody_asked_for_ends_the_parked_connection_unread() -> None:
    up = await Upstream("chatty").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h) == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        await asyncio.sleep(0.2)  # the unasked answer has arrived
        assert await request(h) == (200, BODY)  # its own answer, never the stale "EVIL!"
        assert up.connections == 2
        assert [c["how"] for c in h.kinds("net.closed")][:1] == ["error"]
    await up.close()


async def test_a_get_the_server_dropped_as_it_arrived_is_sent_again_on_a_fresh_one() -> None:
    up = await Upstream("drop-second").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h, path="/one") == (200, BODY)
        assert await until(lambda: h.gate.parked == 1)
        assert await request(h, path="/two") == (200, BODY)
        assert up.connections == 2
        assert up.requests == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1", b"GET /two HTTP/1.1"]
        assert len(h.kinds("net.decision")) == 2  # decided once, sent twice


async def test_on_one_client_connection_too_a_dropped_get_is_sent_again() -> None:
    up = await Upstream("drop-second").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        reader, writer = await h.open()
        for path in ("/one", "/two"):
            writer.write(f"GET http://example.com{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            assert (await read_response(reader))[2] == BODY
        writer.close()
        assert up.connections == 2
    await up.close()


@pytest.mark.parametrize("method,body", [("POST", b"pay=1"), ("DELETE", b""), ("GET", b"q=1")])
async def test_a_request_that_may_not_be_repeated_is_never_sent_twice(method: str,
                                                                      body: bytes) -> None:
    up = await Upstream("drop-second").start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        status, _ = await request(h, method, body, path="/once")
        assert status == 502
        assert up.requests.count(f"{method} /once HTTP/1.1".encode()) == 1
        assert up.connections == 1
    await up.close()


@pytest.mark.parametrize("mode", ["close", "http10"])
async def test_a_connection_the_server_ends_is_never_parked(mode: str) -> None:
    up = await Upstream(mode).start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert await request(h) == (200, BODY)
        assert await until(lambda: h.gate.tunnels == 0)
        assert h.gate.parked == 0
    await up.close()


async def test_a_parked_connection_ends_after_its_idle_time(monkeypatch) -> None:
    monkeypatch.setattr(upstreams, "PARK_SECONDS", 0.2)
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        assert await until(lambda: h.gate.tunnels == 0 and h.kinds("net.closed"), within=3)
        assert [c["how"] for c in h.kinds("net.closed")] == ["idle"]
    await up.close()


async def test_a_parked_connection_holds_one_descriptor_of_the_budget() -> None:
    budget = FdBudget(total=100, reserve=0)
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port, budget=budget)
    async with running(h):
        for _ in range(3):
            assert (await request(h))[0] == 200
            assert await until(lambda: h.gate.parked == 1 and budget.used == 1)
    assert budget.used == 0
    await up.close()


async def test_at_most_a_few_are_parked_and_the_oldest_ends_first() -> None:
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    count = upstreams.PARKED_MOST + 2
    async with running(h):
        clients = [await h.open() for _ in range(count)]
        for reader, writer in clients:  # all open at once: one upstream connection each
            writer.write(b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert (await read_response(reader))[2] == BODY
        assert up.connections == count
        for _, writer in clients:
            writer.close()
        assert await until(lambda: h.gate.tunnels == upstreams.PARKED_MOST
                           and len(h.kinds("net.closed")) == 2)
        assert h.gate.parked == upstreams.PARKED_MOST
        assert [c["how"] for c in h.kinds("net.closed")] == ["idle", "idle"]
    await up.close()


async def test_a_dial_at_the_limit_ends_a_parked_connection_instead_of_refusing() -> None:
    up = await Upstream().start()
    h = Harness(rules(allow=["example.com", "example.org:443"], ports=[80, 443]),
                upstream_port=up.port, limits=GateLimits(max_tunnels=1))
    async with running(h):
        assert (await request(h))[0] == 200
        assert await until(lambda: h.gate.parked == 1)
        status, _, _, _, writer = await connect(h, "example.org:443")
        assert status == 200
        writer.close()
        assert [c["how"] for c in h.kinds("net.closed")][:1] == ["idle"]
    await up.close()


async def test_a_client_connection_ended_for_idleness_leaves_nothing_parked() -> None:
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port, limits=GateLimits(idle_timeout=0.2))
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await read_response(reader))[2] == BODY
        assert await until(lambda: h.gate.tunnels == 0)  # the client stays, silent
        assert h.gate.parked == 0
        assert [c["how"] for c in h.kinds("net.closed")] == ["idle"]
        writer.close()
    await up.close()


async def test_closing_the_gate_ends_parked_connections_even_when_recording_hangs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstreams, "CLOSE_GRACE_S", 1.0)  # what close() gives up on, sooner
    up = await Upstream().start()
    h = Harness(rules(), upstream_port=up.port)
    await h.gate.serve_unix(h.path)
    assert (await request(h))[0] == 200
    assert await until(lambda: h.gate.parked == 1)

    async def hang(kind: str, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    h.gate._record_fn = hang
    await asyncio.wait_for(h.close(), 10)
    assert h.gate.tunnels == 0 and h.gate.parked == 0
    await up.close()
