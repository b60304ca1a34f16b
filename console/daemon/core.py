"""Wiring of the daemon's parts: the store writer, the run manager, sandboxes and their sockets.

Kept apart from daemon.py so that the daemon module is only about the process and its socket,
and this one only about which part talks to which.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from console.config.load import Profile
from console.daemon.runs import RunManager

if TYPE_CHECKING:
    from console.daemon.server import Daemon

log = logging.getLogger("pilothouse.services")


class Services:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.paths = daemon.paths
        self.bus = daemon.bus
        self.writer: Any = None
        self.runs: RunManager | None = None
        self._backends: dict[str, Any] = {}
        self.run_sockets: Any = None
        self.key: bytes = b""
        self.gpu: Any = None
        self.trace: Any = None
        self.otlp: Any = None  # store.otlp.OtlpExporter when [audit] otlp is set
        self._readers = threading.local()

    @property
    def witness_file(self) -> Any:
        """Every committed chain head, beside the key (store/witness.py)."""
        return self.paths.key_file.with_name("audit.witness")

    async def start(self) -> None:
        from store.audit import load_or_create_key
        from store.db import migrate, open_db
        from store.writer import StoreWriter

        def prepare_store() -> bytes:
            db = open_db(self.paths.db_file)
            migrate(db)
            db.conn.close()
            return load_or_create_key(self.paths.key_file)

        key = await asyncio.to_thread(prepare_store)
        self.key = key
        self.writer = StoreWriter(self.paths.db_file, key, witness=self.witness_file,
                                  **self._audit_copies())
        self.writer.start()
        from console.daemon.channels import RunSockets

        self.run_sockets = RunSockets(self)
        self.runs = RunManager(
            self.paths,
            lambda: self.daemon.cfg,
            self.writer,
            self.bus,
            choose_backend=self.choose_backend,
            on_prepare=self.run_sockets.prepare,
            on_end=self.run_sockets.teardown,
        )
        from console.gpu import GpuService

        self.gpu = GpuService(self.writer, self.bus, lambda: self.daemon.cfg, self.runs)
        await self.gpu.start()
        from console.gate.trace import TraceRecorder  # per-request records for `trace export`

        self.trace = TraceRecorder(self.writer, self.bus, key=key, profile_of=self._profile_of)
        lost = await self.runs.reconcile()
        await self._reconcile_backends()
        await self.record_security(
            "daemon.started", actor="daemon",
            text=f"daemon started (pid {__import__('os').getpid()}); {len(lost)} lost run(s) reconciled",
            data={"lost": lost},
        )

    async def _reconcile_backends(self) -> None:
        """Docker containers of runs this daemon does not know are orphans: remove them."""
        from console.sandbox.choose import get_backend
        from console.sandbox.view import reconcile_views

        removed: list[str] = reconcile_views(self.daemon.paths.runs_dir)
        try:
            for name in ("bwrap", "docker"):
                backend = get_backend(name)
                if backend.usable()[0]:
                    removed += await backend.reconcile(set())
        except Exception as exc:
            log.warning("could not reconcile sandboxes: %s", exc)
            return
        if removed:
            self.writer.record("sandbox.orphans_removed", actor="daemon",
                               text=f"removed {len(removed)} orphan sandbox(es)", data={"removed": removed})

    def _profile_of(self, run_id: str) -> str | None:
        run = self.runs.runs.get(run_id) if self.runs is not None else None
        return run.profile if run is not None else None

    def _audit_copies(self) -> dict[str, Any]:
        """Where copies of the history go off this machine ([audit] syslog, otlp)."""
        from store.otlp import OtlpExporter
        from store.witness import syslog_mirror

        cfg = self.daemon.cfg
        mirrors = [syslog_mirror(cfg.audit_syslog)] if cfg.audit_syslog else []
        export = None
        if cfg.audit_otlp:
            self.otlp = OtlpExporter(cfg.audit_otlp)
            mirrors.append(self.otlp.witness)
            export = self.otlp.event

        def mirror(line: str) -> None:
            for send in mirrors:  # one unreachable collector does not starve the other
                try:
                    send(line)
                except OSError as exc:
                    log.warning("audit witness copy not sent: %s", exc)

        return {"witness_mirror": mirror if mirrors else None, "export_event": export}

    def choose_backend(self, requested: str, profile: Profile) -> Any:
        from console.sandbox.choose import choose_backend

        return choose_backend(requested, profile.image)

    async def record_security(self, kind: str, **kw: Any) -> dict[str, Any]:
        """Commit a security event durably before acting on it. Raises on failure (fail closed)."""
        return await self.writer.acommit(kind, **kw)

    async def stop(self) -> None:
        if self.runs is not None:
            await self.runs.stop_all(actor="daemon", grace=2.0)
        if self.run_sockets is not None:
            await self.run_sockets.close()
        if self.gpu is not None:
            await self.gpu.stop()
        if self.trace is not None:
            self.trace.flush()  # trace rows still waiting for their batch
        if self.writer is not None:
            from store import StoreError

            self.writer.record("daemon.stopped", actor="daemon", text="daemon stopped")
            try:
                await asyncio.to_thread(self.writer.close)
            except StoreError as exc:
                log.error("the store did not flush before exit: %s", exc)
        if self.otlp is not None:
            await asyncio.to_thread(self.otlp.close)

    # --- reading and maintenance ---------------------------------------------------------------

    def _reader(self) -> Any:
        # One read-only connection per worker thread: readers never share the writer's.
        db = getattr(self._readers, "db", None)
        if db is None:
            from store.db import open_db

            db = open_db(self.paths.db_file, readonly=True)
            self._readers.db = db
        return db

    async def read(self, fn: Any) -> Any:
        """Run fn(db) on a read-only connection in a worker thread."""
        return await asyncio.to_thread(lambda: fn(self._reader()))

    async def prune(self, cutoff_ts: float) -> dict[str, Any]:
        result = await self.writer.aprune(cutoff_ts)
        return result.as_dict()

    async def flush(self) -> None:
        """Wait until everything queued before now is committed and indexed (so reads and
        searches see it)."""
        await self.writer.aflush(timeout=None)
