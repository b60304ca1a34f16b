"""The daemon's side of the store: the one batched writer, read-only connections in worker
threads, and security events committed before they take effect.

Opening the database (migrations, the audit key) and closing it (the last flush) run in threads:
the loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from console.config.load import Config
from console.paths import Paths
from console.protocol import Failure
from store import StoreError
from store.audit import load_or_create_key
from store.db import migrate, open_db
from store.otlp import OtlpExporter
from store.syslog_copy import SyslogCopy
from store.writer import StoreWriter

log = logging.getLogger("pilothouse.storage")
T = TypeVar("T")
FLUSH_S = 30.0  # a read that must see everything queued waits at most this for the writer


class Storage:
    def __init__(self, paths: Paths, writer: StoreWriter, key: bytes,
                 otlp: OtlpExporter | None = None, syslog: SyslogCopy | None = None) -> None:
        self.paths = paths
        self.writer = writer
        self.key = key
        self.otlp = otlp  # where [audit] otlp sends copies, when set
        self.syslog = syslog  # where [audit] syslog sends witness lines, when set
        self._readers = threading.local()

    @classmethod
    async def open(cls, paths: Paths, cfg: Config) -> Storage:
        def prepare() -> bytes:
            db = open_db(paths.db_file)
            migrate(db)
            db.conn.close()
            return load_or_create_key(paths.key_file)

        key = await asyncio.to_thread(prepare)
        # Resolved once, here (a name that does not resolve stops the start, in words), and
        # sent by its own thread: the writer only queues (store/syslog_copy.py).
        syslog = (await asyncio.to_thread(SyslogCopy, cfg.audit_syslog)
                  if cfg.audit_syslog else None)
        otlp = OtlpExporter(cfg.audit_otlp) if cfg.audit_otlp else None
        mirror, export = _audit_copies(syslog, otlp)
        writer = StoreWriter(paths.db_file, key, witness=witness_file(paths),
                             witness_mirror=mirror, export_event=export)
        try:
            writer.start()
        except BaseException:
            for copy in (syslog, otlp):
                if copy is not None:
                    copy.close(timeout=1.0)
            raise
        return cls(paths, writer, key, otlp, syslog)

    @property
    def witness_file(self) -> Path:
        return witness_file(self.paths)

    # --- writing -------------------------------------------------------------------------------

    def record(self, kind: str, **kw: Any) -> None:
        """Queue an event for the next batch (not a security event: nothing waits on it)."""
        self.writer.record(kind, **kw)

    async def record_security(self, kind: str, **kw: Any) -> dict[str, Any]:
        """Commit a security event durably before acting on it. Raises on failure (fail closed)."""
        return await self.writer.acommit(kind, **kw)

    async def prune(self, cutoff_ts: float) -> dict[str, Any]:
        result = await self.writer.aprune(cutoff_ts)
        return result.as_dict()

    async def flush(self, *, searchable: bool = True,
                    lines_of: Collection[str] | None = None) -> None:
        """Wait until everything queued before now is committed, and indexed unless a read
        searches nothing (`searchable` False: under a flood of output the index's second pass
        lags by minutes, and every `run --wait` failed here after FLUSH_S, review s45);
        `lines_of`: the runs whose output the read needs (None: every run's; store/write_queue.py).
        StoreError after FLUSH_S (a stuck store is said, not waited on)."""
        try:
            await self.writer.aflush(timeout=FLUSH_S, searchable=searchable, lines_of=lines_of)
        except StoreError as exc:
            log.error("a read that must see the latest rows was refused: %s", exc)
            raise Failure("store-failed", f"the history cannot be read up to date: {exc}",
                          f"the daemon log ({self.paths.daemon_log}) says why; "
                          "`pilothouse doctor` checks the store") from None

    async def close(self) -> None:
        self.writer.record("daemon.stopped", actor="daemon", text="daemon stopped")
        try:
            await asyncio.to_thread(self.writer.close)
        except StoreError as exc:
            log.error("the store did not flush before exit: %s", exc)
        for copy in (self.syslog, self.otlp):
            if copy is not None:
                await asyncio.to_thread(copy.close)

    # --- reading -------------------------------------------------------------------------------

    def _reader(self) -> Database:
        # One read-only connection per worker thread: readers never share the writer's.
        db: Database | None = getattr(self._readers, "db", None)
        if db is None:
            try:
                db = open_db(self.paths.db_file, readonly=True)
            except (sqlite3.Error, OSError, StoreError) as exc:
                # Expected when the daemon is out of file descriptors (a flood of connections):
                # the caller is told, the log gets one line, never a traceback.
                log.warning("could not open the store for reading: %s", exc)
                raise Failure("store-failed", f"the store could not be opened for reading: "
                              f"{exc}", "the daemon may be out of file descriptors; try again, "
                              "and see `pilothouse doctor`") from None
            self._readers.db = db
        return db

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run fn(db) on a read-only connection in a worker thread."""
        return await asyncio.to_thread(lambda: fn(self._reader()))


def witness_file(paths: Paths) -> Path:
    """Every committed chain head, beside the key (store/witness.py)."""
    return paths.key_file.with_name("audit.witness")


def _audit_copies(syslog: SyslogCopy | None, otlp: OtlpExporter | None) -> tuple[
        Callable[[str], None] | None, Callable[[dict[str, Any]], None] | None]:
    """Where copies of the history go off this machine ([audit] syslog, otlp): both only
    queue in the writer's thread."""
    mirrors: list[Callable[[str], None]] = [syslog] if syslog is not None else []
    if otlp is not None:
        mirrors.append(otlp.witness)

    def mirror(line: str) -> None:
        for send in mirrors:  # one unreachable collector does not starve the other
            try:
                send(line)
            except OSError as exc:
                log.warning("audit witness copy not sent: %s", exc)

    return (mirror if mirrors else None), (otlp.event if otlp is not None else None)
