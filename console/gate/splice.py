"""Byte pumps for CONNECT tunnels: SplicedTunnel between two of the gate's own sockets
(loop callbacks, recv/send then splice(2)), pump/splice for asyncio streams handed to the gate.

Idleness is not judged here: the gate keeps one watchdog per client connection that reads
`Activity.last`, because one direction of a healthy tunnel is often silent for minutes (a
download, a long poll) and a timer per read would be both wrong and slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import socket
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from console.gate.tls import HelloResult

if TYPE_CHECKING:
    from console.config.bounds import FdBudget
    from console.gate.readiness import Readiness
    from console.gate.tls import HelloCheck

__all__ = ["CAN_SPLICE", "Activity", "SplicedTunnel", "pump", "splice"]

_PIECE = 256 * 1024


class Activity:
    """Last-moved clock and byte counters for one upstream connection."""

    __slots__ = ("last", "up", "down")

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.up = 0
        self.down = 0


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, act: Activity,
               up: bool, hello: HelloCheck | None = None) -> bool:
    """Copy until EOF, then half-close the far side so request/response protocols finish.

    With `hello`, the tunnel's hello check: the server's direction shows it its first bytes
    before they pass (HelloCheck.watch_server), and the client's holds what it sends while the
    check waits for a second ClientHello, until it decides. False when it refused them (none
    of them sent)."""
    watch = hello if not up else None
    while True:
        data = await reader.read(_PIECE)
        eof = not data
        if watch is not None and watch.watch_server(data):
            watch = None  # decided, before the answer reaches the client
        if up and hello is not None and hello.waiting:
            if not hello.feed(data):
                continue
            if hello.refused:
                return False
            data = bytes(hello.buf)
        if data:
            act.last = time.monotonic()
            if up:
                act.up += len(data)
            else:
                act.down += len(data)
            writer.write(data)
            await writer.drain()
        if eof:
            break
    if writer.can_write_eof():
        with contextlib.suppress(OSError, RuntimeError):
            writer.write_eof()
    return True


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



# -- splice(2): both directions of a tunnel moved by the kernel ---------------------------------

# A direction's pipe starts at the kernel's default size and grows to _PIPE_BYTES once it has
# been filled in one go (a bulk transfer: 1 MiB moves per wake-up instead of 64 KiB, about a
# third of the CPU per byte). Short, chatty tunnels keep small pipes: pipe capacity counts
# against the user's pipe-user-pages limit, past which every new pipe of that user is tiny.
_PIPE_DEFAULT = 64 * 1024
_PIPE_BYTES = 1024 * 1024
_SPLICE_AFTER = 256 * 1024  # bytes one direction passes by recv/send before its pipe is made
_MOVE = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
CAN_SPLICE = hasattr(os, "splice")


def _hung_up(fd: int) -> bool:
    """Whether the peer of this socket is gone in both directions (POLLHUP), as opposed to
    having only half-closed. A unix socket says so when its peer closes; TCP only after a
    reset or once both halves are shut."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    for _, ev in poller.poll(0):  # one fd: at most one entry (a loop: no generator)
        if ev & select.POLLHUP:
            return True
    return False


