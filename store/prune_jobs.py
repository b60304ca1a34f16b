"""Prunes asked of the writer, run one chunk per transaction between its batches, so security
events are never held up behind a long prune (the steps themselves: audit.prune_steps)."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time
from collections import deque
from collections.abc import Generator
from typing import Any

from store import audit
from store.audit import PruneResult
from store.db import StoreError

Future = concurrent.futures.Future


class PruneJobs:
    """Queued prunes and the one running. Used from the writer thread; submit() under the
    writer's lock from any thread."""

    def __init__(self, key: bytes, chunk: int) -> None:
        self._key = key
        self._chunk = max(1, int(chunk))
        self._queued: deque[tuple[float, Future[PruneResult]]] = deque()
        self._running: tuple[Generator[None, None, PruneResult], Future[PruneResult]] | None = None
        self.last_error: str | None = None

    def submit(self, cutoff: float) -> Future[PruneResult]:
        fut: Future[PruneResult] = Future()
        self._queued.append((cutoff, fut))
        return fut

    @property
    def starting(self) -> bool:
        """A prune waits to start (the rows queued before it are committed first)."""
        return self._running is None and bool(self._queued)

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._queued)

    def step(self, conn: sqlite3.Connection) -> tuple[PruneResult, Future[PruneResult]] | None:
        """Start the next prune or run one chunk of the current one, in its own transaction.
        Returns (result, future) when a prune finished; the caller records it and resolves."""
        if self._running is None:
            cutoff, fut = self._queued.popleft()
            if not fut.set_running_or_notify_cancel():
                return None
            self._running = (audit.prune_steps(conn, self._key, cutoff, chunk=self._chunk,
                                               now=time.time()), fut)
        steps, fut = self._running
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                next(steps)
            except StopIteration as stop:
                conn.execute("COMMIT")
                self._running = None
                return stop.value, fut
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._running = None
            self.last_error = f"{type(exc).__name__}: {exc}"
            fut.set_exception(StoreError(f"prune failed: {self.last_error}"))
        return None

    def fail(self, err: StoreError) -> None:
        """Every queued and running prune ends with err."""
        while self._queued:
            _, fut = self._queued.popleft()
            if fut.set_running_or_notify_cancel():
                fut.set_exception(err)
        if self._running is not None:
            self._running[1].set_exception(err)
            self._running = None


def note(result: PruneResult) -> tuple[str, str, dict[str, Any]]:
    """The chain's own record of a prune: kind, text, data."""
    return ("store.pruned", f"pruned {result.pruned} events and {result.output_pruned} output "
            f"lines up to row {result.upto_id}", result.as_dict())
