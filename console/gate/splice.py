"""Byte pumps for CONNECT tunnels.

Idleness is not judged here: the gate keeps one watchdog per client connection that reads
`Activity.last`, because one direction of a healthy tunnel is often silent for minutes (a
download, a long poll) and a timer per read would be both wrong and slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

__all__ = ["Activity", "pump", "splice"]

_PIECE = 256 * 1024


class Activity:
    """Last-moved clock and byte counters for one upstream connection."""

    __slots__ = ("last", "up", "down")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.up = 0
        self.down = 0


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, act: Activity,
               up: bool) -> None:
    """Copy until EOF, then half-close the far side so request/response protocols finish."""
    while True:
        data = await reader.read(_PIECE)
        if not data:
            break
        act.last = time.monotonic()
        if up:
            act.up += len(data)
        else:
            act.down += len(data)
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()


async def splice(up: Awaitable[None], down: Awaitable[None]) -> str:
    """Run both directions until both finish or one fails; "closed" or "error".

    The caller closes the transports. If the caller is cancelled (idle, gate closing), both
    directions are cancelled with it.
    """
    tasks = [asyncio.ensure_future(up), asyncio.ensure_future(down)]
    outcome = "closed"
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                outcome = "error"
                break
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return outcome
