"""The syncer: moves committed history from the page cache to the disk, off the commit path.

The writer commits with synchronous=NORMAL (WAL): COMMIT returns once the transaction is in
the WAL file, which survives any death of the daemon process, and only a power loss or kernel
crash can still take it back. This thread closes that window: after every commit it
fdatasyncs the WAL (and the witness), back to back while commits keep coming, so a power loss
costs at most the commits of the last sync (a few milliseconds), and never silently: the
witness line of each security batch is written before the answer goes out. If a sync fails,
the data may never reach the disk (Linux drops the dirty pages after a failed fsync), so the
writer is told and stops accepting: every later action is refused (fail closed).
docs/threat-model.md ("Durability") has the argument.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("pilothouse.store")


class Syncer:
    """One thread; `dirty()` after each commit, `stop()` syncs one last time and ends it."""

    def __init__(self, wal: Path, on_failure: Callable[[str], None],
                 extra: Callable[[], None] | None = None) -> None:
        self.wal = Path(wal)
        self._on_failure = on_failure
        self._extra = extra  # e.g. the witness's own fdatasync
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="store-syncer", daemon=True)
        self.syncs = 0
        self.failed: str | None = None
        self.last_sync_s = 0.0  # how long the last fdatasync took (doctor, bench)

    def start(self) -> Syncer:
        self._thread.start()
        return self

    def dirty(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self.failed is None:
                self._sync_once()
            if self._stopping:
                return

    def _sync_once(self) -> None:
        t = time.perf_counter()
        try:
            # Opened per sync: the WAL is reset and truncated by checkpoints, never replaced
            # while the writer's connection is open, so a missing file is itself a failure.
            fd = os.open(self.wal, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            if self._extra is not None:
                self._extra()
        except OSError as exc:
            self.failed = (f"the history could not be synced to disk ({self.wal}: "
                           f"{exc.strerror or exc}); nothing more is accepted until the daemon "
                           "restarts on a working disk")
            log.error("store sync failed: %s", self.failed)
            self._on_failure(self.failed)
            return
        self.syncs += 1
        self.last_sync_s = time.perf_counter() - t
