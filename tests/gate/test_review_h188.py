"""Review h188: the gate attacked from inside a sandbox, looking for what earlier reviews left.
One thing did: a request allowed on a grant that ended while its decision was being recorded
went out on an upstream connection the gate already held (parked by an earlier client
connection, or kept by this one), though the same request needing a fresh dial was refused once
the dial completed (s41, Deciding.yes_stands). The yes is now asked again before a held
upstream carries the request, as after a dial. Two more shapes had no test and held; they are
pinned here, each read also by an implementation independent of the gate's.

An upstream that answers with 101 (a WebSocket or h2c upgrade) and then speaks raw must not
open a channel the gate no longer frames: the Upgrade, Connection and HTTP2-Settings headers
never reach it, its 101 is answered 502, and a request pipelined behind the upgrade request is
never decided, let alone sent. And a ClientHello's server_name list in shapes a router could
read differently (a name of another type first, bytes behind the list): the gate reads the
name OpenSSL reads, or OpenSSL refuses the hello.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest

from console.daemon.evaluation import network_rules
from console.gate import GateLimits, NetworkRules, Verdict
from console.gate.tls import HelloCheck
from console.policy import new_grant

from .support import FAKE_GLOBAL, Harness, Origin, read_response, running
from .test_gate_attacks_s23 import WAIT, _wiring

RAW = b"RAW BYTES AFTER THE SWITCH"


class Switching:
    """An upstream that answers any request head with a 101 and raw bytes behind it."""

    def __init__(self) -> None:
        self.seen = bytearray()

    async def start(self) -> Switching:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.seen += data
                if b"\r\n\r\n" in self.seen:
                    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\n" + RAW)
                    await writer.drain()
        except ConnectionError:
            pass
        writer.close()


async def test_an_upgrade_opens_no_raw_channel_and_what_follows_is_never_sent() -> None:
    origin = await Switching().start()
    h = Harness(NetworkRules(allow=["a.invalid"], default="deny", ports=[80]),
                upstream_port=origin.port)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(b"GET http://a.invalid/ws HTTP/1.1\r\nHost: a.invalid\r\n"
                         b"Upgrade: websocket, h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nSec-WebSocket-Key: x\r\n\r\n"
                         b"GET http://b.invalid/ HTTP/1.1\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: the gate closes
            writer.close()
    finally:
        origin.server.close()
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert RAW not in answer
    seen = bytes(origin.seen).lower()
    assert seen.count(b" http/1.1\r\n") == 1, seen
    assert b"upgrade" not in seen and b"http2-settings" not in seen, seen
    assert [p["host"] for p in h.kinds("net.decision")] == ["a.invalid"]  # b.invalid: never


def _hello(names: list[tuple[int, bytes]], behind: bytes = b"") -> bytes:
    """A TLS 1.3 ClientHello whose server_name extension lists `names` (type, name), with
    `behind` after the list inside the extension."""
    listed = b"".join(bytes([kind]) + struct.pack(">H", len(n)) + n for kind, n in names)
    data = struct.pack(">H", len(listed)) + listed + behind
    ext = struct.pack(">HH", 0, len(data)) + data
    body = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + struct.pack(">H", len(ext)) + ext)
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(message)) + message


def _openssl_reads(hello: bytes) -> str | None:
    """The server name a real OpenSSL server reads from `hello` (None: none), or raises
    ssl.SSLError when it refuses the extension."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    seen: list[Any] = []
    ctx.sni_callback = lambda _obj, name, _ctx: seen.append(name)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(hello)
    try:
        server.do_handshake()
    except ssl.SSLError as exc:  # no certificate here: past the name, every hello fails
        if "EXTENSION" in (exc.reason or ""):
            raise
    return seen[0] if seen else None


@pytest.mark.parametrize(("names", "behind"), [
    ([(1, b"evil.invalid"), (0, b"a.invalid")], b""),
    ([(0, b"a.invalid")], b"\x00\x00\x0cevil.invalid"),
    ([(0, b"a.invalid"), (0, b"evil.invalid")], b""),
    ([(0, b"evil.invalid")], b""),
    ([(0, b"a.invalid")], b""),
], ids=["other-type-first", "bytes-behind-list", "two-names", "foreign", "matching"])
def test_the_hello_check_reads_the_name_openssl_reads_or_openssl_refuses(
        names: list[tuple[int, bytes]], behind: bytes) -> None:
    hello = _hello(names, behind)
    check = HelloCheck.naming("a.invalid")
    assert check.feed(hello)
    try:
        name = _openssl_reads(hello)
    except ssl.SSLError:
        return  # no server takes it; what the gate made of it reaches none
    assert not check.refused and name == "a.invalid" or check.refused and name != "a.invalid", (
        check.hello, name)


