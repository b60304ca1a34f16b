"""The daemon's log under a flood: one kind of failure is a few lines per interval and then a
count, and the file is rotated rather than grown without end."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

import pytest

from console.daemon import log as daemon_log


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("pilothouse.test", logging.ERROR, __file__, 1, msg, args, None)


def test_a_flood_of_one_kind_is_a_few_lines_then_a_count() -> None:
    now = [1000.0]  # the limit's clock, moved by the test alone (a loaded machine's pace aside)
    limit = daemon_log.RateLimit(interval=0.2, burst=3, clock=lambda: now[0])
    passed = [limit.filter(_record("accept failed: %s", i)) for i in range(1000)]
    assert sum(passed) == 3
    other = _record("another kind of failure")
    assert limit.filter(other), "other kinds are not held back"
    now[0] += 0.19
    assert not limit.filter(_record("accept failed: %s", 1000)), "still inside the window"
    now[0] += 0.06
    after = _record("accept failed: %s", 1001)
    assert limit.filter(after) and "998 similar lines held back" in after.getMessage()


def test_daemon_log_file_is_rotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "daemon.log"
    with open(log_file, "a") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        try:
            daemon_log.setup(log_file)
            (handler,) = root.handlers
            assert isinstance(handler, logging.handlers.RotatingFileHandler)
            assert handler.maxBytes == daemon_log.MAX_BYTES
        finally:
            root.handlers[:], _ = saved
            root.setLevel(saved[1])
            handler.close()


def test_an_accept_error_is_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR):
            daemon_log.loop_exception_handler(loop, {
                "message": "socket.accept() out of system resource",
                "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    (rec,) = caplog.records
    assert rec.exc_info is None and "Too many open files" in rec.getMessage()
