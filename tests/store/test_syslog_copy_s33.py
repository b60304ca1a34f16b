"""The `[audit] syslog` copy is queued off the commit path (review s33, helper 121 finding A).
Before, each witness line was sent in the store writer's thread before the commit's answer: a
receiver that stopped reading (Linux queues 10 datagrams on a unix socket) blocked the writer,
and every security commit after it timed out. A `udp://NAME:PORT` was resolved again for every
line, in that thread, and send errors vanished in logging's handler (never counted)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from store.writer import StoreWriter

Make = Callable[..., StoreWriter]


def _wait_for(cond: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_receiver_that_stopped_reading_costs_a_count_not_the_store(
        make_writer: Make, witness: Path, tmp_path: Path) -> None:
    from store.syslog_copy import SyslogCopy

    path = tmp_path / "dev-log"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))  # bound, never read: its queue fills after about 10 datagrams
    copy = SyslogCopy(str(path), send_timeout=0.2)
    w = make_writer(witness=witness, witness_mirror=copy)
    t0 = time.monotonic()
    for i in range(40):  # a security batch each, so a witness line each
        w.commit("approval.decided", text=f"d{i}", timeout=5)
    assert time.monotonic() - t0 < 20  # did not hang (it stalled for good before)
    w.close()
    _wait_for(lambda: copy.dropped > 0)
    assert copy.sent + copy.dropped <= len(witness.read_text().splitlines())
    copy.close(timeout=10)
    rx.close()


def test_a_udp_name_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from store.syslog_copy import SyslogCopy

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    lookups: list[Any] = []
    real = socket.getaddrinfo

    def counted(*a: Any, **kw: Any) -> Any:
        lookups.append(a[0])
        return real(*a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", counted)
    copy = SyslogCopy(f"udp://localhost:{rx.getsockname()[1]}")
    for i in range(5):
        copy(f'{{"seq":{i}}}')
    got = [rx.recv(4096) for _ in range(5)]
    copy.close()
    rx.close()
    assert lookups == ["localhost"], lookups
    assert got[0] == b'<86>pilothouse-audit: {"seq":0}\x00'
    assert copy.sent == 5 and copy.dropped == 0


def test_an_address_that_cannot_be_used_is_said_at_start(tmp_path: Path) -> None:
    from store.db import StoreError
    from store.syslog_copy import AuditCopyError, SyslogCopy

    with pytest.raises(AuditCopyError, match="does not resolve"):
        SyslogCopy("udp://no-such-host.invalid:514")
    with pytest.raises(AuditCopyError, match="cannot be reached"):
        SyslogCopy(str(tmp_path / "no-such-socket"))
    assert issubclass(AuditCopyError, StoreError)


def test_a_receiver_that_restarts_gets_lines_again(tmp_path: Path) -> None:
    from store.syslog_copy import SyslogCopy

    path = tmp_path / "dev-log"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)
    copy = SyslogCopy(str(path))
    copy("one")
    assert rx.recv(4096).endswith(b"one\x00")
    rx.close()
    path.unlink()  # the syslog daemon is restarting
    copy("lost")
    _wait_for(lambda: copy.dropped == 1)  # counted (before: "--- Logging error ---", no count)
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    rx.settimeout(5)
    copy("two")
    assert rx.recv(4096).endswith(b"two\x00")
    copy.close()
    rx.close()