# -- a grant that ends while a decision is recorded ------------------------------------------

NAME = "held.corp.invalid"


class HeldRecord(Harness):
    """A harness whose second `net.decision` record waits until the test lets it go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decisions = 0
        self.recording, self.go = asyncio.Event(), asyncio.Event()

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "net.decision":
            self.decisions += 1
            if self.decisions == 2:
                self.recording.set()
                await self.go.wait()
        await super()._record(kind, payload)


async def _get(h: Harness, path: str, *, keep: tuple[Any, Any] | None = None
               ) -> tuple[int, tuple[Any, Any]]:
    reader, writer = keep or await h.open()
    writer.write(f"GET http://{NAME}{path} HTTP/1.1\r\n\r\n".encode())
    await writer.drain()
    return (await read_response(reader))[0], (reader, writer)


async def test_a_grant_that_ended_while_its_decision_was_recorded_sends_nothing_parked(
        tmp_path: Path) -> None:
    """As the daemon wires it: real grants, the daemon's look at open connections when one is
    revoked, a real HTTP origin whose keep-alive lets the gate park its connection."""
    wiring, _, grants = _wiring(tmp_path, 'default = "ask"\n')
    grant = grants.add(new_grant("network", f"{NAME}:80", "allow", "run", run_id="run-1",
                                 profile="demo", decided_by="alice"))
    origin = Origin()
    profile = wiring.evaluator.profile("demo")
    h = HeldRecord(network_rules(profile), upstream_port=origin.port,
                   names={NAME: [FAKE_GLOBAL]}, ask=wiring.asker("run-1", profile),
                   veto=wiring.veto("run-1", "demo"), stands=wiring.stands("run-1", "demo"),
                   limits=GateLimits(idle_timeout=1000.0))
    wiring.follow_grants(h.gate)
    try:
        async with running(h):
            first, (_, writer) = await _get(h, "/one")
            writer.close()
            await writer.wait_closed()
            while not h.gate.parked:  # the client's close reaches the gate a moment later
                await asyncio.sleep(0.01)
            attempt = asyncio.ensure_future(_get(h, "/two"))
            await asyncio.wait_for(h.recording.wait(), WAIT)
            grants.revoke(grant.id)  # a person revokes it while the decision is recorded
            h.go.set()
            second, (_, writer) = await asyncio.wait_for(attempt, WAIT)
            writer.close()
    finally:
        origin.close()
    assert first == 200
    assert [r["path"] for r in origin.requests] == ["/one"], (
        f"answered {second}: a request went out on a grant revoked before it was sent")
    assert second == 403
    assert [e["stage"] for e in h.kinds("net.error")] == ["grant"]


async def test_a_grant_that_ended_while_its_decision_was_recorded_sends_nothing_kept() -> None:
    """One client connection: its first request went on a `once` yes (which stands), its
    second on a grant that ended while that decision was recorded."""
    ended: set[str] = set()
    answers = iter([{"person": "alice", "scope": "once"},
                    {"person": "alice", "scope": "run", "grant_id": "g2"}])

    async def ask(_question: Any) -> Verdict:
        return Verdict(True, next(answers))

    origin = Origin()
    h = HeldRecord(NetworkRules(default="ask", ports=[80]), upstream_port=origin.port,
                   names={NAME: [FAKE_GLOBAL]}, ask=ask,
                   stands=lambda _rules, _host, _port, _ip, yes: yes.get("grant_id") not in ended)
    try:
        async with running(h):
            first, conn = await _get(h, "/one")
            attempt = asyncio.ensure_future(_get(h, "/two", keep=conn))
            await asyncio.wait_for(h.recording.wait(), WAIT)
            ended.add("g2")
            assert h.gate.recheck_asked() == 0  # the connection's standing yes is the first
            h.go.set()
            second, _ = await asyncio.wait_for(attempt, WAIT)
            conn[1].close()
    finally:
        origin.close()
    assert first == 200
    assert [r["path"] for r in origin.requests] == ["/one"], second
    assert second == 403
    assert len(h.dialled) == 1