class _Direction:
    """One direction of a spliced tunnel, driven by readiness callbacks (no task).

    The first _SPLICE_AFTER bytes are passed with plain recv/send (most tunnels are short, and
    a pipe costs more syscalls than it saves there); past that, socket -> pipe -> socket with
    splice(2), never copied into Python. Either way it reads only when what it holds has been
    sent, so a slow receiver stops the sender (back-pressure) instead of growing a buffer."""

    def __init__(self, tunnel: SplicedTunnel, src: socket.socket, dst: socket.socket,
                 up: bool, check: HelloCheck | None = None,
                 watch: HelloCheck | None = None) -> None:
        self.tunnel, self.src_sock, self.dst_sock, self.up = tunnel, src, dst, up
        self.src, self.dst = src.fileno(), dst.fileno()
        self.r = self.w = -1
        self.capacity = _PIPE_DEFAULT
        self.held = b""  # received, not yet sent (before the pipe)
        self.pending = 0  # in the pipe, not yet sent
        self.moved = 0
        self.no_pipe = False  # set once a pipe was asked for (see _open_pipe)
        self.check = check  # holds the first bytes until it passes them (tls.HelloCheck)
        self.watch = watch  # the server's direction: shown its first bytes before they pass
        self.park: HelloCheck | None = None  # not read while it holds the client (_resume)
        self.reading = self.writing = self.eof = self.gone = False
        self._resume()

    def _resume(self) -> None:
        if self.park is not None and self.park.holds_client:
            return  # the client's next bytes wait in its socket for the server's answer
        self.park = None
        self.reading = True
        self.tunnel.readiness.add_reader(self.src, self._readable)

    def _grow(self) -> None:
        self.capacity = _PIPE_BYTES
        with contextlib.suppress(OSError):  # refused (the user's limit): more turns, no harm
            self.capacity = fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)

    def _readable(self) -> None:
        try:
            if self.w >= 0:
                n = os.splice(self.src, self.w, self.capacity, flags=_MOVE)
                self.pending += n
            else:
                self.held = self.src_sock.recv(_PIPE_DEFAULT)
                n = len(self.held)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.tunnel.failed(exc)
            return
        try:
            self.took(n)
        except Exception:
            self.tunnel.end("error")  # a bug: its tunnel ends (the readiness loop reports it)
            raise                     # rather than staying watched, unanswered, for ever

    def _writable(self) -> None:
        try:
            self._flush()
        except Exception:
            self.tunnel.end("error")  # as in _readable
            raise

    def took(self, n: int) -> None:
        """After a read of n bytes (0: EOF; read by recv, they are in `held`)."""
        self.tunnel.act.last = time.monotonic()
        eof = n == 0
        # Before any pipe (the first bytes of a direction are always recv-ed): a retry request
        # re-arms the client's check before the client can see it and answer.
        if self.watch is not None and self.watch.watch_server(self.held[:n]):
            self.watch = None  # decided: HelloCheck.on_server told the tunnel
        if self.check is not None:
            if not self._checked():
                return
            n = len(self.held)  # all the first bytes, which the check held until now
        if n:
            self.moved += n
            if self.w >= 0:
                if n >= self.capacity and self.capacity < _PIPE_BYTES:
                    self._grow()
            elif self.moved >= _SPLICE_AFTER and not self.no_pipe:
                self._open_pipe()  # a bulk transfer: the kernel moves the rest
        if eof:  # pass the half-close on once everything held is sent
            self.tunnel.readiness.remove_reader(self.src)
            self.reading, self.eof = False, True
            # The sender closed outright, not just its sending half: nothing sent back can
            # reach it, so the tunnel ends once what is held is sent (and frees its upstream
            # connection) instead of waiting for the far side to notice.
            self.gone = _hung_up(self.src)
        self._flush()

    def _checked(self) -> bool:
        """Hand what was read to the hello check; True once it passes the first bytes (all of
        them then in `held`), False while it needs more or when it refuses them (the tunnel
        then ends, nothing of them sent)."""
        check = self.check
        assert check is not None
        decided = check.feed(self.held)
        self.held = b""
        if not decided:
            return False
        self.check = None
        if check.refused:
            self.tunnel.refuse(check)
            return False
        self.held = bytes(check.buf)
        if check.holds_client and self.reading:  # sent now; nothing more read until it answers
            self.tunnel.readiness.remove_reader(self.src)
            self.reading, self.park = False, check
        return True

    def _open_pipe(self) -> None:
        """A pipe's two fds come out of the daemon's fd budget like the sockets' (a run's
        bulk tunnels must not push the daemon past its fd limit, where operator.sock's
        accept fails); refused, or pipe2 failing, the direction stays on recv/send."""
        self.no_pipe = True  # asked once: either it gets a pipe now or it never will
        budget = self.tunnel.budget
        if budget is not None and not budget.take(2):
            return
        try:
            self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:  # EMFILE/ENFILE: what is held is still sent by _flush
            if budget is not None:
                budget.give(2)

    def _flush(self) -> None:
        if self.held:
            try:
                sent = self.dst_sock.send(self.held)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.tunnel.failed(exc)
                return
            self.held = self.held[sent:]
            self._sent(sent)
            if self.held:
                self._wait_writable()
                return
        while self.pending:
            try:
                n = os.splice(self.r, self.dst, self.pending, flags=_MOVE)
            except (BlockingIOError, InterruptedError):
                self._wait_writable()
                return
            except OSError as exc:
                self.tunnel.failed(exc)
                return
            self.pending -= n
            self._sent(n)
        if self.writing:
            self.tunnel.readiness.remove_writer(self.dst)
            self.writing = False
        if self.eof:
            try:
                self.dst_sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.stop()
            if self.gone:
                self.tunnel.end("closed")
            else:
                self.tunnel.finished()
        elif not self.reading:
            self._resume()

    def _sent(self, n: int) -> None:
        """Count what the receiver's socket took: counted when read instead, bytes a tunnel
        ended before sending (an idle or failed peer) would be reported as forwarded."""
        if self.up:
            self.tunnel.act.up += n
        else:
            self.tunnel.act.down += n

    def _wait_writable(self) -> None:
        if self.reading:  # the receiver is full: stop taking from the sender
            self.tunnel.readiness.remove_reader(self.src)
            self.reading = False
        if not self.writing:
            self.writing = True
            self.tunnel.readiness.add_writer(self.dst, self._writable)

    def stop(self) -> None:
        readiness = self.tunnel.readiness
        if self.reading:
            readiness.remove_reader(self.src)
            self.reading = False
        if self.writing:
            readiness.remove_writer(self.dst)
            self.writing = False
        if self.r >= 0:
            os.close(self.r)
            os.close(self.w)
            self.r = self.w = -1
            if self.tunnel.budget is not None:
                self.tunnel.budget.give(2)


