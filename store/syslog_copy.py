"""The `[audit] syslog` copy of each witness line, sent off the commit path.

The store's writer thread only queues a line (bounded, never blocking a commit); one sender
thread sends. A receiver that stops reading (a full unix datagram queue: send() would block),
one that is gone, or a network that drops the datagram costs a count (`dropped`, and one
warning per failing stretch in the daemon log), never a stalled store: before, the copy was
sent in the writer's thread, and a hung journald made every security commit time out.

The address is resolved once, when the copy is made (at daemon start): a name that does not
resolve, or a socket path that is not there, is a clear `AuditCopyError` then, not a lookup
per line inside the writer. Lines go out in the format of logging's SysLogHandler:
`<PRI>pilothouse-audit: LINE\\0`, facility authpriv, severity info. A unix socket that is
not a datagram one (syslog-ng's unix-stream /dev/log) is spoken to as a stream, as logging's
handler did: the same NUL-terminated lines, connected again after a failure.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
from collections import deque
from typing import Any

from store.db import StoreError

log = logging.getLogger("pilothouse.store")

MAX_QUEUE = 10_000
SEND_TIMEOUT = 2.0  # seconds one datagram may wait for room in the receiver's queue
_PRI = (10 << 3) | 6  # LOG_AUTHPRIV, LOG_INFO
IDENT = "pilothouse-audit: "


class AuditCopyError(StoreError):
    """An `[audit]` copy cannot be set up (its address does not resolve, say)."""


def _resolve(address: str) -> tuple[int, int, Any]:
    """(family, type, sockaddr) for `udp://HOST:PORT` or a unix socket path."""
    if not address.startswith("udp://"):
        return socket.AF_UNIX, socket.SOCK_DGRAM, address
    host, _, port = address[len("udp://"):].rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)
    except (OSError, ValueError) as exc:
        raise AuditCopyError(f"the [audit] syslog address {address} does not resolve: {exc}; "
                             "fix the name (or use an IP address) in config.toml") from None
    family, type_, _, _, sockaddr = infos[0]
    return family, type_, sockaddr


class SyslogCopy:
    """Call it with a witness line; it is sent soon after, or dropped and counted."""

    def __init__(self, address: str, *, send_timeout: float = SEND_TIMEOUT) -> None:
        self.address = address
        self._family, self._type, self._target = _resolve(address)
        self._send_timeout = send_timeout
        self._sock: socket.socket | None = None
        try:
            self._connect()
        except OSError as exc:
            raise AuditCopyError(f"the [audit] syslog socket {address} cannot be reached: "
                                 f"{exc.strerror or exc}; is the syslog daemon running?") from None
        self._q: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._failing = False
        self.sent = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="audit-syslog", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        """Queue one line (the writer's thread: never blocks, never raises)."""
        if self._closing or len(self._q) >= MAX_QUEUE:
            self._drop(1, "its queue is full: the receiver is not keeping up")
            return
        self._q.append(f"<{_PRI}>{IDENT}{line}\0".encode())
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most `timeout`), then stop."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("audit copy to syslog %s: %d lines not sent at exit", self.address,
                        len(self._q))
        if self.dropped:  # said at the end too: lines dropped at the stop were never said
            log.warning("audit copy to syslog %s: %d witness lines dropped in all, %d sent",
                        self.address, self.dropped, self.sent)

    def _connect(self) -> None:
        try:
            self._sock = self._open(self._type)
        except OSError as exc:  # a stream socket refuses a datagram one: EPROTOTYPE
            if self._family != socket.AF_UNIX or exc.errno != errno.EPROTOTYPE:
                raise
            self._type = socket.SOCK_STREAM if self._type == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            self._sock = self._open(self._type)

    def _open(self, type_: int) -> socket.socket:
        sock = socket.socket(self._family, type_)
        try:
            sock.settimeout(self._send_timeout)
            if self._family == socket.AF_UNIX:
                sock.connect(self._target)
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            while self._q:
                if self._closing and self._failing:  # at exit, no wait per line on a dead end
                    left = len(self._q)
                    self._q.clear()
                    self._drop(left, "the daemon is stopping")
                    break
                self._send(self._q.popleft())
            if self._closing:
                if self._sock is not None:
                    self._sock.close()
                return

    def _send(self, data: bytes) -> None:
        try:
            if self._sock is None:  # the receiver went away: try it again, once a line
                self._connect()
            assert self._sock is not None
            if self._type == socket.SOCK_STREAM:
                self._sock.sendall(data)
            elif self._family == socket.AF_UNIX:
                self._sock.send(data)
            else:
                self._sock.sendto(data, self._target)
        except TimeoutError:  # the receiver stopped reading: its queue is full
            if self._type == socket.SOCK_STREAM:  # part of a line may be out: a new stream
                self._disconnect()
            self._drop(1, f"the receiver took nothing for {self._send_timeout}s")
            return
        except OSError as exc:  # gone (restarted, say): connect again for the next line
            if self._family == socket.AF_UNIX:
                self._disconnect()
            self._drop(1, exc.strerror or str(exc))
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            log.warning("audit copy to syslog %s: sending again (%d lines dropped so far)",
                        self.address, self.dropped)

    def _drop(self, n: int, why: str) -> None:
        with self._lock:  # the writer's thread (a full queue) and the sender both count
            self.dropped += n
        if not self._failing:  # one line per failing stretch, not one per witness line
            self._failing = True
            log.warning("audit copy to syslog %s: a witness line was not sent (%s); lines "
                        "are dropped and counted until it works again (the store goes on)",
                        self.address, why)
