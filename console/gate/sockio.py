"""The gate's own socket streams: one non-blocking socket, read and written in place.

asyncio's StreamReader/StreamWriter cost a transport, a protocol, a task hop before the first
byte is read and a loop turn per wake-up; on a proxy's hot path (accept, one head, dial, one
answer) that overhead was most of the time. SockStream tries every recv and send at once and
waits on the loop only when the kernel says it must, and it owns its descriptor, so a tunnel can
hand both descriptors to splice(2) (splice.py) once the gate has seen what it must see.

SockStream offers exactly the part of the StreamReader/StreamWriter interface the gate uses
(read, readuntil, at_eof; write, drain, write_eof, close, wait_closed, transport.abort), so the
gate's code serves both: these for its own listeners and dials, asyncio streams for a caller
that hands `Gate.handle` a connection (the sandbox bridge, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable, Coroutine
from typing import Any

from console.gate.eager import start_eagerly
from console.gate.http1 import EMPTY_LINES_MOST

__all__ = ["Listener", "SockStream", "connect_stream", "held_now"]

_RECV = 256 * 1024
_DISCARD = 64 * 1024
# Reads answered at once, in a row, before a connection lets the loop run others: a peer that
# always has more (a flood of interim answers, a fast download) must not hold every other
# connection of the daemon while it lasts. 16 reads are at most 4 MiB.
_YIELD_EVERY = 16


class SockStream:
    """Reader and writer of one connected non-blocking socket (see the module docstring)."""

    __slots__ = ("sock", "loop", "limit", "buf", "eof", "closed", "received", "_out", "_error",
                 "_flusher", "_streak")

    def __init__(self, sock: socket.socket, limit: int,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.sock = sock
        self.loop = loop or asyncio.get_running_loop()  # a getpid(2) each on 3.11: given if known
        self.limit = limit
        self.buf = bytearray()
        self.eof = False
        self.closed = False
        self.received = 0  # bytes read from the socket, ever
        self._out = b""  # written, not yet accepted by the kernel (drain sends it)
        self._error: OSError | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._streak = 0  # reads in a row that did not wait (_YIELD_EVERY)

    # -- reading ------------------------------------------------------------------------------

    async def _fill(self) -> None:
        """Append what the socket has (waiting for it if need be); sets eof at the end."""
        self._streak += 1
        if self._streak >= _YIELD_EVERY:
            self._streak = 0
            await asyncio.sleep(0)  # one turn of the loop for everyone else
        try:
            data = self.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            self._streak = 0
            data = await self.loop.sock_recv(self.sock, _RECV)
        except OSError as exc:
            raise ConnectionResetError(str(exc)) from exc
        if data:
            self.buf += data
            self.received += len(data)
        else:
            self.eof = True

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes (whatever is there first); b"" at EOF."""
        if not self.buf and not self.eof:
            await self._fill()
        if n < 0 or n >= len(self.buf):
            data = bytes(self.buf)
            self.buf.clear()
            return data
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Up to and including separator; the asyncio errors on EOF and past `limit`."""
        start = 0
        while True:
            at = self.buf.find(separator, start)
            if at >= 0:
                if at > self.limit:  # asyncio's rule: where the separator starts
                    raise asyncio.LimitOverrunError("separator found past the limit", at)
                end = at + len(separator)
                data = bytes(self.buf[:end])
                del self.buf[:end]
                return data
            if len(self.buf) > self.limit:
                raise asyncio.LimitOverrunError("separator not found within the limit",
                                                len(self.buf))
            if self.eof:
                partial = bytes(self.buf)
                self.buf.clear()
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(self.buf) - len(separator) + 1)
            await self._fill()

    def at_eof(self) -> bool:
        return self.eof and not self.buf

    def head_ready(self) -> bool:
        """Whether a whole message head, or EOF, is already here (taking what the socket holds
        now, without waiting): then http1.read_head returns or raises without waiting. A head
        ends at the first empty line after the first non-empty one; empty lines before it
        (CRLF or LF) are skipped, as read_head skips them, and past EMPTY_LINES_MOST of them
        read_head refuses at once: the look stops there (it was a Python step per byte)."""
        if not self.eof and (not self.buf or not self._whole_head()):
            try:
                data = self.sock.recv(_RECV)
            except OSError:  # nothing yet (EAGAIN), or an error the normal read will raise
                return False
            if data:
                self.buf += data
                self.received += len(data)
            else:
                self.eof = True
        return self.eof or self._whole_head()

    def _whole_head(self) -> bool:
        buf, pos = self.buf, 0
        for _ in range(EMPTY_LINES_MOST + 1):
            if buf.startswith(b"\r\n", pos):
                pos += 2
            elif buf.startswith(b"\n", pos):
                pos += 1
            else:
                break
        else:  # one empty line too many: read_head refuses it without waiting
            return True
        return buf.find(b"\n\n", pos) >= 0 or buf.find(b"\n\r\n", pos) >= 0

    def settled(self) -> bool:
        """Nothing read and left unconsumed, nothing waiting to be sent, no EOF, no error: a
        connection between two exchanges (upstreams.py parks only such)."""
        return not (self.buf or self.eof or self.closed or self._out or self._error)

    def peer_quiet(self) -> str | None:
        """None while the peer has neither closed the connection nor sent anything (looked at,
        not read); else how it ends: "closed", or "error" (bytes nobody asked for)."""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return "error"
        return "closed" if not data else "error"

    def take_buffered(self) -> bytes:
        """What was read from the socket but not yet consumed (handed on before a splice)."""
        data = bytes(self.buf)
        self.buf.clear()
        return data

    # -- writing ------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send at once what the kernel takes; the rest waits for drain(). Errors surface in
        drain(), as with asyncio's writer."""
        if self.closed or self._error is not None or not data:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._error = exc
            return
        if sent < len(data):
            self._out = bytes(data[sent:])

    async def drain(self) -> None:
        if self._error is not None:
            raise ConnectionResetError(str(self._error))
        if self.closed:
            raise ConnectionResetError("the connection is closed")
        if self._out:
            try:
                await self._send_pending()
            except OSError as exc:
                self._error = exc
                raise ConnectionResetError(str(exc)) from exc

    async def _send_pending(self) -> None:
        out, self._out = self._out, b""
        await self.loop.sock_sendall(self.sock, out)

    def can_write_eof(self) -> bool:
        return not self.closed

    def write_eof(self) -> None:
        """Half-close; anything still unsent is sent first (a moment later if it must wait)."""
        if self._out:
            self._flusher = self.loop.create_task(self._flush(close=False))
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    async def _flush(self, *, close: bool) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(10):
                await self._send_pending()
            if not close:
                self.sock.shutdown(socket.SHUT_WR)
        if close:
            self.sock.close()

    # -- ending -------------------------------------------------------------------------------

    @property
    def transport(self) -> SockStream:
        """What Conn.drop aborts (an asyncio writer's transport, or this)."""
        return self

    def abort(self) -> None:
        """End the connection now: every pending read sees EOF and every send fails, so the
        handler unwinds through its own error paths. The descriptor is closed by close()."""
        self._out = b""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._discard_unread()
        if self._out:  # like a transport: what was written still goes, then the socket closes
            self._flusher = self.loop.create_task(self._flush(close=True))
            return
        self.sock.close()

    def _discard_unread(self) -> None:
        """Read what the peer sent that no one will read now. A socket closed with input
        unread resets the connection (ECONNRESET on a unix socket, RST on TCP), and a peer
        that had not yet read the answer sent just before (a 503 at the connection limit,
        sent without reading the head) loses it to the reset. Nothing is left to read once
        the peer's EOF was read (here, or by a tunnel's direction: Gate._spliced says so)."""
        if self.eof:
            return
        try:  # not contextlib.suppress: every connection passes here
            for _ in range(4):  # bounded: a peer that keeps sending gets its reset
                if not self.sock.recv(_DISCARD, socket.MSG_DONTWAIT):
                    return
        except OSError:  # EAGAIN: nothing (more) there
            pass

    async def wait_closed(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "socket":
            return self.sock
        with contextlib.suppress(OSError):
            if name == "peername":
                return self.sock.getpeername()
            if name == "sockname":
                return self.sock.getsockname()
        return default


async def connect_stream(family: int, address: tuple[object, ...], limit: int,
                         timeout: float) -> SockStream:
    """A TCP connection to exactly `address` (numeric: no lookup can happen here), within
    `timeout` seconds. A loopback handshake is usually complete by the second connect(2),
    so the loop (and a timer) are only involved when the network makes us wait."""
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EINTR):
            err = sock.connect_ex(address)
            if err in (errno.EALREADY, errno.EINPROGRESS, errno.EAGAIN, errno.EINTR):
                async with asyncio.timeout(timeout):
                    await asyncio.get_running_loop().sock_connect(sock, address)
                err = 0
            elif err == errno.EISCONN:
                err = 0
        if err:
            raise OSError(err, f"connect to {address[0]} port {address[1]}: "
                               f"{os.strerror(err)}")
        return SockStream(sock, limit)
    except BaseException:
        sock.close()
        raise


