"""Byte pumps for CONNECT tunnels, with one idle clock for both directions.

One direction of a healthy tunnel is often silent for minutes (a download, a long poll), so
idleness is judged on the pair: a watchdog closes the tunnel only when neither direction has
moved for `idle_timeout`. Per-read timeouts would be both wrong and slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["Activity", "guarded", "pump", "splice", "watchdog"]

_PIECE = 256 * 1024


class Activity:
    """Shared last-moved clock and byte counters for one tunnel."""

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


async def watchdog(act: Activity, idle_timeout: float) -> None:
    """Return once `act` has not moved for `idle_timeout` seconds."""
    while True:
        left = act.last + idle_timeout - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(left)


async def guarded(coro: Awaitable[T], act: Activity, idle_timeout: float) -> T:
    """Await `coro`, cancelling it with TimeoutError once `act` stops moving."""
    task = asyncio.ensure_future(coro)
    dog = asyncio.ensure_future(watchdog(act, idle_timeout))
    try:
        await asyncio.wait({task, dog}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise TimeoutError(f"no bytes moved for {idle_timeout:g}s")
    finally:
        for t in (task, dog):
            t.cancel()
        await asyncio.gather(task, dog, return_exceptions=True)


async def splice(up: Awaitable[None], down: Awaitable[None], act: Activity,
                 idle_timeout: float, on_idle: Callable[[], None] | None = None) -> str:
    """Run both directions until both finish, one fails, or the pair goes idle.

    Returns why it ended: "closed", "error" or "idle". The caller closes the transports.
    """
    tasks = {asyncio.ensure_future(up), asyncio.ensure_future(down)}
    dog = asyncio.ensure_future(watchdog(act, idle_timeout))
    outcome = "closed"
    try:
        pending = set(tasks)
        while pending:
            done, _ = await asyncio.wait(pending | {dog}, return_when=asyncio.FIRST_COMPLETED)
            if dog in done:
                outcome = "idle"
                if on_idle:
                    on_idle()
                break
            pending -= done
            if any(t.exception() is not None for t in done if not t.cancelled()):
                outcome = "error"
                break
    finally:
        for t in (*tasks, dog):
            t.cancel()
        await asyncio.gather(*tasks, dog, return_exceptions=True)
    return outcome
