"""One batch, one transaction: queued items in, chained rows and resolved futures out.

Kept apart from the writer's queue and thread so the part that touches SQLite and the hash
chain can be read on its own. Runs only in the writer thread.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import sqlite_utils

from store import audit
from store.db import StoreError
from store.output_seal import OutputDigests
from store.runs_table import totals_at_end
from store.trace_requests import trace_seal
from store.values import dumps

# Queue items: (EV, ts, run_id, kind, actor, text, data_json, future|None),
# (OUT, run_id, ts, stream, line), (CALL, fn, future), and (SEAL, ts, run_id, kind, actor, text,
# data_dict|None, future): an event whose data gains the run's output seal (output_seal.py).
EV, OUT, CALL, SEAL = 0, 1, 2, 3
EVENT_COLS = "id, ts, run_id, kind, actor, text, data, prev, hash"
OUTPUT_COLS = "run_id, ts, stream, line"
# A batch goes in as ONE multi-row INSERT per table, not row by row. Row by row, the FTS
# trigger opens a savepoint on the FTS5 table for every row and FTS5 flushes its pending index
# at each savepoint (a segment per row, then merges): about 3x slower. One statement also
# releases the GIL once per batch instead of once per row, so busy producer threads do not
# stall the writer. 1000 rows x 9 columns stays under SQLite's 32,766 parameters.
CHUNK_ROWS = 1000


@functools.lru_cache(maxsize=128)
def insert_sql(table: str, cols: str, nrows: int) -> str:
    """INSERT INTO main.<table> (<cols>) VALUES (?, ...), ... for nrows rows."""
    one = "(" + ", ".join("?" * (cols.count(",") + 1)) + ")"
    return f"INSERT INTO main.{table} ({cols}) VALUES " + ", ".join([one] * nrows)


def insert_rows(conn: sqlite3.Connection, table: str, cols: str,
                rows: list[tuple[Any, ...]]) -> None:
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        stored = conn.execute(insert_sql(table, cols, len(chunk)),
                              list(chain.from_iterable(chunk))).rowcount
        if stored != len(chunk):  # something in the file swallowed rows (a planted trigger)
            raise StoreError(f"{len(chunk) - stored} of {len(chunk)} rows were not stored in "
                             f"{table}: the database does not behave as the store made it")


Future = concurrent.futures.Future


@dataclass
class Committed:
    """A committed batch: where the chain now ends and whom to tell."""

    last_id: int
    last_hash: str
    secured: list[tuple[Future[Any], tuple[Any, ...]]] = field(default_factory=list)
    called: list[tuple[Future[Any], Any]] = field(default_factory=list)

    def resolve(self) -> None:
        for fut, row in self.secured:
            fut.set_result(row_dict(row))
        for fut, outcome in self.called:
            if isinstance(outcome, _Raised):
                fut.set_exception(outcome.exc)
            else:
                fut.set_result(outcome)


def commit_batch(db: sqlite_utils.Database, key: bytes, items: list[tuple[Any, ...]],
                 last_id: int, last_hash: str, digests: OutputDigests) -> Committed:
    """Insert the items under BEGIN IMMEDIATE, extending the chain from (last_id, last_hash)
    and moving the signed head in the same transaction; the output digests move only once it
    committed. Raises (after the caller's rollback) if anything fails; futures are only
    resolved later, by Committed.resolve()."""
    conn = db.conn
    events: list[tuple[Any, ...]] = []
    outputs: list[tuple[Any, ...]] = []
    done = Committed(last_id, last_hash)
    row_hash = audit.row_hasher(key)
    first_id = last_id
    staged = digests.stage(conn)
    conn.execute("BEGIN IMMEDIATE")
    for item in items:
        tag = item[0]
        # A security event whose waiter gave up was cancelled (store/waits.py): withdrawn, it
        # is not stored (its caller said "not recorded"); once running it can no longer be.
        if tag in (EV, SEAL) and item[7] is not None and not item[7].set_running_or_notify_cancel():
            continue
        if tag == SEAL:  # an event like any other, its data holding the run's output seal
            sealed = staged.seal(item[2])
            data = item[6] if sealed is None else {**(item[6] or {}), "output": sealed}
            if kept := totals_at_end(conn, item[2]):  # its row's, as it ends
                data = {**(data or {}), **kept}
            data = {**(data or {}), "trace": trace_seal(conn, item[2])}  # trace_requests.py
            item = (EV, *item[1:6], None if data is None else dumps(data), item[7])
            tag = EV
        if tag == EV:
            _, ts, run_id, kind, actor, text, data, fut = item
            last_id += 1
            h = row_hash(last_hash, last_id, ts, run_id, kind, actor, text, data)
            row = (last_id, ts, run_id, kind, actor, text, data, last_hash, h)
            events.append(row)
            last_hash = h
            if fut is not None:
                done.secured.append((fut, row))
        elif tag == OUT:
            if staged.add(*item[1:]):
                outputs.append(item[1:])
        else:
            fut = item[2]
            if not fut.set_running_or_notify_cancel():
                continue
            _flush_rows(conn, events, outputs)
            done.called.append((fut, _in_savepoint(db, item[1])))
    _flush_rows(conn, events, outputs)
    if last_id != first_id:
        audit.write_head(conn, key, last_id, last_hash)
    conn.execute("COMMIT")
    staged.apply()
    done.last_id, done.last_hash = last_id, last_hash
    return done


class _Raised:
    """fn raised inside its savepoint: the batch goes on, the caller gets the exception."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _in_savepoint(db: sqlite_utils.Database, fn: Callable[[sqlite_utils.Database], Any]) -> Any:
    conn = db.conn
    conn.execute("SAVEPOINT store_call")
    try:
        result = fn(db)
    except Exception as exc:
        if not conn.in_transaction:
            raise
        conn.execute("ROLLBACK TO store_call")
        conn.execute("RELEASE store_call")
        return _Raised(exc)
    if not conn.in_transaction:
        raise StoreError("a call() function ended the writer's transaction")
    conn.execute("RELEASE store_call")
    return result


def _flush_rows(conn: sqlite3.Connection, events: list[tuple[Any, ...]],
                outputs: list[tuple[Any, ...]]) -> None:
    if events:
        insert_rows(conn, "events", EVENT_COLS, events)
        events.clear()
    if outputs:
        insert_rows(conn, "output", OUTPUT_COLS, outputs)
        outputs.clear()


def fail_items(items: list[tuple[Any, ...]], err: Exception) -> int:
    """A batch did not commit: fail everyone waiting on one of its items; returns how many
    bulk rows were lost with it."""
    lost = 0
    for item in items:
        fut = item[-1] if item[0] != OUT else None
        if fut is None:
            lost += 1
        elif fut.running() or (not fut.done() and fut.set_running_or_notify_cancel()):
            fut.set_exception(err)
    return lost


def chain_end(conn: sqlite3.Connection, last_id: int, last_hash: str) -> tuple[int, str]:
    """Where the chain ends after a failed batch: the stored end if it is beyond what the
    writer knew (so new ids never collide with committed rows)."""
    try:
        row = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return last_id, last_hash
    return (row[0], row[1]) if row is not None and row[0] > last_id else (last_id, last_hash)


def row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    """A stored event as the dict commit() returns (data decoded)."""
    id_, ts, run_id, kind, actor, text, data, prev, h = row
    return {"id": id_, "ts": ts, "run_id": run_id, "kind": kind, "actor": actor, "text": text,
            "data": None if data is None else json.loads(data), "prev": prev, "hash": h}


def store_notes(dropped: int, new_dropped: int, lost: int, new_lost: int,
                last_error: str | None) -> list[tuple[Any, ...]]:
    """Queue items for events about the store itself: bulk rows dropped by a full queue or
    lost in failed batches since the last notes (totals beside)."""
    notes: list[tuple[Any, ...]] = []
    if new_dropped:
        notes.append((EV, time.time(), None, "store.dropped", "store",
                      f"{new_dropped} bulk rows dropped: the write queue was full",
                      dumps({"dropped": new_dropped, "total": dropped}), None))
    if new_lost:
        notes.append((EV, time.time(), None, "store.write_failed", "store",
                      f"{new_lost} bulk rows lost in failed batches: {last_error}",
                      dumps({"lost": new_lost, "total": lost, "error": last_error}), None))
    return notes
