"""The daemon: owns runs, the store writer, the inbox and the gates, and serves operator.sock.

One daemon per PILOTHOUSE_HOME, held by an flock on daemon.lock. SIGTERM stops the runs
cleanly and flushes the store before exit. Blocking work (SQLite, docker SDK) runs in threads;
the loop never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sqlite3
import struct
import sys
import termios
import time
from pathlib import Path
from typing import Any

from console import wire
from console.config import bounds
from console.config import load as config_mod
from console.daemon import log as daemon_log
from console.daemon.bus import Bus
from console.daemon.collector import settle_collector
from console.daemon.core import Core, start_core, stop_core
from console.daemon.live_config import LiveConfig
from console.daemon.ops.base import Send
from console.daemon.ops.table import OPERATIONS, dispatch
from console.daemon.peers import Peer, as_now, identify, open_to_team
from console.home_trust import OPEN_HOME_HINT
from console.paths import Paths
from console.protocol import ErrorCode, Failure
from console.wire import MessageRefused, ProtocolError
from store.db import StoreError
from store.syslog_copy import AuditCopyError

ROLE_LOOK_S = 0.25  # how often a teammate's open stream checks the [team] table in force
MAX_IN_FLIGHT = 256  # open requests per operator.sock connection
# Operations that stream: each open one is a copy of every event (or page) encoded and sent.
STREAMS = ("subscribe", "logs", "export")
TEAMMATE_AT_ONCE = 2  # a teammate's other operations computed at once (the rest wait)
# A teammate's requests open at once, all connections together, waiting for a turn, computing or
# answered, and their bytes: past either their connections are not read (reviews h135, h137: a
# request holds its parsed message, ~30x its line, until its answer is written; 16 connections
# of 256 waiting requests were 16 GiB, and a client that reads nothing delays every answer).
TEAMMATE_OPEN, TEAMMATE_OPEN_BYTES, TEAMMATE_MAX_LINE = 64, 4 << 20, 1 << 20
log = logging.getLogger("pilothouse.daemon")
# At shutdown, how long state changes under way (a run starting, a decision) may take to end.
DECIDING_GRACE_S = 35.0  # past bubblewrap's own start timeout


class DaemonRunning(Exception):
    """Another daemon holds the lock for this PILOTHOUSE_HOME."""


class Daemon:
    def __init__(self, paths: Paths, config_file: Path | None) -> None:
        self.paths = paths
        self.config = LiveConfig(config_file)
        self.bus = Bus()
        self._stop = asyncio.Event()
        self._lock_fd: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._teammates: dict[int, int] = {}  # open operator.sock connections per teammate uid
        self._streams: dict[int, int] = {}  # open streaming requests per teammate uid
        self._turns: dict[int, asyncio.Semaphore] = {}  # per teammate uid: see _in_turn
        self._open: dict[int, list[int]] = {}  # per teammate uid: open requests, their bytes
        self._room: dict[int, asyncio.Event] = {}  # per teammate uid: set when one closes
        self._deciding: set[asyncio.Task[Any]] = set()  # state changes under way (_one)
        self.core: Core | None = None  # the parts, once started

    # --- lifecycle ---------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        team = self.config.cfg.team.group is not None
        self.paths.ensure(runtime_mode=0o750 if team else 0o700)
        fd = os.open(self.paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DaemonRunning(
                f"a Pilothouse daemon already runs for {self.paths.runtime_dir.parent}"
            ) from None
        self._lock_fd = fd
        pid = os.open(self.paths.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW)
        os.fchmod(pid, 0o644)  # whatever the umask: the team's group may enter this folder
        os.write(pid, f"{os.getpid()}\n".encode())
        os.close(pid)

    async def start(self) -> None:
        self.core = await start_core(self.paths, self.config, self.bus, self.request_stop)
        sock_path = self.paths.operator_sock
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()  # stale from a crashed daemon; we hold the lock
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve_connection, path=str(sock_path), limit=wire.OPERATOR_MAX_LINE
            )
        finally:
            os.umask(old_umask)
        self._apply_team_permissions(sock_path)
        # A reload that names another [team] group (or none) opens or closes the socket to it
        # at once: teammates no longer wait for a restart, nor keep a group taken off (s42).
        self.core.reloader.also_on_change(lambda: self._apply_team_permissions(sock_path))
        log.info("daemon %s listening on %s", os.getpid(), sock_path)

    def _apply_team_permissions(self, sock_path: Path) -> None:
        open_to_team(sock_path, self.paths.runtime_dir, self.config.cfg.team.group)

    async def serve_forever(self) -> None:
        assert self.core is not None, "start() first"
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.core.reloader.on_sighup)  # reload, not stop
        await self._stop.wait()
        await self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        log.info("daemon stopping")
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._deciding:  # state changes under way end first (a run starting, a decision)
            await asyncio.wait(set(self._deciding), timeout=DECIDING_GRACE_S)
        if self.core is not None:
            await stop_core(self.core)
        with contextlib.suppress(FileNotFoundError):
            self.paths.operator_sock.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.paths.pid_file.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    # --- operator connections ------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        sock: socket.socket = writer.get_extra_info("socket")
        held: int | None = None  # a teammate's uid while this connection counts against it
        try:
            peer = identify(sock, self.config.cfg.team)
            if not peer.may_watch:
                await self._refuse(writer, peer)
                # Briefly, and little: a stranger's request read and dropped, so the refusal is
                # not lost to a reset (a stranger's connections count against no budget).
                await _linger(reader, writer, seconds=0.5, most=64 * 1024)
                return
            if peer.role != "operator":
                # Teammates' connections are bounded per user and drawn from the fd budget, so
                # the least trusted of them cannot take the descriptors the owner, the runs and
                # the store need (the owner's come out of the reserve).
                if (self._teammates.get(peer.uid, 0) >= self.config.cfg.bounds.teammate_connections
                        or not bounds.fd_budget().take()):
                    log.warning("operator.sock: refused a connection from %s: past %d open "
                                "connections (limits.teammate_connections) or the fd budget",
                                peer.user, self.config.cfg.bounds.teammate_connections)
                    await self._too_many(writer)
                    return
                held = peer.uid
                self._teammates[held] = self._teammates.get(held, 0) + 1
            await self._session(reader, writer, peer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if held is not None:
                self._teammates[held] -= 1
                bounds.fd_budget().give()
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _too_many(self, writer: asyncio.StreamWriter) -> None:
        failure = Failure(ErrorCode.TOO_MANY_CONNECTIONS, "you have as many connections to this daemon "
                          "open as a teammate may", "close one (another console, a logs -f) and retry")
        with contextlib.suppress(Exception):
            writer.write(wire.encode(wire.error(None, failure)))
            await writer.drain()

    async def _refuse(self, writer: asyncio.StreamWriter, peer: Peer) -> None:
        assert self.core is not None
        # One row per user a second, the rest counted (floods.py): refused is refused either
        # way, and a stranger's reconnect loop must not fill the history.
        subject, data = f"uid {peer.uid}", {"uid": peer.uid, "pid": peer.pid}
        if self.core.recording.admit(None, "operator.refused", subject, "deny", data):
            await self.core.store.record_security(
                "operator.refused", actor=peer.user,
                text=f"refused a connection from {peer.user} (uid {peer.uid}, pid {peer.pid})",
                data=data,
            )
            self.core.recording.recorded(None, "operator.refused", subject, "deny")
        failure = Failure(
            "not-allowed",
            f"user {peer.user} may not use this Pilothouse daemon",
            "ask its owner to add you to the [team] group in the config",
        )
        writer.write(wire.encode(wire.error(None, failure)))
        await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        send_lock = asyncio.Lock()
        looked = time.monotonic()

        async def send(message: dict[str, Any]) -> None:
            nonlocal looked
            if peer.role != "operator" and "event" in message and time.monotonic() - looked > ROLE_LOOK_S:
                # A stream (logs -f, a console's events) outlives the check at its start: a
                # teammate taken out of the team stops receiving within ROLE_LOOK_S.
                looked = time.monotonic()
                if not as_now(peer, self.config.cfg.team).may_watch:
                    writer.close()
                    raise ConnectionResetError("no longer allowed to watch")
            async with send_lock:
                if writer.is_closing():  # closed by a stalled drain, or the peer gone
                    raise ConnectionResetError("the connection is closed")
                writer.write(wire.encode(message))
                await _drain_or_close(writer, self.config.cfg.bounds.send_timeout, peer.user)

        streams: set[asyncio.Task[None]] = set()
        mate = peer.uid if peer.role != "operator" else None
        try:
            while True:
                held = self._open.setdefault(mate, [0, 0]) if mate is not None else [0, 0]
                while held[0] >= TEAMMATE_OPEN or held[1] >= TEAMMATE_OPEN_BYTES:
                    room = self._room.setdefault(peer.uid, asyncio.Event())
                    room.clear()
                    await room.wait()  # read no more of this teammate's until one closes
                try:
                    line = await wire.read_line(reader, wire.OPERATOR_MAX_LINE if mate is None
                                                else TEAMMATE_MAX_LINE)
                    msg = None if line is None else wire.decode(line)
                except MessageRefused as exc:
                    log.warning("operator.sock: refused input from %s: %s", peer.user, exc)
                    await send(wire.error(None, Failure("bad-message", str(exc))))
                    await _linger(reader, writer)
                    return
                except ProtocolError as exc:
                    await send(wire.error(None, Failure("bad-message", str(exc))))
                    continue
                if msg is None:
                    return
                try:
                    req_id, op, args = wire.parse_request(msg)
                except ProtocolError as exc:
                    await send(wire.error(msg.get("id"), Failure("bad-request", str(exc))))
                    continue
                if len(streams) >= MAX_IN_FLIGHT:  # each open one holds a task (a stream, a queue)
                    await send(wire.error(req_id, Failure(ErrorCode.BUSY, f"more than "
                                          f"{MAX_IN_FLIGHT} requests open on this connection",
                                          "wait for answers, or open another connection")))
                    continue
                counted = op in STREAMS and peer.role != "operator"
                if counted and not self._take_stream(peer):
                    await send(wire.error(req_id, Failure(ErrorCode.BUSY, (
                        f"{peer.user} has {self._streams[peer.uid]} streams open (subscribe, "
                        "logs, export), as many as a teammate may ([limits] "
                        "teammate_connections)"), "close one (another console, a logs -f) and "
                        "retry")))
                    continue
                # Each request runs on its own so a long stream (logs -f) does not block others.
                t = asyncio.create_task(self._one(send, peer, req_id, op, args))
                streams.add(t)
                t.add_done_callback(streams.discard)
                if mate is not None:
                    size = len(line or b"")
                    held[0], held[1] = held[0] + 1, held[1] + size
                    t.add_done_callback(lambda _t, uid=mate, n=size: self._closed(uid, n))
                if counted:  # a callback, not a finally: a task cancelled unstarted runs none
                    t.add_done_callback(lambda _t, uid=peer.uid: self._give_stream(uid))
        finally:
            for t in streams:
                t.cancel()

    def _take_stream(self, peer: Peer) -> bool:
        """Count one more open stream of a teammate's, unless they hold their share: every
        event is encoded and written once per open stream, and a watcher's 4,096 of them (16
        connections of 256 subscriptions) held everyone's answers for 20 s behind one run's
        output (review s17). A console or `logs -f` holds one stream a connection."""
        if self._streams.get(peer.uid, 0) >= self.config.cfg.bounds.teammate_connections:
            return False
        self._streams[peer.uid] = self._streams.get(peer.uid, 0) + 1
        return True

    def _give_stream(self, uid: int) -> None:
        self._streams[uid] -= 1

    def _closed(self, uid: int, size: int) -> None:
        held = self._open[uid]
        held[0], held[1] = held[0] - 1, held[1] - size
        if (room := self._room.get(uid)) is not None:
            room.set()

    def _in_force(self, peer: Peer) -> Peer:
        peer = as_now(peer, self.config.cfg.team)
        if not peer.may_watch:
            raise Failure("not-allowed", f"user {peer.user} may no longer use this Pilothouse "
                          "daemon", "ask its owner to add you to the [team] group in the config")
        return peer

    async def _in_turn(self, peer: Peer, op: str, args: dict[str, Any], send: Send) -> Any:
        """A teammate's turn at the threads every part shares (store reads, run starts, config
        reloads, the gates' lookups): TEAMMATE_AT_ONCE of their operations at once, the rest
        wait. A watcher's 128 queued `audit.verify` held the owner's `history` 58 s and a run's
        start 54 s (review s17). Streams are bounded by count (_take_stream) instead.

        The operation runs to its end though its connection goes, and the turn ends with it: a
        cancelled operation's thread (policy.check's evaluation, policy.shadow's matching)
        computes on, and a turn given back at the cancel let a watcher that asks and closes,
        again and again, have as many computing at once as it liked (review s17 round 2)."""
        if peer.role == "operator" or op in STREAMS:
            return await self._compute(peer, op, args, send)
        turn = self._turns.setdefault(peer.uid, asyncio.Semaphore(TEAMMATE_AT_ONCE))
        await turn.acquire()  # those waiting are bounded with the rest (TEAMMATE_OPEN)
        task = asyncio.ensure_future(self._compute(peer, op, args, send))
        task.add_done_callback(lambda _task: turn.release())
        return await _to_its_end(task)

    async def _compute(self, peer: Peer, op: str, args: dict[str, Any], send: Send) -> Any:
        assert self.core is not None
        # Again once its turn has come: a request queued before a reload kept the old role (h164).
        call = dispatch(self.core, self._in_force(peer), op, args, send)
        entry = OPERATIONS.get(op)
        if entry is None or not entry.decides:
            return await call
        # A state change runs to its end though the person's connection goes (Ctrl-C, a lost
        # SSH link): each records first and applies after, and a cut in between left a record
        # of what was never done (a revoke on the record, the grant still in force). Only the
        # answer is lost then.
        task = asyncio.ensure_future(call)
        self._deciding.add(task)
        task.add_done_callback(self._deciding.discard)
        return await _to_its_end(task)

    async def _one(self, send: Send, peer: Peer, req_id: Any, op: str, args: dict[str, Any]) -> None:
        assert self.core is not None
        try:
            peer = self._in_force(peer)  # the role in force, not the one at connect
            result = await self._in_turn(peer, op, args, send)
            await send(wire.ok(req_id, result))
        except Failure as failure:
            await send(wire.error(req_id, failure))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: report it to the peer and the log, keep serving
            log.exception("operation %s failed", op)
            await send(wire.error(req_id, Failure(
                "internal", f"{op} failed inside the daemon: {exc.__class__.__name__}: {exc}",
                f"see {self.paths.daemon_log}",
            )))


SEND_PROGRESS_MIN = 4096  # bytes a reader takes in each send_timeout window to stay a reader


async def _drain_or_close(writer: asyncio.StreamWriter, timeout: float, user: str) -> None:
    """Wait until the peer has taken its output, while it takes some: past `timeout` with
    less than SEND_PROGRESS_MIN taken, drop what is buffered, close the connection and raise.
    A client that sends requests and reads nothing (or a byte a window) would otherwise hold
    its handler, its open requests and their output for as long as it liked; a slow reader
    (logs -f over a slow link) goes on."""
    transport = writer.transport
    while True:
        waiting = _unread(writer)
        try:
            async with asyncio.timeout(timeout):
                await writer.drain()
            return
        except TimeoutError:
            if _unread(writer) <= waiting - min(SEND_PROGRESS_MIN, waiting):
                continue  # it read a fair part: still a reader (a byte a window is not)
        log.warning("operator.sock: closed the connection of %s: it read none of its answers "
                    "for %gs ([limits] send_timeout), %d bytes of them waiting", user, timeout,
                    _unread(writer))
        transport.abort()  # close() would wait to flush what it will never read
        raise ConnectionResetError("the client read none of its answers")


def _unread(writer: asyncio.StreamWriter) -> int:
    """Output the peer has not read: the transport's buffer and the socket's send queue. The
    queue is where a reader's progress shows first: a full unix socket is writable again only
    once three quarters of it is read, so a slow reader leaves the buffer still for seconds."""
    queued = 0
    with contextlib.suppress(OSError, AttributeError):
        sock = writer.get_extra_info("socket")
        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    return writer.transport.get_write_buffer_size() + queued


async def _to_its_end(task: asyncio.Future[Any]) -> Any:
    """task's result; cancelling the request that awaits it (its connection gone) leaves it
    running to its end, and only the answer is lost."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_log_decided)  # nobody else will see how it ended
        raise


