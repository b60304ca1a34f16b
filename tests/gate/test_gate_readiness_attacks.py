"""Spliced tunnels on the gate's own epoll (console.gate.readiness), attacked through a real
gate: bulk transfers both ways into slow readers (back-pressure, then splice(2) pipes),
half-closes, resets from either side, more ready sockets than one dispatch takes, descriptor
numbers reused, Gate.close mid-transfer, and a bug inside a direction's callback. Bytes must
arrive whole and be counted in net.closed; nothing may stay watched or open."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from console.config.bounds import FdBudget
from console.gate import GateLimits, NetworkRules, splice, upstreams
from console.gate.tls import HelloCheck

from .support import Echo, Harness, connect, running
from .test_gate_upstream_parking import until

MiB = 1024 * 1024


def payload(n: int, seed: int) -> bytes:
    """n bytes that are not a TLS record (the hello check passes them at once)."""
    block = hashlib.sha256(b"%d" % seed).digest() * 2048
    data = (block * (n // len(block) + 1))[:n]
    return b"x" + data[1:]


class Peer:
    """An upstream TCP server whose per-connection behaviour is `serve(reader, writer)`."""

    def __init__(self, serve: Any) -> None:
        self.serve = serve
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.serve(self, reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def read_slowly(reader: asyncio.StreamReader, pause: float = 0.003,
                      out: bytearray | None = None) -> bytes:
    """Everything until EOF (or a reset), 64 KiB at a time with a pause: a slow receiver
    (into `out` as it reads, when given)."""
    out = bytearray() if out is None else out
    while True:
        try:
            data = await reader.read(64 * 1024)
        except ConnectionError:
            break
        if not data:
            break
        out += data
        await asyncio.sleep(pause)
    return bytes(out)


async def recv_slowly(s: socket.socket, pause: float) -> bytes:
    """read_slowly on a plain socket: what the kernel holds is read before its reset."""
    loop, out = asyncio.get_running_loop(), bytearray()
    with contextlib.suppress(ConnectionError):
        while data := await loop.sock_recv(s, 64 * 1024):
            out += data
            await asyncio.sleep(pause)
    return bytes(out)


async def send_quietly(s: socket.socket, data: bytes) -> None:
    """Send until done or the other end goes away."""
    with contextlib.suppress(ConnectionError):
        await asyncio.get_running_loop().sock_sendall(s, data)


def policy() -> NetworkRules:
    return NetworkRules(allow=["example.com"], default="deny", ports=[443])


def closed_records(h: Harness) -> list[dict[str, Any]]:
    return h.kinds("net.closed")


async def records(h: Harness, n: int, within: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while len(closed_records(h)) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return closed_records(h)


def watching(h: Harness) -> int:
    readiness = h.gate._readiness
    return readiness.watching() if readiness is not None else 0


def epolls() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
        except OSError:
            pass
    return n


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_names() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out.append(f"{fd}: {os.readlink(f'/proc/self/fd/{fd}')}")
    return out


@pytest.fixture
async def complaints() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop's exception handler was told (a failed callback) during the test."""
    loop = asyncio.get_running_loop()
    told: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: told.append(context))
    yield told
    loop.set_exception_handler(None)


# -- bulk both ways, back-pressure ------------------------------------------------------

