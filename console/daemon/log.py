"""The daemon's log: rotated, and rate-limited so a flood of one kind of failure is one line
per interval (with a count of what was held back), never a traceback per attempt."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INTERVAL = 10.0  # seconds: one line per kind of failure per interval
BURST = 5  # lines of one kind let through before the interval's limit applies
MAX_BYTES = 5 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RateLimit(logging.Filter):
    """Passes BURST records per (logger, message template) per INTERVAL; the first record
    after a quiet spell says how many were held back."""

    def __init__(self, interval: float = INTERVAL, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval, self.burst = interval, burst
        self.clock = clock  # a test's own clock: its windows then do not hang on the machine's pace
        self._seen: dict[tuple[str, Any], list[float]] = {}  # key -> [window start, passed, held]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self.clock()
        state = self._seen.get(key)
        if state is None or now - state[0] >= self.interval:
            held = int(state[2]) if state is not None else 0
            self._seen[key] = [now, 1, 0]
            if held:
                record.msg = f"{record.msg} [{held} similar lines held back in {self.interval:g}s]"
            if len(self._seen) > 4096:  # bounded: forget the oldest kinds
                for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:2048]:
                    self._seen.pop(old, None)
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False


def setup(daemon_log: Path) -> None:
    """Log to daemon.log through a rotating handler when stderr is that file (as the client
    starts the daemon); to stderr otherwise (systemd, tests). Either way, rate-limited."""
    handler: logging.Handler
    if _same_file(sys.stderr, daemon_log):
        handler = logging.handlers.RotatingFileHandler(daemon_log, maxBytes=MAX_BYTES,
                                                       backupCount=BACKUPS)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _same_file(stream: Any, path: Path) -> bool:
    try:
        a, b = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio reports a failed accept() (EMFILE, ENFILE, ENOBUFS) with a traceback each
    time it retries; an OSError there is one short line, rate-limited like the rest."""
    exc = context.get("exception")
    if isinstance(exc, OSError):
        logging.getLogger("pilothouse.loop").error(
            "%s: %s", context.get("message", "event loop error"), exc)
        return
    loop.default_exception_handler(context)
