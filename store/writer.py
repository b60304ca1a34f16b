"""The one writer: a thread that owns the only write connection and commits in batches.

Bulk rows (output lines, samples, routine events) are fire and forget and grouped into
transactions of up to `max_batch` rows or `max_delay` seconds; output lines wait per run, apart
(store/write_queue.py). Security events wait for the commit of their batch and fail loudly
(StoreError) when it does not happen, so the daemon can refuse the action (fail closed). The
chain is extended here, in id order. Commits: NORMAL with the syncer behind (store/syncer.py),
search a second pass (store/fts.py); threat-model.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from store import audit, batch, fts, integrity, prune_jobs, values
from store.audit import PruneResult
from store.batch import CALL, EV, OUT, SEAL
from store.db import StoreError, open_db
from store.output_seal import OutputDigests
from store.prune_jobs import PruneJobs
from store.syncer import Syncer
from store.waits import await_ as _await
from store.waits import wait as _wait
from store.witness import Witness
from store.write_queue import WriteQueue

log = logging.getLogger("pilothouse.store")
T = TypeVar("T")

_NEW, _RUNNING, _CLOSING, _CLOSED, _DEAD = "new", "running", "closing", "closed", "dead"
WITNESS_EVERY = 1.0  # seconds between witness lines for batches of bulk events only
_dumps, _ts, _str, _opt = values.dumps, values.ts, values.text, values.opt


class StoreWriter:
    """Owns THE write connection, in one thread. See the module docstring for the contract."""

    def __init__(self, db_path: Path, key: bytes, *, max_batch: int = 1000,
                 max_delay: float = 0.05, max_queue: int = 100_000,
                 prune_chunk: int = 20_000, witness: Path | None = None,
                 witness_mirror: Callable[[str], None] | None = None,
                 export_event: Callable[[dict[str, Any]], None] | None = None,
                 synchronous: str = "NORMAL") -> None:
        if len(key) < 16:
            raise ValueError("the audit key must be at least 16 bytes")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL (with the syncer) or FULL")
        self._synchronous = synchronous
        self._syncer: Syncer | None = None
        self._sync_error: str | None = None
        self._index = fts.Indexer()
        self._digests = OutputDigests()
        self._last_batch_at = self._witnessed_at = 0.0
        self.db_path = Path(db_path)
        self._key = key
        self._max_batch = max(1, int(max_batch))
        self._max_delay = float(max_delay)
        self._max_queue = max(1, int(max_queue))
        self._prunes = PruneJobs(key, prune_chunk)
        self._witness_path = Path(witness) if witness is not None else None
        self._witness: Witness | None = None
        self._witness_mirror = witness_mirror
        self._export_event = export_event  # each committed security event, e.g. OTLP
        self._wake = threading.Event()
        self._lock = threading.Lock()  # state, the queue, counters shared with producers, jobs
        self._q = WriteQueue(self._lock, bound=self._max_queue, max_delay=self._max_delay)
        self._state = _NEW
        self._dropped = self._dropped_reported = 0  # bulk rows refused by a full queue
        self._run_dropped: Counter[str | None] = Counter()  # output lines, per run: its seal says so
        self._lost = self._lost_reported = 0  # bulk rows in batches that failed
        self._pending_since: float | None = None
        self._thread: threading.Thread | None = None
        self._db: sqlite_utils.Database | None = None
        self._last_id, self._last_hash = 0, audit.GENESIS
        self.batches = self.rows = self.failed_batches = 0
        self.last_error: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> StoreWriter:
        """Open (and migrate) the database, find the chain's end, start the thread."""
        with self._lock:
            if self._state != _NEW:
                raise StoreError(f"store writer already {self._state}")
        db = open_db(self.db_path)
        conn = db.conn
        try:
            integrity.refuse_foreign(conn, self.db_path)  # before anything runs on this connection
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._index.open(conn)
            last_id, last_hash, warning = audit.chain_start(conn, self._key)
            if audit.read_head(conn) is None and warning is None:
                conn.execute("BEGIN IMMEDIATE")
                audit.write_head(conn, self._key, last_id, last_hash)
                conn.execute("COMMIT")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot start the store writer on {self.db_path}: {exc}") from exc
            raise
        self._db, self._last_id, self._last_hash = db, last_id, last_hash
        rollback = self._open_witness(last_id, last_hash)
        if self._synchronous == "NORMAL":
            self._syncer = Syncer(self.db_path.with_name(self.db_path.name + "-wal"), self._sync_failed,
                                  self._witness and self._witness.sync).start()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        with self._lock:
            self._state = _RUNNING
        self._thread.start()
        if warning:
            log.warning("audit chain: %s", warning)
            self.record("store.chain_warning", actor="store", text=warning)
        for table in self._index.repaired:  # run `audit verify` before this: it says why
            self.record("store.index_rebuilt", actor="store", text=f"search index of {table} rebuilt")
        if rollback:
            log.error("audit chain: %s", rollback)
            self.record("store.rollback_detected", actor="store", text=rollback)
        return self

    def _open_witness(self, last_id: int, last_hash: str) -> str | None:
        """Open the witness; a reason when the database is behind what it saw committed."""
        if self._witness_path is None:
            return None
        try:
            self._witness = Witness(self._witness_path, self._key, self._witness_mirror)
        except OSError as exc:
            raise StoreError(f"cannot open the audit witness {self._witness_path}: {exc}") from exc
        return self._witness.ahead_of(last_id, last_hash)

    def close(self, timeout: float = 5.0) -> None:
        """Flush everything queued, then close. Raises StoreError if that took too long."""
        with self._lock:
            if self._state == _CLOSED:
                return
            if self._state == _NEW:
                self._state = _CLOSED
                self._fail_queued(StoreError("the store writer was closed before it started"))
                return
            if self._state != _DEAD:  # a dead writer may still be closing its files: wait too
                self._state = _CLOSING
        self._wake.set()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise StoreError(f"the store writer did not finish flushing within {timeout}s")

    @property
    def alive(self) -> bool:
        return self._state == _RUNNING

    def stats(self) -> dict[str, Any]:
        """Counters for `pilothouse doctor` and tests: batches, rows, drops, failures."""
        return {"state": self._state, "queued": len(self._q), "batches": self.batches,
                "rows": self.rows, "dropped": self._dropped, "lost": self._lost,
                "failed_batches": self.failed_batches, "last_error": self.last_error,
                "indexed_upto": self._index.done, "syncs": self._syncer and self._syncer.syncs,
                "late_output": self._digests.late}

    # --- producers -----------------------------------------------------------------------------

    def record(self, kind: str, *, run_id: str | None = None, actor: str | None = None,
               text: str = "", data: Any = None, ts: float | None = None) -> None:
        """A bulk event: queued, batched, fire and forget; dropped (counted) on a full queue."""
        try:
            data_json = None if data is None else _dumps(data)
        except (TypeError, ValueError):
            data_json = _dumps({"unserializable": repr(data)[:4000]})
        item = (EV, _ts(ts), _opt(run_id), _str(kind), _opt(actor), _str(text), data_json, None)
        n = self._q.add_event(item) if self._state in (_NEW, _RUNNING) else 0
        if not n:
            self._drop()
        elif (n == 1 or n >= self._max_batch) and not self._wake.is_set():
            self._wake.set()  # first row starts the writer's max_delay clock; a full batch goes now

    def record_output(self, run_id: str, stream: str, line: str, ts: float | None = None) -> None:
        """One line of a run's output: bulk, not chained itself (sealed at the run's end).
        Each run's lines wait apart, `max_queue` at most (store/write_queue.py)."""
        run_id = _str(run_id)
        item = (OUT, run_id, _ts(ts), _opt(stream), _str(line))
        with self._lock:
            n = self._q.add_line(run_id, item) if self._state in (_NEW, _RUNNING) else 0
        if not n:
            self._drop(run_id)
        elif (n == 1 or n >= self._max_batch) and not self._wake.is_set():
            self._wake.set()  # as record()'s

    def commit(self, kind: str, *, run_id: str | None = None, actor: str | None = None,
               text: str = "", data: Any = None, ts: float | None = None,
               timeout: float | None = 30.0, seal_output: bool = False) -> dict[str, Any]:
        """A security event: returns the stored row once its batch is durably committed.
        Raises StoreError otherwise (the caller must then refuse the action)."""
        fut = self.submit(kind, run_id=run_id, actor=actor, text=text, data=data, ts=ts,
                          seal_output=seal_output)
        return _wait(fut, timeout, f"committing {kind!r}", withdraw=True, late=self.submit)

    def submit(self, kind: str, *, run_id: str | None = None, actor: str | None = None,
               text: str = "", data: Any = None, ts: float | None = None,
               seal_output: bool = False) -> concurrent.futures.Future[dict[str, Any]]:
        """`commit` without waiting: the future holds the stored row or a StoreError. Raises
        StoreError at once if the writer is closed or dead, TypeError/ValueError for data
        that is not JSON. `seal_output` (a run's end): the data gains `output`, the digest of
        every line stored for run_id (store/output_seal.py, made in the event's transaction),
        and `output_dropped`, its lines a full queue refused; the run takes no more lines."""
        data_json = None if data is None else _dumps(data)  # a bad payload raises here, loudly
        fut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        if seal_output:
            if run_id is None or (data is not None and not isinstance(data, dict)):
                raise ValueError("an output seal needs a run id, and data that is an object")
            if dropped := self._run_dropped.pop(run_id, 0):  # its lines were all offered by now
                data = {**(data or {}), "output_dropped": dropped}
            self._submit((SEAL, _ts(ts), _str(run_id), _str(kind), _opt(actor), _str(text),
                          data, fut))
        else:
            self._submit((EV, _ts(ts), _opt(run_id), _str(kind), _opt(actor), _str(text),
                          data_json, fut))
        return fut

    async def acommit(self, kind: str, *, run_id: str | None = None, actor: str | None = None,
                      text: str = "", data: Any = None, ts: float | None = None,
                      timeout: float | None = 30.0, seal_output: bool = False) -> dict[str, Any]:
        """`commit` for asyncio code: awaits the commit without blocking the loop."""
        fut = self.submit(kind, run_id=run_id, actor=actor, text=text, data=data, ts=ts,
                          seal_output=seal_output)
        return await _await(fut, timeout, f"committing {kind!r}", withdraw=True, late=self.submit)

    def call(self, fn: Callable[[sqlite_utils.Database], T]) -> concurrent.futures.Future[T]:
        """fn(db) in the next transaction, in a savepoint (its exception undoes its work only)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._submit((CALL, fn, fut))
        return fut

    def flush(self, timeout: float | None = 30.0, *, searchable: bool = True,
              lines_of: Collection[str] | None = None) -> None:
        """Block until all queued before is committed (and searchable: the index lags a flood).
        `lines_of`: the runs whose output lines the read needs (None: every run's), so a read
        of one run does not wait for another run's flood, nor a read of none for the output's
        index (fts.needed)."""
        _wait(self._asked(lambda: self._q.lines_in(lines_of)), timeout, "committing lines")
        ends = _wait(self.call(fts.ends), timeout, "flushing the store")
        if searchable:
            _wait(self._asked(lambda: self._index.want(fts.needed(ends, lines_of))), timeout,
                  "indexing for search")

    async def aflush(self, timeout: float | None = 30.0, *, searchable: bool = True,
                     lines_of: Collection[str] | None = None) -> None:
        await _await(self._asked(lambda: self._q.lines_in(lines_of)), timeout,
                     "committing lines")
        ends = await _await(self.call(fts.ends), timeout, "flushing the store")
        if searchable:
            await _await(self._asked(lambda: self._index.want(fts.needed(ends, lines_of))),
                         timeout, "indexing for search")

    def _asked(self, make: Callable[[], concurrent.futures.Future[T]]
               ) -> concurrent.futures.Future[T]:
        """make() under the lock of an open writer (its future: lines in, the index at some
        ends, a prune), then the writer is woken to work on it."""
        with self._lock:
            self._check_open()
            fut = make()
        self._wake.set()
        return fut

    def prune(self, older_than_ts: float, *, timeout: float | None = None) -> PruneResult:
        """Delete events (a prefix) and output older than the cutoff under signed anchors."""
        return _wait(self._asked(lambda: self._prunes.submit(_ts(older_than_ts))), timeout,
                     "pruning")

    async def aprune(self, older_than_ts: float, *, timeout: float | None = None) -> PruneResult:
        return await _await(self._asked(lambda: self._prunes.submit(_ts(older_than_ts))),
                            timeout, "pruning")

    def _submit(self, item: tuple[Any, ...]) -> None:
        """Queue an item somebody waits for; never dropped, never past a closed writer."""
        with self._lock:
            self._check_open()
            self._q.add_waited(item)
        self._wake.set()

    def _check_open(self) -> None:  # in a close's drain, the thread's own note (waits.py) too
        if self._state not in (_NEW, _RUNNING) and not (
                self._state == _CLOSING and threading.current_thread() is self._thread):
            why = f": {self.last_error}" if self._state == _DEAD and self.last_error else ""
            raise StoreError(f"the store writer is {self._state}{why}")

    def _drop(self, run_id: str | None = None) -> None:
        with self._lock:
            self._dropped += 1
            self._run_dropped[run_id] += 1

    # --- the thread ----------------------------------------------------------------------------

    def _dirty(self) -> None:
        """Something was committed: the syncer gets it to the disk (FULL did already)."""
        if self._syncer is not None:
            self._syncer.dirty()

    def _sync_failed(self, why: str) -> None:
        """The syncer could not get committed rows to the disk: stop accepting (fail closed)."""
        self._sync_error = why
        self._wake.set()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a failed sync, or a bug: stop accepting, fail loudly
            if isinstance(exc, _SyncFailed):  # said and logged by the syncer: no traceback
                self.last_error, why = str(exc), f"the store stopped: {exc}"
            else:
                log.exception("store writer died")
                self.last_error = f"{type(exc).__name__}: {exc}"
                why = f"the store writer died: {self.last_error}"
            with self._lock:
                self._state = _DEAD
            self._fail_all(StoreError(why))
        else:
            with self._lock:
                self._state = _CLOSED
            self._fail_all(StoreError("the store writer is closed"))
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            if self._sync_error is not None:
                raise _SyncFailed(self._sync_error)
            n = len(self._q)
            closing = self._state == _CLOSING
            if n:
                now = time.monotonic()
                if self._pending_since is None:
                    self._pending_since = now
                due = now - self._pending_since >= self._max_delay
                starting = self._prunes.starting  # rows queued before a prune go first
                if self._q.pressing or closing or due or n >= self._max_batch or starting:
                    if not self._index_due(n, closing):  # a flush or DEFER_S: index first
                        self._batch()
                        self._pending_since = None
                        continue
            if self._index_due(n, closing):
                assert self._db is not None
                if self._index.step(self._db.conn):
                    self._dirty()
                else:
                    self.last_error = self._index.last_error
                continue
            if self._prunes.busy:
                if closing:
                    self._prunes.fail(StoreError("the store writer closed during a prune"))
                else:
                    self._prune_step()
                continue
            if closing and not n:
                return
            # Idle, it still looks every max_delay: a row whose wake-up raced with another
            # producer's is then never left waiting longer than about twice max_delay.
            timeout = self._max_delay
            index_in = self._index.wake_in(self._last_batch_at + self._max_delay)
            if index_in is not None:  # wake for the idle or the DEFER_S rule
                timeout = min(timeout, index_in)
            if n and self._pending_since is not None:
                timeout = max(0.0, self._pending_since + self._max_delay - time.monotonic())
            self._wake.wait(timeout)

    def _batch(self) -> None:
        """Take up to max_batch items and commit them in one transaction."""
        items = self._notes() + self._q.take(self._max_batch)
        assert self._db is not None
        try:
            done = batch.commit_batch(self._db, self._key, items, self._last_id, self._last_hash,
                                      self._digests)
        except Exception as exc:
            self._failed(exc, items)
            self._q.settle()
            return
        self._last_id, self._last_hash = done.last_id, done.last_hash
        # Every batch holding a security event is witnessed; bulk-only batches at most once
        # a WITNESS_EVERY seconds (and at close), so a flood does not grow the file per batch.
        if done.secured or time.monotonic() - self._witnessed_at >= WITNESS_EVERY:
            if (unwitnessed := self._witness_head()) and done.secured:  # a full disk, say
                self._sync_error = unwitnessed  # refused; the store stops as after a bad sync
                for fut, _ in done.secured:
                    fut.set_exception(StoreError(unwitnessed))
                done.secured = []
        self.batches += 1
        self._last_batch_at = time.monotonic()
        stored = sum(1 for it in items if it[0] != CALL)
        self.rows += stored
        if stored:
            self._index.committed()
        self._dirty()
        done.resolve()
        self._q.settle()
        if self._export_event is not None:
            for _, row in done.secured:
                self._export_event(batch.row_dict(row))

    def _index_due(self, queued: int, closing: bool) -> bool:
        """A stream of bulk rows is not idle even when each batch empties the queue: idle is
        nothing queued for max_delay (or closing)."""
        idle = not queued and (closing or time.monotonic() - self._last_batch_at >= self._max_delay)
        return self._index.due(self._q.pressing, idle)  # a read waiting for lines: not behind it

    def _witness_head(self) -> str | None:  # why the head could not be witnessed, if so
        w = self._witness
        if w is None or (w.last is not None and w.last.id == self._last_id):
            return None
        self._witnessed_at = time.monotonic()
        return w.append_or_why(self._last_id, self._last_hash)

    def _failed(self, exc: Exception, items: list[tuple[Any, ...]]) -> None:
        """A batch did not commit: fail everyone who waits on it, count the bulk rows lost,
        and keep going (the next batch may well succeed)."""
        conn = self._db.conn if self._db else None
        try:
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self.failed_batches += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("store batch of %d rows failed: %s", len(items), self.last_error)
        lost = batch.fail_items(items, StoreError(f"the store could not commit: {self.last_error}"))
        with self._lock:
            self._lost += lost
        if conn is not None:  # adopt rows a call() that ended the transaction did commit
            self._last_id, self._last_hash = batch.chain_end(conn, self._last_id, self._last_hash)

    def _notes(self) -> list[tuple[Any, ...]]:
        """Events about the store itself: rows dropped by a full queue or lost in failed batches."""
        dropped, lost = self._dropped, self._lost
        notes = batch.store_notes(dropped, dropped - self._dropped_reported, lost,
                                  lost - self._lost_reported, self.last_error)
        self._dropped_reported, self._lost_reported = dropped, lost
        return notes

    def _prune_step(self) -> None:
        assert self._db is not None
        finished = self._prunes.step(self._db.conn)
        self._dirty()
        if self._prunes.last_error:
            self.last_error, self._prunes.last_error = self._prunes.last_error, None
        if finished is not None:
            self._finish_prune(*finished)

    def _finish_prune(self, result: PruneResult, fut: concurrent.futures.Future[Any]) -> None:
        """Record the prune in the chain itself, then report it."""
        if not (result.pruned or result.output_pruned):
            fut.set_result(result)
            return
        note: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        kind, text, data = prune_jobs.note(result)
        with self._lock:
            self._q.add_waited((EV, time.time(), None, kind, "store", text, _dumps(data), note),
                               first=True)
        note.add_done_callback(lambda f: fut.set_exception(exc) if (exc := f.exception())
                               else fut.set_result(result))

    def _fail_queued(self, err: StoreError) -> None:  # under the lock
        self._q.fail(err)
        self._prunes.fail(err)

    def _fail_all(self, err: StoreError) -> None:
        with self._lock:
            self._fail_queued(err)
        self._index.fail(err)

    def _shutdown(self) -> None:
        if self._db is None:
            return
        conn = self._db.conn
        self._witness_head()
        if self._syncer is not None:
            self._syncer.stop()  # one last sync, while the WAL is still there
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("PRAGMA optimize")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.warning("store shutdown: %s", exc)
        finally:
            conn.close()
            if self._witness is not None:
                self._witness.close()


class _SyncFailed(Exception):
    """Committed rows could not be synced to the disk; the writer stops (fail closed)."""
