"""The gate's own sockets and spliced tunnels (issue 17, point 3): bytes still arrive intact
and counted, half-close still works, a client that vanishes frees its upstream at once, a
reload still changes the next decision, and a listening socket (the sandbox bridge's) is
served the same way. Speed itself is measured by bench/gate.py, never here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from typing import Any

from console.config.bounds import FdBudget
from console.gate import NetworkRules

from .support import Echo, Harness, client_hello, connect, read_response, running


def policy(**kw: Any) -> NetworkRules:
    base: dict[str, Any] = {"allow": ["example.com"], "default": "deny", "ports": [80, 443]}
    base.update(kw)
    return NetworkRules(**base)


async def _closed_record(h: Harness, within: float) -> dict[str, Any] | None:
    for _ in range(int(within / 0.02)):
        if h.kinds("net.closed"):
            return h.kinds("net.closed")[0]
        await asyncio.sleep(0.02)
    return None


async def test_a_tunnel_carries_megabytes_both_ways_intact_and_counted() -> None:
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port)
    payload = _not_tls(os.urandom(4 * 1024 * 1024))
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200

        async def send() -> None:
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i:i + 100_000])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        back = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        await sender
        writer.close()
        closed = await _closed_record(h, 5)
    await echo.close()
    assert back == payload and bytes(echo.received) == payload
    assert closed is not None
    assert (closed["bytes_up"], closed["bytes_down"]) == (len(payload), len(payload))


async def test_half_close_through_a_tunnel_still_lets_the_answer_back() -> None:
    async def count_then_answer(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        got = len(await reader.read())  # until the client's EOF
        writer.write(f"got {got}".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(count_then_answer, "127.0.0.1", 0)
    h = Harness(policy(), upstream_port=server.sockets[0].getsockname()[1])
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        writer.write(b"z" * 300_000)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b"got 300000"
        writer.close()
        closed = await _closed_record(h, 5)
    server.close()
    assert closed is not None and closed["how"] == "closed"
    assert (closed["bytes_up"], closed["bytes_down"]) == (300_000, 10)


async def test_a_client_gone_outright_frees_its_upstream_at_once() -> None:
    """A client that closes its socket (not just its sending half) can never read an answer:
    the tunnel ends and the upstream connection is closed, instead of both waiting for the
    far side or the idle timeout."""
    upstream_saw_eof = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers, never closes on its own
        upstream_saw_eof.set()
        await asyncio.sleep(30)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    h = Harness(policy(), upstream_port=server.sockets[0].getsockname()[1])
    async with running(h):
        for sends in (b"", b"hello"):  # gone before the first byte, and after some
            status, _, _, _reader, writer = await connect(h, "example.com:443")
            assert status == 200
            if sends:
                writer.write(sends)
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.close()
            closed = await _closed_record(h, 3)
            assert closed is not None, "the tunnel outlived its client"
            assert closed["bytes_up"] == len(sends)
            await asyncio.wait_for(upstream_saw_eof.wait(), 3)
            upstream_saw_eof.clear()
            h.records.clear()
        assert h.gate.tunnels == 0
    server.close()


async def test_a_reload_changes_the_very_next_decision() -> None:
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port)
    async with running(h):
        for rules, expected in ((policy(), 200), (policy(allow=[], deny=["example.com"]), 403),
                                (policy(), 200), (policy(default="deny", allow=[]), 403)):
            h.gate.rules = rules
            status, _, _, _, writer = await connect(h, "example.com:443")
            writer.close()
            assert status == expected, rules
    await echo.close()
    actions = [d["action"] for d in h.kinds("net.decision")]
    assert actions == ["allow", "deny", "allow", "deny"]


async def test_a_listening_tcp_socket_is_served_like_gate_sock() -> None:
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = await h.gate.serve_socket(listener)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 403 and headers["x-pilothouse-decision"] == "deny; rule=default"
        writer.close()
    finally:
        server.close()
        await h.close()
        await echo.close()


async def test_an_upstream_reset_ends_a_tunnel_whose_client_has_not_spoken() -> None:
    """The answer direction runs while the gate still waits for the client's first bytes
    (the ClientHello check); its failure must end that wait too."""
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # close with linger 0: a reset

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    h = Harness(policy(), upstream_port=server.sockets[0].getsockname()[1])
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 3) == b""  # ended, not left waiting
        writer.close()
        closed = await _closed_record(h, 3)
    server.close()
    assert closed is not None and closed["how"] == "error"


def _pipes_open() -> int:
    """Pipes this process holds now (what a spliced tunnel adds: two per direction)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    return count