def _log_decided(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        if not isinstance(exc, Failure):
            log.error("an operation whose client had gone failed: %s", exc)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                  seconds: float = 2.0, most: int = 64 * 1024 * 1024) -> None:
    """Half-close and discard what the peer is still sending (briefly, bounded), so the error
    reply is not lost to a reset: closing a unix socket with unread input resets the peer."""
    with contextlib.suppress(Exception):
        writer.write_eof()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    discarded = 0
    with contextlib.suppress(Exception):
        while discarded < most and loop.time() < deadline:
            chunk = await asyncio.wait_for(reader.read(1 << 20), deadline - loop.time())
            if not chunk:
                break
            discarded += len(chunk)


def _use_pidfd_child_watcher() -> None:
    """Python 3.11 watches each child with a thread of its own; a pidfd costs no thread.
    (3.12 picks pidfd by itself and deprecates choosing.)"""
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    try:
        watcher = asyncio.PidfdChildWatcher()
        os.close(os.pidfd_open(os.getpid()))  # the kernel must support pidfd_open
    except (AttributeError, OSError):
        return
    asyncio.set_child_watcher(watcher)
    watcher.attach_loop(asyncio.get_running_loop())


def run_foreground(paths: Paths, config_file: Path | None) -> int:
    """`pilothouse daemon`: run until SIGTERM. Exit 0 on a clean stop."""
    os.umask(0o022)  # whatever it was started with: docs/threat-model.md, review h164
    if (why := paths.open_to_others()) is not None:  # before anything is made there (h164)
        print(f"pilothouse daemon: not started: {why}; {OPEN_HOME_HINT}", file=sys.stderr)
        return 2
    paths.ensure()
    daemon_log.setup(paths.daemon_log)
    # Before anything opens sockets: every run draws on one fd budget under this limit.
    soft, hard = bounds.raise_fd_limit()
    try:
        daemon = Daemon(paths, config_file)
        daemon.acquire_lock()
    except config_mod.ConfigError as exc:
        print(f"pilothouse daemon: bad config: {exc}\n  fix that file, then run the command "
              "again: the daemon starts with it", file=sys.stderr)
        return 2
    except DaemonRunning as exc:
        print(f"pilothouse daemon: {exc}", file=sys.stderr)
        return 3

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(daemon_log.loop_exception_handler)
        log.info("fd limit %d (hard %d); connection budget %d", soft, hard,
                 bounds.fd_budget().total)
        _use_pidfd_child_watcher()
        try:
            await daemon.start()
        except AuditCopyError as exc:  # before the history: a copy it must keep cannot be made
            log.error("cannot start: %s", exc)
            return 1
        except (StoreError, sqlite3.Error) as exc:  # fail closed, in words: nothing unrecorded
            log.error("cannot start: the history at %s cannot be opened or written (%s); "
                      "`pilothouse doctor` checks its disk and permissions, and "
                      "`pilothouse audit verify` the file once it opens", paths.db_file, exc)
            return 1
        settle_collector()  # the gate's connections allocate a lot, briefly (collector.py)
        await daemon.serve_forever()
        return 0

    return asyncio.run(main())
