"""Full-text indexing as a second pass over committed rows, in batches, in the writer thread.

Tokenising a row costs the writer more than storing it, so a batch commits without it and the
index follows: whenever the writer has nothing queued, and at the latest once the oldest
unindexed row has waited DEFER_S (then before any further bulk batch). Each step indexes up to
CHUNK rows of events and of output in one transaction that also moves the marks in `meta`;
each index reads its content through a view of the rows up to its mark (store/db.py, v5), so
the index and what it claims to cover agree at every commit.

The bound (docs/threat-model.md, "Search"): a committed row is found by search within
SEARCH_BOUND_S as long as the writer is not saturated (its queue short of the limit where bulk
rows are dropped and counted). `StoreWriter.flush()` waits for the index too, so a reader that
flushed first sees everything.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Collection

from store.db import FTS_EVENTS_MARK, FTS_OUTPUT_MARK, StoreError

log = logging.getLogger("pilothouse.store")

DEFER_S = 0.25  # an unindexed row waits at most this long while bulk batches keep coming
SEARCH_BOUND_S = 1.0  # what the docs promise: DEFER_S plus the catch-up, with room
CHUNK = 2000  # rows per index transaction: a security commit waits behind one chunk at most

# (table, its mark in meta, the columns indexed); the index of `t` is `t_fts`.
TABLES = (("events", FTS_EVENTS_MARK, "text, kind"), ("output", FTS_OUTPUT_MARK, "line"))


def marks(conn: sqlite3.Connection) -> tuple[int, int]:
    """(events indexed up to, output indexed up to)."""
    got = dict(conn.execute("SELECT key, CAST(value AS INTEGER) FROM meta WHERE key IN (?, ?)",
                            (FTS_EVENTS_MARK, FTS_OUTPUT_MARK)).fetchall())
    return got.get(FTS_EVENTS_MARK, 0), got.get(FTS_OUTPUT_MARK, 0)


def ends(conn: sqlite3.Connection) -> tuple[int, int]:
    """(last event id, last output id) as stored now."""
    ev = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    out = conn.execute("SELECT coalesce(max(id), 0) FROM output").fetchone()[0]
    return ev, out


def needed(ends: tuple[int, int], lines_of: Collection[str] | None) -> tuple[int, int]:
    """How far the index must reach for a read: a read of no run's lines (`history --search`)
    needs the events' index only, not the output's, which an output flood keeps behind."""
    return ends if lines_of is None or lines_of else (ends[0], 0)


def index_step(conn: sqlite3.Connection, done: tuple[int, int], chunk: int = CHUNK
               ) -> tuple[int, int]:
    """Index up to `chunk` more rows of each table after its mark, inside the caller's
    transaction; returns the new marks."""
    out = []
    for (table, mark, cols), upto in zip(TABLES, done, strict=True):
        row = conn.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?",
                           (upto, chunk - 1)).fetchone()
        hi = row[0] if row is not None else conn.execute(
            f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        if hi > upto:
            conn.execute(f"INSERT INTO {table}_fts(rowid, {cols}) SELECT id, {cols} FROM {table} "
                         "WHERE id > ? AND id <= ?", (upto, hi))
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(hi), mark))
            upto = hi
        out.append(upto)
    return out[0], out[1]


def index_off(conn: sqlite3.Connection, table: str, *, thorough: bool = True
              ) -> tuple[int, int] | None:
    """None when the full-text index of `table` holds exactly the rows up to its mark, else
    (rows it holds, rows up to the mark). FTS5 keeps one size row per indexed row; the quick
    look (a writer's start) compares the counts, the thorough one (verify) each row."""
    mark = dict(zip((t for t, _, _ in TABLES), marks(conn), strict=True))[table]
    covered = conn.execute(f"SELECT count(*) FROM {table} WHERE id <= ?", (mark,)).fetchone()[0]
    held = conn.execute(f"SELECT count(*) FROM {table}_fts_docsize").fetchone()[0]
    matched = conn.execute(f"SELECT count(*) FROM {table}_fts_docsize d JOIN {table} t ON "
                           "t.id = d.id WHERE d.id <= ?", (mark,)).fetchone()[0] if thorough else held
    return None if held == matched == covered else (held, covered)


def repair(conn: sqlite3.Connection) -> list[str]:
    """Rebuild each full-text index that does not hold exactly the rows up to its mark, with
    the mark at the table's last row; returns the tables rebuilt."""
    done = []
    for (table, mark, _cols), upto in zip(TABLES, marks(conn), strict=True):
        last = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        off = index_off(conn, table, thorough=False)
        if upto <= last and off is None:
            continue
        conn.execute("BEGIN IMMEDIATE")
        # Past the last row (the newest rows deleted), the mark comes back to it; an index
        # that does not hold the rows it claims is rebuilt, and that is recorded.
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(last), mark))
        if off is not None:
            conn.execute(f"INSERT INTO {table}_fts({table}_fts) VALUES ('rebuild')")
        conn.execute("COMMIT")
        if off is not None:
            log.warning("store: the search index of %s did not match its rows; rebuilt", table)
            done.append(table)
    return done