async def test_a_bulk_tunnel_takes_its_pipes_from_the_fd_budget_or_goes_without() -> None:
    # Attack review: a spliced tunnel holds two pipes (four fds) beside its two sockets; they
    # must come out of the daemon's fd budget, or a run's bulk tunnels push the daemon past
    # its fd limit (accept on operator.sock fails). With the budget spent the tunnel still
    # carries every byte, by recv/send.
    echo = await Echo().start()
    budget = FdBudget(total=16, reserve=0)
    assert budget.take(14)  # other runs hold the rest: room for this connection's two only
    h = Harness(policy(), upstream_port=echo.port, budget=budget)
    payload = _not_tls(os.urandom(2 * 1024 * 1024))
    async with running(h):
        before = _pipes_open()
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        most = 0

        async def send() -> None:
            nonlocal most
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i:i + 100_000])
                await writer.drain()
                most = max(most, _pipes_open() - before)

        sender = asyncio.ensure_future(send())
        back = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        await sender
        used_during = budget.used
        writer.close()
        await _closed_record(h, 5)
    await echo.close()
    assert back == payload
    assert used_during <= budget.total
    assert most == 0, f"{most} pipes opened past the fd budget"


def _not_tls(data: bytes) -> bytes:
    """Random bytes for a tunnel to 443, never starting like a TLS handshake record (0x16):
    the gate checks such a first record as a ClientHello and refuses a malformed one, which
    failed one CI run in 256 when the random first byte happened to be 0x16."""
    return b"\x00" + data[1:]


def _in_tiny_records(hello: bytes) -> bytes:
    """The same ClientHello re-cut into one-byte handshake records (legal framing, and a way
    to make the gate parse the growing buffer again after every few bytes)."""
    body = hello[5:]
    return b"".join(b"\x16\x03\x01\x00\x01" + body[i:i + 1] for i in range(len(body)))


def test_a_client_hello_cut_into_hundreds_of_records_is_refused() -> None:
    # Attack review: each parse walks every record so far, so a hello trickled in one-byte
    # records costs the daemon's loop a parse per piece, quadratic in the records (seconds of
    # CPU per connection, 128 connections per run). Real clients use a handful of records.
    from console.gate.tls import parse_client_hello

    hello = client_hello("example.com")
    assert parse_client_hello(hello).status == "ok"
    assert parse_client_hello(_in_tiny_records(hello)).status == "malformed"
    two = hello[5:]  # split in two records still parses: fragmentation itself is legal
    half = len(two) // 2
    framed = (b"\x16\x03\x01" + half.to_bytes(2, "big") + two[:half] + b"\x16\x03\x01"
              + (len(two) - half).to_bytes(2, "big") + two[half:])
    assert parse_client_hello(framed).sni == "example.com"


async def test_a_trickled_tiny_record_hello_never_reaches_the_upstream() -> None:
    echo = await Echo().start()
    h = Harness(policy(), upstream_port=echo.port)
    pieces = _in_tiny_records(client_hello("example.com"))
    async with running(h):
        status, _, _, reader, writer = await connect(h, "example.com:443")
        assert status == 200
        for i in range(0, len(pieces), 600):  # in many small writes
            writer.write(pieces[i:i + 600])
            await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 10)  # the gate closes the tunnel
        writer.close()
    await echo.close()
    assert rest == b"" and bytes(echo.received) == b""
    assert h.kinds("net.sni_mismatch")