Handler = Callable[[SockStream, SockStream], Coroutine[Any, Any, None]]


class Listener:
    """Accepts connections on a listening socket and starts `handler(stream, stream)` for each
    as a task whose first step runs inside the accept (the reader and the writer are the same
    object). close() stops accepting; connections
    already running are the handler's to end."""

    def __init__(self, sock: socket.socket, handler: Handler, limit: int) -> None:
        self.sock = sock
        self.sockets = [sock]
        self._handler = handler
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        sock.setblocking(False)
        self._closed = asyncio.Event()
        self._loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    def unix(cls, path: str, handler: Handler, limit: int) -> Listener:
        """Listen on a unix socket at path (a stale socket file there is replaced)."""
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.remove(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(socket.SOMAXCONN)
        except BaseException:
            sock.close()
            raise
        return cls(sock, handler, limit)

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time; the loop comes back for more
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # the peer gave up while queued
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors or memory: the listener stays readable, so stop
                    # asking for a second instead of spinning (as asyncio's servers do).
                    self._loop.remove_reader(self.sock.fileno())
                    self._loop.call_later(1.0, self._resume)
                return
            conn.setblocking(False)
            if self._tcp:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = SockStream(conn, self._limit, self._loop)
            # The connection's first step runs now, not a loop turn later (eager.py says why).
            start_eagerly(self._handler(stream, stream), self._loop)

    def _resume(self) -> None:
        if not self._closed.is_set():
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()


def held_now(reader: asyncio.StreamReader, most: int) -> bytes:
    """Up to `most` bytes an asyncio StreamReader already holds, taken without waiting (b""
    when it holds none). Taken before a write that may fail: a failed write puts its error in
    the reader ahead of what it held, and those bytes (a hello behind a CONNECT head) would
    never be read."""
    coro = reader.read(most)
    try:
        coro.send(None)  # read() returns at once when it holds bytes or has seen EOF
    except StopIteration as done:
        return bytes(done.value)
    coro.close()  # it would have waited: nothing held yet
    return b""
