"""Attacks on the ClientHello check (review of the check moved into the tunnel's client
direction): however a hostile client cuts, pads or times a hello naming another host, and
whatever the upstream does meanwhile, not one byte of it goes upstream on either pump, the
refusal is recorded before the client is let go, and the fd budget comes back whole."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.config.bounds import FdBudget
from console.gate import GateLimits, NetworkRules
from console.gate.tls import HelloCheck
from tests.gate.support import Echo, Harness, client_hello, running
from tests.gate.test_gate_hello_check import StreamsHarness


class AsyncioClientHarness(StreamsHarness):
    """The client's side in asyncio's streams too (a caller handing Gate.handle its own
    connection): the bytes behind the CONNECT head wait in a StreamReader, not a SockStream."""

    async def serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self.gate.handle, self.path)


@contextlib.asynccontextmanager
async def serving(h: Harness) -> AsyncIterator[Harness]:
    if not isinstance(h, AsyncioClientHarness):
        async with running(h):
            yield h
        return
    server = await h.serve()
    try:
        yield h
    finally:
        await h.close()
        server.close()


PATHS = [pytest.param(Harness, id="spliced"), pytest.param(StreamsHarness, id="streams"),
         pytest.param(AsyncioClientHarness, id="asyncio-client")]
HEAD = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


def policy() -> NetworkRules:
    return NetworkRules(allow=["example.com"], default="deny", ports=[443])


def handshake(hello: bytes) -> bytes:
    """The handshake message of a one-record hello."""
    assert hello[0] == 0x16
    return hello[5 : 5 + int.from_bytes(hello[3:5])]


def in_records(hs: bytes, size: int) -> bytes:
    """The handshake message cut into TLS records of `size` payload bytes."""
    return b"".join(b"\x16\x03\x01" + len(hs[i : i + size]).to_bytes(2) + hs[i : i + size]
                    for i in range(0, len(hs), size))


def padded(name: str, pad: int) -> bytes:
    """A real hello for `name` grown by a padding extension (type 21) of `pad` bytes, in
    records of 16 KiB: the size of a post-quantum key share or a long extension list."""
    body = handshake(client_hello(name))[4:]
    at = 34
    at += 1 + body[at]
    at += 2 + int.from_bytes(body[at : at + 2])
    at += 1 + body[at]
    exts = body[at + 2 :] + (21).to_bytes(2) + pad.to_bytes(2) + bytes(pad)
    body = body[:at] + len(exts).to_bytes(2) + exts
    return in_records(b"\x01" + len(body).to_bytes(3) + body, 16384)


async def unix_client(h: Harness) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    await asyncio.get_running_loop().sock_connect(s, h.path)
    return s


async def read_all(s: socket.socket, within: float = 5) -> bytes:
    loop, got = asyncio.get_running_loop(), b""
    with contextlib.suppress(ConnectionError):
        while data := await asyncio.wait_for(loop.sock_recv(s, 65536), within):
            got += data
    return got


async def closed_record(h: Harness) -> dict[str, Any]:
    for _ in range(250):
        if h.kinds("net.closed"):
            return h.kinds("net.closed")[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no net.closed record")


class SlowRecords(Harness):
    """Records net.sni_mismatch only after `slow` seconds (a busy store), saying when it
    started (`refusing`)."""

    slow = 0.3

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.refusing = asyncio.Event()

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "net.sni_mismatch":
            self.refusing.set()
            await asyncio.sleep(self.slow)
        await super()._record(kind, payload)


class SlowRecordsStreams(SlowRecords, StreamsHarness):
    pass


SLOW = [pytest.param(SlowRecords, id="spliced"), pytest.param(SlowRecordsStreams, id="streams")]


@pytest.mark.parametrize("harness", SLOW)
async def test_the_refusal_is_recorded_even_when_the_upstream_resets_meanwhile(
        harness: type[SlowRecords]) -> None:
    # The upstream (which never saw the hello) resets while the refusal is being written:
    # the answer direction fails. The record must not be lost with it, and must be there
    # before the client sees its connection end.
    h = harness(policy(), upstream_port=0)
    upstream_gone = asyncio.Event()

    async def reset_when_refusing(reader: asyncio.StreamReader,
                                  writer: asyncio.StreamWriter) -> None:
        await h.refusing.wait()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        upstream_gone.set()

    server = await asyncio.start_server(reset_when_refusing, "127.0.0.1", 0)
    h.upstream_port = server.sockets[0].getsockname()[1]
    async with serving(h):
        s = await unix_client(h)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(s, HEAD)
        assert await asyncio.wait_for(loop.sock_recv(s, len(OK)), 5) == OK
        await loop.sock_sendall(s, client_hello("evil.com"))
        assert await read_all(s) == b""
        at_close = h.kinds("net.sni_mismatch")
        s.close()
        closed = await closed_record(h)
    server.close()
    assert upstream_gone.is_set()
    assert [m["sni"] for m in at_close] == ["evil.com"], (
        f"at close: {at_close}, in the end: {h.kinds('net.sni_mismatch')}")
    assert closed["bytes_up"] == 0


EVIL = client_hello("evil.com")
AT_NAME = EVIL.find(b"evil.com")
MORE = b"GET / HTTP/1.1\r\nHost: evil.com\r\n\r\n"
# (behind the CONNECT head in its write?, the client's writes, then: open | wr | close)
SHAPES = {
    "behind-the-head": (True, [EVIL], "open"),
    "behind-the-head-with-more": (True, [EVIL + MORE], "open"),
    "first-byte-behind-the-head": (True, [EVIL[:1], EVIL[1:]], "open"),
    "record-header-cut": (False, [EVIL[:1], EVIL[1:3], EVIL[3:5], EVIL[5:]], "open"),
    "cut-inside-the-name": (False, [EVIL[: AT_NAME + 2], EVIL[AT_NAME + 2 :]], "open"),
    "trickled": (False, [EVIL[i : i + 1] for i in range(12)] + [EVIL[12:]], "open"),
    "fifteen-records": (False, [in_records(handshake(EVIL), len(handshake(EVIL)) // 14)],
                        "open"),
    "one-byte-records": (False, [in_records(handshake(EVIL), 1)], "open"),
    "near-the-size-limit": (False, [padded("evil.com", 60000)], "open"),
    "near-the-size-limit-in-pieces": (False, [padded("evil.com", 60000)[i : i + 4096]
                                              for i in range(0, 60600, 4096)], "open"),
    "over-the-size-limit": (False, [padded("evil.com", 65000)], "open"),
    "then-half-close": (False, [EVIL], "wr"),
    "then-close": (False, [EVIL + MORE], "close"),
    "behind-the-head-then-close": (True, [EVIL], "close"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("harness", PATHS)
async def test_no_byte_of_a_foreign_hello_goes_upstream(harness: type[Harness],
                                                        shape: str) -> None:
    pipelined, writes, end = SHAPES[shape]
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    loop = asyncio.get_running_loop()
    async with serving(h):
        s = await unix_client(h)
        if not pipelined:
            await loop.sock_sendall(s, HEAD)
            assert await asyncio.wait_for(loop.sock_recv(s, len(OK)), 5) == OK
        for i, piece in enumerate(writes):
            await loop.sock_sendall(s, HEAD + piece if pipelined and i == 0 else piece)
            await asyncio.sleep(0.005)
        if end == "close":
            s.close()
        else:
            if end == "wr":
                s.shutdown(socket.SHUT_WR)
            assert (await read_all(s)).removeprefix(OK) == b""
            at_close = len(h.kinds("net.sni_mismatch"))
            s.close()
            assert at_close == 1, "the client was let go before the refusal was recorded"
        closed = await closed_record(h)
    await echo.close()
    assert bytes(echo.received) == b"" and echo.connections <= 1
    assert closed["bytes_up"] == 0 and closed["how"] == "error"
    (refused,) = h.kinds("net.sni_mismatch")
    assert refused["sni"] in ("evil.com", "")  # "" where the hello is malformed


@pytest.mark.parametrize("hello", [pytest.param(EVIL, id="foreign"),
                                   pytest.param(client_hello("example.com"), id="matching"),
                                   pytest.param(padded("evil.com", 20000), id="large")])
def test_the_check_decides_the_same_wherever_the_hello_is_cut(hello: bytes) -> None:
    def check() -> HelloCheck:
        return HelloCheck(lambda sni: sni == "example.com")

    whole = check()
    assert whole.feed(hello)
    step = 1 if len(hello) < 2000 else 97
    for cut in range(1, len(hello), step):
        two = check()
        assert not two.feed(hello[:cut]), cut
        assert two.feed(hello[cut:]), cut
        assert (two.refused, two.hello, bytes(two.buf)) == (whole.refused, whole.hello, hello)
    if step == 1:
        trickle = check()
        assert not any(trickle.feed(hello[i : i + 1]) for i in range(len(hello) - 1))
        assert trickle.feed(hello[-1:]) and trickle.refused == whole.refused


class Keeper:
    """An upstream that keeps what it receives; `greet` is sent first (server-first), and
    with `half_close` it shuts its sending side at once but goes on reading."""

    def __init__(self, greet: bytes = b"", half_close: bool = False) -> None:
        self.greet, self.half_close, self.received = greet, half_close, bytearray()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            if self.greet:
                writer.write(self.greet)
                await writer.drain()
            if self.half_close:
                writer.write_eof()
            while data := await reader.read(65536):
                self.received += data
        writer.close()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("harness", PATHS)
@pytest.mark.parametrize("upstream", [pytest.param({"greet": b"220 ready\r\n"}, id="server-first"),
                                      pytest.param({"half_close": True}, id="upstream-half-closed"),
                                      pytest.param({"greet": b"x" * 600_000}, id="server-bulk")])
async def test_whatever_the_upstream_does_first_a_foreign_hello_still_goes_nowhere(
        harness: type[Harness], upstream: dict[str, Any]) -> None:
    keeper = Keeper(**upstream)
    h = harness(policy(), upstream_port=await keeper.start())
    loop = asyncio.get_running_loop()
    async with serving(h):
        s = await unix_client(h)
        await loop.sock_sendall(s, HEAD)
        want = OK + keeper.greet
        got = b""
        while len(got) < len(want):
            got += await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 5)
        assert got == want
        await loop.sock_sendall(s, EVIL)
        rest = await read_all(s)
        at_close = len(h.kinds("net.sni_mismatch"))
        s.close()
        closed = await closed_record(h)
    keeper.close()
    # A half-closed upstream's EOF reaches the client before its hello: only then is the
    # client's EOF not the gate letting it go.
    assert rest == b"" and (at_close == 1 or keeper.half_close)
    assert len(h.kinds("net.sni_mismatch")) == 1
    assert bytes(keeper.received) == b"" and closed["bytes_up"] == 0
    assert closed["bytes_down"] == len(keeper.greet)


@pytest.mark.parametrize("harness", PATHS)
async def test_an_idle_drop_with_a_hello_waiting_counts_nothing_as_sent(
        harness: type[Harness]) -> None:
    # The sweeper ends a tunnel whose hello never completed: the check then sees EOF, and
    # what it held goes nowhere (both sockets are shut), so the record must not claim it did.
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port, limits=GateLimits(idle_timeout=0.3))
    loop = asyncio.get_running_loop()
    async with serving(h):
        s = await unix_client(h)
        await loop.sock_sendall(s, HEAD + EVIL[:-3])
        assert (await read_all(s)).removeprefix(OK) == b""
        s.close()
        closed = await closed_record(h)
    await echo.close()
    assert bytes(echo.received) == b""
    assert (closed["how"], closed["bytes_up"]) == ("idle", 0)


async def test_a_refused_hello_gives_back_the_answer_directions_pipe() -> None:
    # A server-first bulk answer makes the answer direction take a pipe (two fds from the
    # daemon's budget) while the hello waits; the refusal must give back exactly what was
    # taken: the connection's two and the pipe's two, nothing more (other runs hold 10).
    budget = FdBudget(total=64, reserve=0)
    assert budget.take(10)
    keeper = Keeper(greet=b"x" * 600_000)
    h = Harness(policy(), upstream_port=await keeper.start(), budget=budget)
    loop = asyncio.get_running_loop()
    async with serving(h):
        s = await unix_client(h)
        await loop.sock_sendall(s, HEAD)
        got = 0
        while got < len(OK) + len(keeper.greet):
            got += len(await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 5))
        used_with_pipe = budget.used
        await loop.sock_sendall(s, EVIL)
        assert await read_all(s) == b""
        s.close()
        await closed_record(h)
        for _ in range(50):
            if budget.used == 10:
                break
            await asyncio.sleep(0.02)
    keeper.close()
    assert used_with_pipe == 14
    assert budget.used == 10


@pytest.mark.parametrize("harness", PATHS)
async def test_a_large_matching_hello_in_pieces_arrives_whole_in_order_and_counted(
        harness: type[Harness]) -> None:
    # The other side of the check: what it holds must all go on, once, in order.
    hello = padded("example.com", 60000)
    sent = hello + b"after the hello"
    echo = await Echo().start()
    h = harness(policy(), upstream_port=echo.port)
    loop = asyncio.get_running_loop()
    async with serving(h):
        s = await unix_client(h)
        await loop.sock_sendall(s, HEAD + sent[:3])
        for i in range(3, len(sent), 7000):
            await asyncio.sleep(0.002)
            await loop.sock_sendall(s, sent[i : i + 7000])
        s.shutdown(socket.SHUT_WR)
        assert await read_all(s) == OK + sent
        s.close()
        closed = await closed_record(h)
    await echo.close()
    assert not h.kinds("net.sni_mismatch")
    assert bytes(echo.received) == sent
    assert (closed["bytes_up"], closed["bytes_down"]) == (len(sent), len(sent))
