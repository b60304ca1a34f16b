"""A container's output, read from the engine's blocking stream in a thread, into asyncio."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class StreamPump:
    """Moves bytes from a blocking docker stream into an asyncio StreamReader.

    The thread appends to a buffer and schedules at most one flush at a time, so a chatty
    container costs the loop one wake-up per batch, not one per frame.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader) -> None:
        self.loop, self.reader = loop, reader
        self._buf: list[bytes] = []
        self._lock = threading.Lock()
        self._scheduled = self._eof = False

    def push(self, data: bytes) -> None:
        with self._lock:
            self._buf.append(data)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._flush)

    def close(self) -> None:
        with self._lock:
            self._eof = True
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            data, self._buf = b"".join(self._buf), []
            eof, self._scheduled = self._eof, False
        if data:
            self.reader.feed_data(data)
        if eof and not self.reader.at_eof():
            self.reader.feed_eof()

    def run(self, stream: Any) -> None:
        try:
            for chunk in stream:
                if chunk:
                    self.push(chunk)
        except Exception:  # the engine closed the stream (container removed): end of output
            pass
        finally:
            self.close()


def attach_output(container: Any) -> Any:
    """The container's output stream, attached before it starts. A pooled connection dockerd
    had closed failed a start now and then ("Remote end closed connection without response",
    docker-py #2075, seen in the suite): tried once more on a fresh one, nothing has run yet."""
    import requests

    try:
        return container.attach(stdout=True, stderr=True, stream=True, logs=True)
    except requests.exceptions.ConnectionError:
        return container.attach(stdout=True, stderr=True, stream=True, logs=True)
