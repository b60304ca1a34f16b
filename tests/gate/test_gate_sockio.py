"""SockStream (the gate's own socket stream) against asyncio's StreamReader/StreamWriter, on
real socket pairs: the same bytes in, the same answers out, the same errors, so the gate's
HTTP code behaves alike on both (it serves asyncio streams handed to Gate.handle too)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.gate.http1 import HttpError, read_head
from console.gate.sockio import SockStream

LIMIT = 64


async def _pair(kind: str) -> tuple[Any, Any, socket.socket]:
    """A reader and writer of the given kind on one end of a socket pair, and the raw other
    end (the writer is kept: an asyncio writer that is dropped closes its transport)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    if kind == "sockio":
        stream = SockStream(ours, LIMIT)
        return stream, stream, theirs
    reader, writer = await asyncio.open_connection(sock=ours, limit=LIMIT)
    return reader, writer, theirs


async def _script(kind: str, chunks: list[bytes], steps: list[tuple[str, Any]]) -> list[Any]:
    reader, writer, peer = await _pair(kind)
    out: list[Any] = []
    try:
        for chunk in chunks:
            if chunk == b"EOF":
                peer.shutdown(socket.SHUT_WR)
            else:
                peer.sendall(chunk)
        await asyncio.sleep(0.01)
        for op, arg in steps:
            try:
                if op == "readuntil":
                    out.append(await asyncio.wait_for(reader.readuntil(arg), 2))
                elif op == "read":
                    out.append(await asyncio.wait_for(reader.read(arg), 2))
                else:
                    out.append(reader.at_eof())
            except asyncio.IncompleteReadError as exc:
                out.append(("incomplete", exc.partial))
            except asyncio.LimitOverrunError:
                out.append("limit")
                break
    finally:
        peer.close()
        writer.close()
    return out


CASES = [
    ([b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", b"EOF"],
     [("readuntil", b"\n"), ("readuntil", b"\n"), ("readuntil", b"\n"), ("read", 100),
      ("read", 100), ("at_eof", None)]),
    ([b"partial line", b"EOF"], [("readuntil", b"\n"), ("at_eof", None)]),
    ([b"x" * (LIMIT + 10) + b"\n"], [("readuntil", b"\n")]),
    ([b"x" * LIMIT + b"\nnext\n"], [("readuntil", b"\n"), ("readuntil", b"\n")]),
    ([b"abc", b"def", b"EOF"], [("read", 2), ("read", -1), ("read", 5), ("at_eof", None)]),
    ([b"\r\n\r\nCONNECT a:1 HTTP/1.1\r\n\r\n"], [("readuntil", b"\r\n\r\n"),
                                                  ("readuntil", b"\r\n\r\n")]),
]


@pytest.mark.parametrize(("chunks", "steps"), CASES)
async def test_reads_match_asyncio(chunks: list[bytes], steps: list[tuple[str, Any]]) -> None:
    assert await _script("sockio", chunks, steps) == await _script("asyncio", chunks, steps)


async def test_write_drain_and_half_close_reach_the_peer() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = SockStream(ours, LIMIT)
    big = b"y" * (4 * 1024 * 1024)  # more than the kernel takes at once: drain must wait
    reader = asyncio.get_running_loop().run_in_executor(None, _read_all, theirs)
    stream.write(big)
    await stream.drain()
    stream.write_eof()
    assert await asyncio.wait_for(reader, 10) == big
    stream.close()
    theirs.close()


async def test_abort_ends_a_pending_read_and_later_drains_fail() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = SockStream(ours, LIMIT)
    pending = asyncio.ensure_future(stream.read(10))
    await asyncio.sleep(0.01)
    stream.abort()
    assert await asyncio.wait_for(pending, 2) == b""  # EOF, so the handler unwinds
    stream.write(b"late")
    with pytest.raises(ConnectionError):
        await stream.drain()
    stream.close()
    theirs.close()


def _read_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while data := sock.recv(1 << 20):
        out += data
    return bytes(out)


async def _ready_then_read(data: bytes) -> tuple[bool, str]:
    """head_ready() on `data` (peer still open), then what read_head does with no more bytes
    coming: "lines", "none", "error", or "waited" (it would have needed the timer); "timed"
    when head_ready() said no: the gate then keeps the timer, and read_head may wait."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = SockStream(ours, LIMIT)
    try:
        if data:
            theirs.sendall(data)
        await asyncio.sleep(0)
        ready = stream.head_ready()
        if not ready:  # nothing to check, and read_head would wait out the 0.05 s below
            return ready, "timed"
        try:
            lines = await asyncio.wait_for(read_head(stream, 1024), 0.05)
        except TimeoutError:
            return ready, "waited"
        except HttpError:
            return ready, "error"
        return ready, "none" if lines is None else "lines"
    finally:
        ours.close()
        theirs.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"GET / HTTP/1.1", b"H: v",
                                 b" ", b":", b"x" * 70]), max_size=12))
def test_a_head_said_ready_never_makes_read_head_wait(parts: list[bytes]) -> None:
    """The gate skips the head timer when head_ready() says yes; that is only sound if
    read_head then cannot wait for more bytes."""
    ready, outcome = asyncio.run(_ready_then_read(b"".join(parts)))
    if ready:
        assert outcome != "waited", parts