async def test_bulk_both_ways_into_slow_readers_arrives_whole_and_counted(complaints) -> None:
    up_data, down_data = payload(3 * MiB, 1), payload(5 * MiB, 2)

    async def serve(peer: Peer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            writer.write(down_data)
            await writer.drain()
            writer.write_eof()
        sender = asyncio.ensure_future(send())
        peer.received.append(await read_slowly(reader))
        await sender

    peer = await Peer(serve).start()
    h = Harness(policy(), upstream_port=peer.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200

        async def send_up() -> None:
            writer.write(up_data)
            await writer.drain()
            writer.write_eof()

        sending = asyncio.ensure_future(send_up())
        got = await asyncio.wait_for(read_slowly(reader), 30)
        await sending
        writer.close()
        (record,) = await records(h, 1)
        assert got == down_data
        assert peer.received == [up_data]
        assert (record["bytes_up"], record["bytes_down"], record["how"]) == \
            (len(up_data), len(down_data), "closed")
        assert watching(h) == 0
    await peer.close()
    assert complaints == []


@pytest.mark.parametrize("first", ["client", "upstream"])
async def test_a_half_close_from_either_side_lets_the_other_direction_finish(
        first: str, complaints) -> None:
    """One side sends 1 MiB and shuts its sending half; the other, after reading that EOF,
    sends 2 MiB back and closes: the tunnel carries both, and the counts say so."""
    one, two = payload(MiB, 3), payload(2 * MiB, 4)

    async def serve(peer: Peer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        if first == "client":
            peer.received.append(await read_slowly(reader))
            writer.write(two)
            await writer.drain()
        else:
            writer.write(one)
            await writer.drain()
            writer.write_eof()
            peer.received.append(await read_slowly(reader))

    peer = await Peer(serve).start()
    h = Harness(policy(), upstream_port=peer.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        if first == "client":
            writer.write(one)
            await writer.drain()
            writer.write_eof()
            got = await asyncio.wait_for(read_slowly(reader), 20)
            assert got == two and peer.received == [one]
            up, down = len(one), len(two)
        else:
            got = await asyncio.wait_for(read_slowly(reader), 20)
            assert got == one
            writer.write(two)
            await writer.drain()
            writer.close()
            for _ in range(500):
                if peer.received:
                    break
                await asyncio.sleep(0.01)
            assert peer.received == [two]
            up, down = len(two), len(one)
        writer.close()
        (record,) = await records(h, 1, within=10)
        assert (record["bytes_up"], record["bytes_down"]) == (up, down)
        assert record["how"] == "closed"
        assert watching(h) == 0
    await peer.close()
    assert complaints == []


# -- resets -----------------------------------------------------------------------------

async def test_an_upstream_reset_mid_transfer_ends_the_tunnel_and_counts_what_arrived(
        complaints) -> None:
    async def serve(peer: Peer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        writer.write(payload(2 * MiB, 5))
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST

    peer = await Peer(serve).start()
    h = Harness(policy(), upstream_port=peer.port)
    loop = asyncio.get_running_loop()
    async with running(h):
        names = set(fd_names())
        # The client on a plain socket: an asyncio stream whose write fails (the gate closes
        # the tunnel while it is still sending) drops what it had read but not yet handed
        # over, and a loaded machine saw 196,608 bytes of the 481,280 that had arrived.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        await loop.sock_connect(s, h.path)
        await loop.sock_sendall(s, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += await asyncio.wait_for(loop.sock_recv(s, 64 * 1024), 5)
        head, _, first = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        sending = asyncio.ensure_future(send_quietly(s, payload(4 * MiB, 6)))  # still sending
        got = first + await asyncio.wait_for(recv_slowly(s, pause=0.01), 20)  # when it resets
        await sending
        s.close()
        (record,) = await records(h, 1)
        assert record["bytes_down"] == len(got) and got == payload(2 * MiB, 5)[:len(got)]
        assert watching(h) == 0
        await asyncio.sleep(0.05)
        # what is left: the gate's epoll (made with its first tunnel, closed with the gate)
        assert [n for n in set(fd_names()) - names if "eventpoll" not in n] == []
    await peer.close()
    assert complaints == []


async def test_a_client_reset_mid_transfer_ends_the_tunnel_and_counts_what_arrived(
        complaints) -> None:
    # The upstream on a plain socket that counts as it reads: an asyncio stream whose flood
    # fails (the gate closes the tunnel) drops what it had read, and a loaded machine saw
    # 983,040 of the 1,048,576 bytes the gate had counted as sent up.
    loop, sent = asyncio.get_running_loop(), payload(MiB, 8)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    upstream, has_it_all = bytearray(), asyncio.Event()

    async def serve() -> None:
        s, _ = await loop.sock_accept(listener)
        s.setblocking(False)

        async def flood() -> None:
            with contextlib.suppress(OSError):
                while True:
                    await loop.sock_sendall(s, payload(MiB, 7))
        sender = asyncio.ensure_future(flood())
        try:
            with contextlib.suppress(ConnectionError):
                while data := await loop.sock_recv(s, 64 * 1024):
                    upstream.extend(data)
                    if len(upstream) >= len(sent):
                        has_it_all.set()
                    await asyncio.sleep(0.003)  # a slow reader
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            s.close()

    serving = asyncio.ensure_future(serve())
    h = Harness(policy(), upstream_port=listener.getsockname()[1])
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.write(sent)
        await writer.drain()
        await reader.read(100_000)
        await asyncio.wait_for(has_it_all.wait(), 10)  # all up before the reset
        writer.transport.abort()  # closed with data unread: the gate's sends are reset
        (record,) = await records(h, 1, within=10)
        await asyncio.wait_for(serving, 10)  # the gate ended the upstream side too
        assert upstream == sent and record["bytes_up"] == len(sent)
        assert record["bytes_down"] >= 100_000
        assert watching(h) == 0
    listener.close()
    assert complaints == []


# -- many at once, descriptor numbers reused ---------------------------------------------

async def test_more_tunnels_ready_at_once_than_one_dispatch_takes(complaints) -> None:
    echo = await Echo().start()
    n = 300  # past readiness._BATCH (256)
    h = Harness(policy(), upstream_port=echo.port,
                limits=GateLimits(max_connections=n + 10, max_tunnels=n + 10,
                                  lookups_per_second=10_000))
    async with running(h):
        tunnels = [await connect(h, "example.com:443") for _ in range(n)]
        assert {t[0] for t in tunnels} == {200}
        for i, (*_, writer) in enumerate(tunnels):
            writer.write(b"ping %05d" % i)
        answers = await asyncio.gather(*(asyncio.wait_for(reader.readexactly(10), 10)
                                         for _, _, _, reader, _ in tunnels))
        assert answers == [b"ping %05d" % i for i in range(n)]
        for *_, writer in tunnels:
            writer.close()
        closed = await records(h, n, within=10)
        assert len(closed) == n and {(r["bytes_up"], r["bytes_down"]) for r in closed} == \
            {(10, 10)}
        assert watching(h) == 0
    await echo.close()
    assert complaints == []


async def test_descriptor_numbers_reused_tunnel_after_tunnel_carry_their_own_bytes(
        complaints) -> None:
    """Waves of short tunnels: each wave's sockets get the numbers the previous wave's had."""
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port,
                limits=GateLimits(lookups_per_second=10_000))
    async with running(h):
        for wave in range(15):
            tunnels = [await connect(h, "example.com:443") for _ in range(10)]
            for i, (*_, writer) in enumerate(tunnels):
                writer.write(b"w%03d t%03d" % (wave, i))
            got = await asyncio.gather(*(asyncio.wait_for(t[3].readexactly(9), 5)
                                         for t in tunnels))
            assert got == [b"w%03d t%03d" % (wave, i) for i in range(10)]
            for *_, writer in tunnels:
                writer.close()
            await records(h, 10 * (wave + 1))
        assert len(closed_records(h)) == 150 and watching(h) == 0
    await echo.close()
    assert complaints == []


# -- Gate.close mid-transfer, a bug in a callback -----------------------------------------

async def test_close_mid_transfer_leaves_nothing_watched_or_open(
        complaints, monkeypatch: pytest.MonkeyPatch) -> None:
    # Close must end the transfers, not wait them out: with a grace far past the bound on
    # close below, a close that waited for them fails without a clock in the test.
    monkeypatch.setattr(upstreams, "CLOSE_GRACE_S", 60.0)

    async def serve(peer: Peer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        chunk = payload(MiB, 9)
        while True:
            writer.write(chunk)
            await writer.drain()

    peer = await Peer(serve).start()
    epoll_before, fds = epolls(), open_fds()
    budget = FdBudget(total=1024, reserve=0)  # the tunnels' pipes come out of it too
    h = Harness(policy(), upstream_port=peer.port, budget=budget)
    await h.gate.serve_unix(h.path)
    tunnels = [await connect(h, "example.com:443") for _ in range(5)]
    seen = [bytearray() for _ in tunnels]
    readers = [asyncio.ensure_future(read_slowly(t[3], pause=0.01, out=b))
               for t, b in zip(tunnels, seen, strict=True)]
    for *_, writer in tunnels:
        writer.write(payload(MiB, 10))  # the client direction busy too
    # Closed once every transfer is well under way (not after a fixed 0.3 s, which a loaded
    # machine's transfers may not be past 1 MiB in).
    assert await until(lambda: all(len(b) >= MiB for b in seen), within=10)
    assert watching(h) >= 5 and epolls() == epoll_before + 1
    assert budget.used > 5 * 2  # pipes made: the transfers are past their first 256 KiB
    await asyncio.wait_for(h.close(), 10)
    got = await asyncio.wait_for(asyncio.gather(*readers), 10)
    for *_, writer in tunnels:
        writer.close()
    closed = closed_records(h)
    assert len(closed) == 5
    assert sorted(r["bytes_down"] for r in closed) == sorted(len(g) for g in got)
    assert all(len(g) >= MiB for g in got)  # the transfers were under way
    assert h.gate._readiness is None and epolls() == epoll_before
    assert budget.used == 0
    await peer.close()
    await asyncio.sleep(0.05)
    assert open_fds() <= fds
    assert complaints == []


async def test_a_bug_in_a_directions_callback_ends_its_tunnel_and_is_reported(
        monkeypatch: pytest.MonkeyPatch, complaints) -> None:
    """A callback that raises (a bug, e.g. in the hello parser) is reported by the
    readiness loop, but its tunnel was left as it was: still watched, its client never
    answered, its upstream slot held until the idle timeout (five minutes)."""
    real_feed = HelloCheck.feed

    def feed(self: HelloCheck, data: bytes) -> bool:
        if b"boom" in data:
            raise RuntimeError("a bug in the hello check")
        return real_feed(self, data)

    monkeypatch.setattr(HelloCheck, "feed", feed)
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.write(b"boom")
        assert await asyncio.wait_for(reader.read(), 3) == b""  # ended, not hung
        writer.close()
        (record,) = await records(h, 1)
        assert record["how"] == "error" and record["bytes_up"] == 0
        assert watching(h) == 0 and h.gate.tunnels == 0
        status, _, _, reader, writer = await connect(h, "example.com:443")  # still serving
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
    await echo.close()
    assert [str(c.get("exception")) for c in complaints] == ["a bug in the hello check"]


async def test_a_bug_in_the_writable_callback_ends_its_tunnel_and_is_reported(
        monkeypatch: pytest.MonkeyPatch, complaints) -> None:
    """The same in the back-pressure path: the receiver was full, the direction waits for it
    to be writable, and the callback that sends the rest raises."""
    direction = splice._Direction  # the class whose callback is made to fail
    real_sent = direction._sent

    def sent(self: Any, n: int) -> None:
        if self.writing:  # called from the writable callback
            raise RuntimeError("a bug in the writable callback")
        real_sent(self, n)

    monkeypatch.setattr(direction, "_sent", sent)

    async def serve(peer: Peer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        writer.write(payload(4 * MiB, 11))
        await writer.drain()
        await reader.read()

    peer = await Peer(serve).start()
    h = Harness(policy(), upstream_port=peer.port)
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        await asyncio.sleep(0.2)  # the client's socket fills up: the gate waits on it
        got = await asyncio.wait_for(read_slowly(reader), 3)  # ended, not hung
        assert 0 < len(got) < 4 * MiB
        writer.close()
        (record,) = await records(h, 1)
        assert record["how"] == "error"
        assert watching(h) == 0 and h.gate.tunnels == 0
    await peer.close()
    assert {str(c.get("exception")) for c in complaints} == {"a bug in the writable callback"}