Future = concurrent.futures.Future


class Indexer:
    """The writer's side of the second pass: what is indexed, since when something is not,
    and who waits for it. Used only from the writer thread, except want() (any thread)."""

    def __init__(self) -> None:
        self.done = (0, 0)  # rows indexed up to (events, output)
        self.behind_since: float | None = None  # when the oldest unindexed commit landed
        self._waiters: deque[tuple[tuple[int, int], Future[None]]] = deque()
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.repaired: list[str] = []

    def open(self, conn: sqlite3.Connection) -> None:
        """Read the marks; rows a previous writer committed but did not index: catch up soon.
        An index that does not hold exactly the rows up to its mark is rebuilt first (a mark
        moved past the last row keeps every new row out of search; `repaired` says which)."""
        self.repaired = repair(conn)
        self.done = marks(conn)
        if any(d < e for d, e in zip(self.done, ends(conn), strict=True)):
            self.behind_since = time.monotonic() - DEFER_S

    def committed(self) -> None:
        """A batch with rows in it was committed."""
        if self.behind_since is None:
            self.behind_since = time.monotonic()

    def want(self, upto: tuple[int, int]) -> Future[None]:
        """A future resolved once the index reaches `upto` (a flush)."""
        fut: Future[None] = Future()
        with self._lock:
            self._waiters.append((upto, fut))
        return fut

    def due(self, urgent: bool, idle: bool) -> bool:
        """Index now? Never ahead of waiting security events; at once for a flush or when
        the writer is idle; else once the oldest unindexed row has waited DEFER_S."""
        since = self.behind_since
        if urgent or (since is None and not self._waiters):
            return False
        if self._waiters:
            return True
        assert since is not None
        now = time.monotonic()
        return now >= since + DEFER_S or (idle and now >= since)

    def wake_in(self, idle_at: float) -> float | None:
        """Seconds until due() may turn true by itself; None when nothing is behind."""
        since = self.behind_since
        if since is None:
            return None
        return max(0.0, min(since + DEFER_S, max(since, idle_at)) - time.monotonic())

    def step(self, conn: sqlite3.Connection) -> bool:
        """One chunk in its own transaction (when behind), then tell the waiters that are
        covered. False when the chunk failed (it is retried a second later)."""
        ok = True
        if self.behind_since is None and self._wanted_past_done():
            # A row another process wrote (an offline editor) is past the mark but was no
            # commit of ours: a flush that waits for it must not wait forever (CI s24).
            self.behind_since = time.monotonic()
        if self.behind_since is not None:
            try:
                conn.execute("BEGIN IMMEDIATE")
                done = index_step(conn, self.done)
                stored = ends(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self.last_error = f"full-text indexing failed: {exc}"
                log.error("store: %s", self.last_error)
                self.behind_since = time.monotonic() + 1.0  # retry in a second, not hot
                self.fail(StoreError(self.last_error))
                return False
            self.done = done
            if all(d >= e for d, e in zip(done, stored, strict=True)):  # pruned tables shrink
                self.behind_since = None
        with self._lock:
            waiting = list(self._waiters)
            self._waiters.clear()
            for upto, fut in waiting:
                if fut.cancelled():  # its waiter timed out (a bounded flush): nobody to tell
                    continue
                if all(d >= e for d, e in zip(self.done, upto, strict=True)):
                    if fut.set_running_or_notify_cancel():  # not cancelled meanwhile
                        fut.set_result(None)
                else:
                    self._waiters.append((upto, fut))
        return ok

    def _wanted_past_done(self) -> bool:
        with self._lock:
            return any(any(d < u for d, u in zip(self.done, upto, strict=True))
                       for upto, _ in self._waiters)

    def fail(self, err: Exception) -> None:
        with self._lock:
            while self._waiters:
                if (fut := self._waiters.popleft()[1]).set_running_or_notify_cancel():
                    fut.set_exception(err)
