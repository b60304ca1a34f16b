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

import sqlite3

from store.db import FTS_EVENTS_MARK, FTS_OUTPUT_MARK

DEFER_S = 0.25  # an unindexed row waits at most this long while bulk batches keep coming
SEARCH_BOUND_S = 1.0  # what the docs promise: DEFER_S plus the catch-up, with room
CHUNK = 2000  # rows per index transaction: a security commit waits behind one chunk at most

_TABLES = (("events", FTS_EVENTS_MARK, "text, kind"), ("output", FTS_OUTPUT_MARK, "line"))


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


def index_step(conn: sqlite3.Connection, done: tuple[int, int], chunk: int = CHUNK
               ) -> tuple[int, int]:
    """Index up to `chunk` more rows of each table after its mark, inside the caller's
    transaction; returns the new marks."""
    out = []
    for (table, mark, cols), upto in zip(_TABLES, done, strict=True):
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
