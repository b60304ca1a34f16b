"""The asyncio side of the operator client, for the TUI: the same connect and answers as
console.client.sync, with requests and a subscription on one connection, and streaming ops
on a connection of their own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from console import wire
from console.client.sync import ClientError, closed, connect, outcome
from console.paths import Paths


async def _open(paths: Paths, autostart: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await asyncio.to_thread(connect, paths, autostart=autostart)
    return await asyncio.open_unix_connection(sock=sock, limit=wire.OPERATOR_MAX_LINE)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def stream(paths: Paths, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
    """A streaming op (logs, export) on a connection of its own: its events, then
    {"kind": "stream.result", "result": ...}. Closing the iterator closes the connection."""
    reader, writer = await _open(paths, autostart=False)
    try:
        writer.write(wire.encode(wire.request(1, op, args)))
        await writer.drain()
        while True:
            msg = await wire.read_message(reader, wire.OPERATOR_MAX_LINE)
            if msg is None:
                raise closed()
            if "event" in msg:
                yield msg["event"]
                continue
            yield {"kind": "stream.result", "result": outcome(msg)}
            return
    finally:
        await _close(writer)


class AsyncClient:
    """asyncio client for the TUI: requests and a subscription on one connection each."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None

    async def open(self, *, autostart: bool = True) -> None:
        self.reader, self.writer = await _open(self.paths, autostart)
        self._reader_task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                msg = await wire.read_message(self.reader, wire.OPERATOR_MAX_LINE)
                if msg is None:
                    break
                if "event" in msg:
                    await self._events.put(msg["event"])
                    continue
                fut = self._waiting.pop(msg.get("id"), None)
                if fut is None or fut.done():
                    continue
                try:
                    fut.set_result(outcome(msg))
                except ClientError as exc:
                    fut.set_exception(exc)
        finally:
            err = closed()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(err)
            self._waiting.clear()
            await self._events.put({"kind": "client.disconnected"})

    def _send(self, op: str, args: dict[str, Any]) -> asyncio.Future[Any]:
        if self.writer is None:
            raise ClientError("disconnected", "not connected to the daemon")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self.writer.write(wire.encode(wire.request(req_id, op, args)))
        return fut

    async def call(self, op: str, **args: Any) -> Any:
        fut = self._send(op, args)
        assert self.writer is not None
        try:
            await self.writer.drain()
        except OSError:  # the daemon closed the line before the reader noticed: as a ClientError
            self._waiting = {k: f for k, f in self._waiting.items() if f is not fut}
            fut.cancel()
            raise closed(self.paths) from None
        return await fut

    async def subscribe(self, topics: list[str] | None = None) -> None:
        """Start the event stream; events arrive through events()."""
        fut = self._send("subscribe", {"topics": topics or ["*"]})
        # Nobody awaits a subscription's end; retrieve its error so none is logged as lost.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        assert self.writer is not None
        await self.writer.drain()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._events.get()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self.writer is not None:
            await _close(self.writer)
