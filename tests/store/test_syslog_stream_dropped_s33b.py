"""store/syslog_copy.py (review s33, helper 129): a unix-stream /dev/log (syslog-ng) is
spoken to as a stream, as logging's SysLogHandler did; lines dropped at the stop are said."""

from __future__ import annotations

import logging
import logging.handlers
import socket
import time
from pathlib import Path

import pytest

from store.syslog_copy import SyslogCopy


def test_a_stream_dev_log_gets_the_lines_and_a_new_stream_after_a_failure(
        tmp_path: Path) -> None:
    """/dev/log as a SOCK_STREAM socket: the copy starts (before, AuditCopyError: protocol
    wrong type), lines arrive NUL-terminated, and a receiver that restarts gets later ones."""
    path = str(tmp_path / "log")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(2)
    srv.settimeout(5)
    copy = SyslogCopy(path, send_timeout=0.5)
    try:
        conn, _ = srv.accept()
        conn.settimeout(5)
        copy('{"seq": 1}')
        got = b""
        while not got.endswith(b"\0"):
            got += conn.recv(4096)
        assert got.endswith(b'pilothouse-audit: {"seq": 1}\0'), got
        conn.close()  # the receiver restarts
        deadline = time.monotonic() + 5
        again = b""
        srv.setblocking(False)
        while b'{"seq": 9}' not in again and time.monotonic() < deadline:
            copy('{"seq": 9}')
            time.sleep(0.1)
            try:
                conn, _ = srv.accept()
            except BlockingIOError:
                continue
            conn.settimeout(2)
            again += conn.recv(4096)
        assert b'pilothouse-audit: {"seq": 9}\0' in again, again
    finally:
        copy.close(timeout=2)
        srv.close()


def test_lines_dropped_at_stop_are_said(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver that stopped reading: at stop, the lines still queued are dropped and
    counted, but the daemon log never says how many witness lines did not leave."""
    path = str(tmp_path / "log")
    rcv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # never reads
    rcv.bind(path)
    try:
        copy = SyslogCopy(path, send_timeout=0.2)
        with caplog.at_level(logging.WARNING, logger="pilothouse.store"):
            for i in range(200):
                copy(f'{{"seq": {i}}}')
            copy.close(timeout=5)
        assert copy.dropped > 0
        said = " ".join(r.getMessage() for r in caplog.records)
        assert str(copy.dropped) in said, (copy.dropped, said)
    finally:
        rcv.close()
