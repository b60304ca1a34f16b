"""Attack review h157 of the network gate. Each test asserts the secure behaviour.

Nothing here leaves the machine: names are under .invalid, the harness resolves them to a
global address that exists nowhere and routes the checked address to a local server.
"""

from __future__ import annotations

import asyncio
import socket

from console.gate import NetworkRules
from console.gate.http1 import HttpError, read_head
from console.gate.sockio import SockStream
from tests.gate.support import Harness, running

# -- 1. newlines before a head were skipped one Python step at a time, without a turn --------
#
# read_head skips empty lines before a head (RFC 9112 2.2), and did so for as many as the
# head's byte allowance holds (32 KiB: 32,768 lines, a readuntil each); SockStream.head_ready
# first walked every leading newline of what it had read (256 KiB: 262,144 steps) to see
# whether a head was there. None of it waits (the bytes are in the buffer), and a connection's
# first step runs inside the accept (eager.py), 64 connections a burst. Measured (/tmp probe):
# 100 connections each sending 200 KiB of b"\n" held the daemon's loop, every run's gate,
# 5.5 s in one go; the same connections sending 200 KiB heads of header lines: 26 ms.
# Now a handful are skipped (http1.EMPTY_LINES_MOST) and more are refused 400 at once.

SKIPPED_MOST = 64  # generous: what matters is a small bound, not its exact value


class _CountingReader:
    """A reader whose buffer is `data` and which counts readuntil calls."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, 0

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        self.calls += 1
        at = self.data.find(separator)
        if at < 0:
            raise asyncio.IncompleteReadError(self.data, None)
        line, self.data = self.data[: at + 1], self.data[at + 1 :]
        return line


async def test_newlines_before_a_head_are_not_read_without_bound() -> None:
    reader = _CountingReader(b"\n" * 30_000 + b"GET http://ok.invalid/ HTTP/1.1\r\n\r\n")
    try:
        await read_head(reader, 32 * 1024)  # type: ignore[arg-type]
        refused = False
    except HttpError as exc:
        refused = exc.status == 400
    assert refused
    assert reader.calls <= SKIPPED_MOST + 1


async def test_a_few_empty_lines_before_a_head_are_still_skipped() -> None:
    reader = _CountingReader(b"\r\n\n" + b"GET / HTTP/1.1\r\nH: v\r\n\r\n")
    assert await read_head(reader, 1024) == [b"GET / HTTP/1.1", b"H: v"]  # type: ignore[arg-type]


class _CountingBuf(bytearray):
    looks = 0

    def startswith(self, *args: object) -> bool:  # type: ignore[override]
        type(self).looks += 1
        return super().startswith(*args)  # type: ignore[arg-type]


async def test_head_ready_does_not_walk_every_leading_newline() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        stream = SockStream(ours, 64 * 1024)
        stream.buf = _CountingBuf(b"\n" * 200_000)
        _CountingBuf.looks = 0
        stream.head_ready()
        assert _CountingBuf.looks <= 2 * (SKIPPED_MOST + 2)
    finally:
        ours.close()
        theirs.close()


async def test_a_connection_of_newlines_is_answered_400_at_once() -> None:
    h = Harness(NetworkRules(allow=["ok.invalid"], default="deny", ports=[80]),
                upstream_port=1)
    async with running(h):
        reader, writer = await h.open()
        writer.write(b"\n" * 100_000)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"empty lines" in answer
    assert h.dialled == []
