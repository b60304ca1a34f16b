"""asyncio operator client for the TUI (the CLI's blocking one is console.client.sync)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from console import protocol
from console.client.sync import ClientError, connect
from console.paths import Paths


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
        sock = await asyncio.to_thread(connect, self.paths, autostart=autostart)
        self.reader, self.writer = await asyncio.open_unix_connection(
            sock=sock, limit=protocol.OPERATOR_MAX_LINE
        )
        self._reader_task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                msg = await protocol.read_message(self.reader, protocol.OPERATOR_MAX_LINE)
                if msg is None:
                    break
                if "event" in msg:
                    await self._events.put(msg["event"])
                    continue
                fut = self._waiting.pop(msg.get("id"), None)
                if fut is not None and not fut.done():
                    if msg.get("ok"):
                        fut.set_result(msg.get("result"))
                    else:
                        fut.set_exception(ClientError.from_wire(msg.get("error", {})))
        finally:
            err = ClientError("disconnected", "the daemon closed the connection")
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(err)
            self._waiting.clear()
            await self._events.put({"kind": "client.disconnected"})

    async def call(self, op: str, **args: Any) -> Any:
        if self.writer is None:
            raise ClientError("disconnected", "not connected to the daemon")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        self.writer.write(protocol.encode(protocol.request(req_id, op, args)))
        await self.writer.drain()
        return await fut

    async def subscribe(self, topics: list[str] | None = None) -> None:
        """Start the event stream; events arrive through events()."""
        if self.writer is None:
            raise ClientError("disconnected", "not connected to the daemon")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Nobody awaits a subscription's end; retrieve its error so none is logged as lost.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting[req_id] = fut
        self.writer.write(protocol.encode(protocol.request(req_id, "subscribe", {"topics": topics or ["*"]})))
        await self.writer.drain()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._events.get()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
