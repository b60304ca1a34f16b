"""The gate's per-request trace records (console/gate/trace.py builds them) in the history
database: written in batches through the store writer, read back for `trace` and export.

Sealed like a run's output (store/output_seal.py), because the workload benchmark replays
them: the run's end event (`run.ended`, or `run.lost` at the next start) gains `trace`, the
count and digest of the run's rows as stored then, made in the writer in the event's
transaction (the daemon hands the run's built rows to the writer before its end, and its
recorder stores none of them after that: `drain` in console/gate/trace.py). `audit verify`
digests each sealed run's rows again: a row changed, removed or added after the end is
found. Runs ended by versions before the seal have none and are not checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable
from typing import Any

COLUMNS = ("request_id", "run_id", "profile", "lane", "start", "first_byte", "end", "think_s",
           "method", "endpoint", "status", "model", "stream", "max_tokens", "prompt_tokens",
           "completion_tokens", "cached_tokens", "blocks", "content")
INSERT = (f"INSERT OR IGNORE INTO trace_requests ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")


def insert_trace_rows(conn: Any, rows: Iterable[tuple[Any, ...]]) -> None:
    """Rows in COLUMNS order; a request id already stored is left as it was."""
    conn.executemany(INSERT, rows)


def trace_seal(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """The run's stored trace rows as its end seals them: how many, and their digest. A row
    the store would not have written (an edited file) is said, never raised: it must not cost
    the run its recorded end."""
    try:
        rows, digest = _digest(conn, run_id)
    except (TypeError, ValueError, sqlite3.Error) as exc:
        return {"unreadable": str(exc)[:200]}
    return {"rows": rows, "sha256": digest}


def _digest(conn: sqlite3.Connection, run_id: str) -> tuple[int, str]:
    """Every column of every row of the run, in id order, each row one length-prefixed JSON
    array (so no row can pass for two). Raises TypeError for a value SQLite holds that JSON
    cannot (a blob written into the file)."""
    h, n = hashlib.sha256(), 0
    for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM trace_requests WHERE run_id = ? "
                            "ORDER BY id", (run_id,)):
        # Text as it is (not escaped to ASCII): stored content can be large, and this runs in
        # the writer's transaction at the run's end.
        framed = json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass")
        h.update(b"%d:" % len(framed) + framed + b"\n")
        n += 1
    return n, h.hexdigest()


def trace_problem(conn: sqlite3.Connection) -> str | None:
    """The first sealed run whose stored trace rows are not what its end sealed, or None."""
    for run_id, data_text in conn.execute(
            "SELECT run_id, data FROM events WHERE kind IN ('run.ended', 'run.lost') AND "
            "data LIKE '%\"trace\":%' ORDER BY id"):
        try:
            sealed = json.loads(data_text).get("trace")
        except (ValueError, AttributeError, RecursionError):
            continue  # chained: verify names an edited end before this is reached
        if not isinstance(sealed, dict):
            continue
        if "unreadable" in sealed:
            return (f"run {run_id}: its workload trace was not what the store writes when it "
                    f"ended ({sealed['unreadable']})")
        try:
            rows, digest = _digest(conn, run_id)
        except (TypeError, ValueError, sqlite3.Error) as exc:
            return f"run {run_id}: a row of its workload trace is not what the store writes ({exc})"
        if rows != sealed.get("rows"):
            return (f"run {run_id}: its workload trace holds {rows} requests, but "
                    f"{sealed.get('rows')} were sealed when it ended: rows were removed or added")
        if digest != sealed.get("sha256"):
            return (f"run {run_id}: its workload trace was changed after it ended (its {rows} "
                    "requests no longer match their seal)")
    return None


def unclaimed_trace(conn: sqlite3.Connection, cutoff: float | None,
                    pruned: set[str] | None = None) -> str | None:
    """The first trace rows no chained event accounts for, or None: the gate records requests
    of a run only, so rows without a run, or of a run no event names, were written into the
    file (no seal covers them). As for output (unclaimed_output): rows of a run whose events a
    prune removed are older than its cutoff, or of a run its note names."""
    if n := conn.execute("SELECT count(*) FROM trace_requests WHERE run_id IS NULL").fetchone()[0]:
        return f"{n} workload trace rows name no run: they were written into the file"
    for run_id, late in conn.execute(  # one seek per run, not per row
            "SELECT run_id, n FROM (SELECT run_id, count(*) AS n FROM trace_requests WHERE NOT "
            "start < ? AND run_id IS NOT NULL GROUP BY run_id) g WHERE NOT EXISTS (SELECT 1 "
            "FROM events e WHERE e.run_id = g.run_id) ORDER BY run_id",
            (-math.inf if cutoff is None else cutoff,)):
        if run_id not in (pruned or ()):
            return (f"run {run_id}: {late} workload trace rows are stored for it, but no "
                    "recorded event names that run: they were written into the file")
    return None


def load_trace_rows(conn: Any, *, run_id: str | None = None, profile: str | None = None,
                    since: float | None = None) -> list[dict[str, Any]]:
    """Trace rows, oldest first (read-only is enough)."""
    where, args = ["1 = 1"], []
    if run_id:
        where.append("run_id = ?")
        args.append(run_id)
    if profile:
        where.append("profile = ?")
        args.append(profile)
    if since is not None:
        where.append("start >= ?")
        args.append(since)
    cur = conn.execute(f"SELECT * FROM trace_requests WHERE {' AND '.join(where)} "
                       "ORDER BY start, id", args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