class SplicedTunnel:
    """Both directions of a tunnel between two connected sockets (see _Direction).

    `start_down()` begins upstream -> client at once (server-first protocols); `start_up()`
    begins client -> upstream, its first bytes held until the hello check passes them. `wait()`
    returns "closed" when both directions reached EOF, "error" when either failed, "refused"
    when the check refused the first bytes (`refused` says why); `stop()`
    (always, in a finally) releases the pipes and the loop's callbacks. The caller closes the
    sockets."""

    def __init__(self, client: socket.socket, upstream: socket.socket, act: Activity,
                 readiness: Readiness, budget: FdBudget | None = None) -> None:
        self.loop = readiness.loop
        self.readiness = readiness  # watches both sockets (the gate's own epoll)
        self.client, self.upstream, self.act = client, upstream, act
        self.budget = budget  # the daemon's fd budget: a pipe's two fds come out of it
        self.directions: list[_Direction] = []
        self.open = 2
        self.refused: HelloCheck | None = None
        self.result: asyncio.Future[str] = self.loop.create_future()

    def start_down(self, watch: HelloCheck | None = None) -> None:
        """Upstream -> client; `watch` (the client's hello check) sees its first bytes."""
        self.directions.append(_Direction(self, self.upstream, self.client, up=False,
                                          watch=watch))

    def start_up(self, check: HelloCheck | None = None, first: bytes = b"") -> None:
        """Client -> upstream, `first` (what was read behind the CONNECT head) before the rest;
        with `check`, the first bytes wait for the hello check (see refuse)."""
        direction = _Direction(self, self.client, self.upstream, up=True, check=check)
        self.directions.append(direction)
        if first:
            direction.held = first
            direction.took(len(first))

    def server_answered(self, check: HelloCheck) -> None:
        """The server's first bytes said whether they ask for another hello (check.on_server).
        If they do, the client's direction holds what comes next for `check` again; past its
        first bytes it may move them by splice(2), unseen: such a tunnel ends instead (no
        client sends that much before a retry). Either way it reads again."""
        up = None
        for d in self.directions:  # two at most: a loop, not a generator, on the hot path
            if d.up:
                up = d
                break
        if up is None or self.result.done():
            return
        if check.waiting:
            if up.w >= 0:
                check.hello = HelloResult("malformed",
                                          detail="a second ClientHello after bulk data")
                self.refuse(check)
                return
            up.check = check
        if not up.reading and not up.writing and not up.eof:
            up._resume()

    def refuse(self, check: HelloCheck) -> None:
        """The hello check refused the client's first bytes, none of which were sent: both
        directions stop and wait() returns; the caller records why, then closes."""
        self.refused = check
        self.end("refused")

    def finished(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.result.done():
            self.result.set_result("closed")

    def failed(self, exc: OSError) -> None:
        del exc  # the tunnel's record says "error"; the peer's reset needs no more
        self.end("error")

    def end(self, how: str) -> None:
        for d in self.directions:
            d.stop()
        if how == "error":  # whoever still reads either socket (the hello check) sees EOF now
            for sock in (self.client, self.upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if not self.result.done():
            self.result.set_result(how)

    async def wait(self) -> str:
        return await self.result

    def read_eof(self, up: bool) -> bool:
        """Whether that direction read its sender's EOF (up: the client's), so nothing more
        can come from that socket."""
        for d in self.directions:  # two at most: a loop, not a generator, on the hot path
            if d.up == up and d.eof:
                return True
        return False

    def stop(self) -> None:
        """Stop both directions and forget them: a tunnel and its directions refer to each
        other, and left so, about fifteen objects a tunnel (its sockets among them) waited for
        the cyclic garbage collector: about 3% of the gate's CPU per tunnel in bench/gate.py
        (review h178). read_eof() is asked before."""
        directions, self.directions = self.directions, []
        for d in directions:
            d.stop()
