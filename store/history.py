"""Read-side queries on a reader connection: events, output, runs, export.

Readers never write; they open their own connection (open_db(path, readonly=True)) so a long
search or export never holds up the writer. User text given to search is quoted before it
reaches FTS5, so nothing a person types can raise a syntax error.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlite_utils

from store import values

EVENT_COLUMNS = ("id", "ts", "run_id", "kind", "actor", "text", "data", "prev", "hash")
OUTPUT_COLUMNS = ("id", "run_id", "ts", "stream", "line")
RUN_JSON_COLUMNS = ("command", "pids", "info")
_EV_SELECT = ", ".join(f"e.{c}" for c in EVENT_COLUMNS)
_OUT_SELECT = ", ".join(f"o.{c}" for c in OUTPUT_COLUMNS)

Db = sqlite_utils.Database | sqlite3.Connection


def _conn(db: Db) -> sqlite3.Connection:
    return db.conn if isinstance(db, sqlite_utils.Database) else db


# --- search text -------------------------------------------------------------------------------


def fts_query(text: str) -> str | None:
    """Plain user text as a safe FTS5 query: every word becomes a quoted phrase (so `-`, `:`,
    `AND`, `NEAR(`, quotes are literal) and all must match; a trailing `*` keeps prefix
    search. None when nothing searchable is left."""
    terms = []
    for raw in text.replace("\x00", " ").split():
        prefix = len(raw) > 1 and raw.endswith("*")
        word = raw.rstrip("*") if prefix else raw
        if not any(ch.isalnum() for ch in word):
            continue  # punctuation only: the tokenizer would drop it anyway
        terms.append('"' + word.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(terms) or None


# --- events ------------------------------------------------------------------------------------


_RANGE_CAP = 20_000  # a time range this small gets exact id bounds (an index walk, ~ms)


def _kind_prefix(kind: str) -> str | None:
    return kind[:-1] if kind.endswith(".*") else kind if kind.endswith(".") else None


def _event_filters(run_id: str | None, kind: str | None, since: float | None,
                   until: float | None, decision: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if run_id is not None:
        where.append("e.run_id = ?")
        params.append(run_id)
    if kind:
        prefix = _kind_prefix(kind)
        if prefix is None:
            where.append("e.kind = ?")
            params.append(kind)
        else:
            where.append("e.kind >= ? AND e.kind < ?")
            params += [prefix, _next_prefix(prefix)]
    if since is not None:
        where.append("e.ts >= ?")
        params.append(float(since))
    if until is not None:
        where.append("e.ts < ?")
        params.append(float(until))
    if decision is not None:
        # Events spell a decision three ways: "decision", "action" (net.decision,
        # policy.decision) and a boolean "allow" (approval.decided).
        where.append(
            "CASE WHEN json_valid(e.data) THEN coalesce(json_extract(e.data, '$.decision'), "
            "json_extract(e.data, '$.action'), CASE json_extract(e.data, '$.allow') "
            "WHEN 1 THEN 'allow' WHEN 0 THEN 'deny' END) END = ?"
        )
        params.append(decision)
    return where, params


KINDS_MAX = 256  # distinct kinds under one prefix read one by one (the store has tens)


def _next_prefix(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _id_bounds(conn: sqlite3.Connection, run_id: str | None, kind: str | None,
               since: float | None, until: float | None) -> tuple[int, int] | None | bool:
    """Exact id range every match must lie in, from cheap index lookups: lets a search or a
    scan skip the rest of the table. None: nothing can match; True: no useful bound."""
    ranges: list[tuple[int, int]] = []
    if run_id is not None:
        ranges.append(conn.execute("SELECT min(id), max(id) FROM events WHERE run_id = ?",
                                   (run_id,)).fetchone())
    if kind and _kind_prefix(kind) is None:
        ranges.append(conn.execute("SELECT min(id), max(id) FROM events WHERE kind = ?",
                                   (kind,)).fetchone())
    if since is not None or until is not None:
        lo_ts = float("-inf") if since is None else float(since)
        hi_ts = float("inf") if until is None else float(until)
        n, lo, hi = conn.execute(
            "SELECT count(*), min(id), max(id) FROM (SELECT id FROM events "
            "WHERE ts >= ? AND ts < ? LIMIT ?)", (lo_ts, hi_ts, _RANGE_CAP + 1)).fetchone()
        if n <= _RANGE_CAP:
            ranges.append((lo, hi))
    if not ranges:
        return True
    if any(lo is None for lo, _ in ranges):
        return None
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    return (lo, hi) if lo <= hi else None


def _events(db: Db, *, newest_first: bool, bound_id: int | None, limit: int,
            run_id: str | None, kind: str | None, search: str | None, since: float | None,
            until: float | None, decision: str | None) -> list[dict[str, Any]]:
    conn = _conn(db)
    limit = max(0, int(limit))
    match = None
    if search is not None and search.strip():
        match = fts_query(search)
        if match is None:
            return []
    elif kind and _kind_prefix(kind) is not None:
        rows = _by_kind_prefix(conn, newest_first, bound_id, limit, run_id, kind, since, until,
                               decision)
        if rows is not None:
            return rows
    bounds = _id_bounds(conn, run_id, kind, since, until)
    if bounds is None:
        return []
    where, params = _event_filters(run_id, kind, since, until, decision)
    if match is not None:
        where.insert(0, "events_fts MATCH ?")
        params.insert(0, match)
        rowid = "events_fts.rowid"
        # The FTS table drives (newest match first), so a LIMIT stops the scan early.
        source = "events_fts CROSS JOIN events e ON e.id = events_fts.rowid"
    else:
        rowid, source = "e.id", "events e"
    if bounds is not True:
        where.append(f"{rowid} BETWEEN ? AND ?")
        params += list(bounds)
    if bound_id is not None:
        where.append(f"{rowid} {'<' if newest_first else '>'} ?")
        params.append(int(bound_id))
    sql = f"SELECT {_EV_SELECT} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {rowid} {'DESC' if newest_first else 'ASC'} LIMIT ?"
    params.append(limit)
    return [_event_row(r) for r in _fetch(conn, sql, params)]


def _by_kind_prefix(conn: sqlite3.Connection, newest_first: bool, bound_id: int | None,
                    limit: int, run_id: str | None, kind: str, since: float | None,
                    until: float | None, decision: str | None) -> list[dict[str, Any]] | None:
    """A kind prefix ("net.") without a search: one indexed query per distinct kind, merged.
    A single range query would sort every row of every matching kind to find the newest.
    None past KINDS_MAX kinds (the store writes tens; a file with more was made up): then the
    caller's one range query, bounded by the rows, not by three queries a kind."""
    prefix = _kind_prefix(kind)
    assert prefix is not None
    kinds, hi = [], _next_prefix(prefix)
    low = conn.execute("SELECT min(kind) FROM events WHERE kind >= ? AND kind < ?",
                       (prefix, hi)).fetchone()[0]
    while low is not None:  # distinct kinds by index seeks: there are tens, not millions
        if len(kinds) == KINDS_MAX:
            return None
        kinds.append(low)
        low = conn.execute("SELECT min(kind) FROM events WHERE kind > ? AND kind < ?",
                           (low, hi)).fetchone()[0]
    rows: list[dict[str, Any]] = []
    for k in kinds:
        rows += _events(conn, newest_first=newest_first, bound_id=bound_id, limit=limit,
                        run_id=run_id, kind=k, search=None, since=since, until=until,
                        decision=decision)
    rows.sort(key=lambda r: r["id"], reverse=newest_first)
    return rows[:limit]


def query_events(db: Db, *, run_id: str | None = None, kind: str | None = None,
                 search: str | None = None, since: float | None = None,
                 until: float | None = None, decision: str | None = None,
                 before_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Events newest first, `limit` per page; the next page is before_id=<last id seen>.

    kind is exact ("net.decision") or a prefix ending in "." or ".*" ("net."); since/until
    are epoch seconds; decision matches data.decision; search is plain user text.
    """
    return _events(db, newest_first=True, bound_id=before_id, limit=limit, run_id=run_id,
                   kind=kind, search=search, since=since, until=until, decision=decision)


def query_events_after(db: Db, *, after_id: int | None = None, limit: int = 1000,
                       run_id: str | None = None, kind: str | None = None,
                       search: str | None = None, since: float | None = None,
                       until: float | None = None, decision: str | None = None
                       ) -> list[dict[str, Any]]:
    """Events oldest first after `after_id`: one page of an export."""
    return _events(db, newest_first=False, bound_id=after_id, limit=limit, run_id=run_id,
                   kind=kind, search=search, since=since, until=until, decision=decision)


def iter_events(db: Db, *, chunk: int = 1000, after_id: int | None = None,
                **filters: Any) -> Iterator[dict[str, Any]]:
    """Every matching event, oldest first, streamed in pages (short read transactions, so an
    export never pins the WAL)."""
    while True:
        page = query_events_after(db, after_id=after_id, limit=chunk, **filters)
        yield from page
        if len(page) < chunk:
            return
        after_id = page[-1]["id"]


def _event_row(r: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(EVENT_COLUMNS, map(_shown, r), strict=True))
    row["data"] = _json(row["data"])
    return row


# --- values the store never writes ---------------------------------------------------------------
# An altered file can hold them (`audit verify` names the row); a view shows them as they are,
# escaped, rather than failing the whole page, or an export, and hiding every row beside them.


def _fetch(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """The query's rows; when one holds text that is not UTF-8, all of them again with the
    bytes that are not escaped (\\xff) instead of the error."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    conn.text_factory = _escaped  # this reader connection belongs to this thread
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.text_factory = str


def _escaped(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def _shown(value: Any) -> Any:
    """A blob as SQLite writes one (x'00ff'): no JSON for bytes, and no text it could pass for."""
    return f"x'{value.hex()}'" if isinstance(value, bytes) else value


def _json(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested past the parser
        return raw


# --- output ------------------------------------------------------------------------------------


def query_output(db: Db, run_id: str, *, after_id: int | None = None,
                 before_id: int | None = None, limit: int = 1000,
                 search: str | None = None) -> list[dict[str, Any]]:
    """Lines of a run's output, always oldest first.

    With after_id: the first `limit` lines after it (follow a live log). Without: the last
    `limit` lines (before before_id, if given: scrolling back).
    """
    conn = _conn(db)
    if (found := _output_source(conn, run_id, search)) is None:
        return []
    where, params, rowid, source = found
    forward = after_id is not None
    if forward:
        where.append(f"{rowid} > ?")
        params.append(int(after_id))  # type: ignore[arg-type]
    elif before_id is not None:
        where.append(f"{rowid} < ?")
        params.append(int(before_id))
    sql = (f"SELECT {_OUT_SELECT} FROM {source} WHERE {' AND '.join(where)} "
           f"ORDER BY {rowid} {'ASC' if forward else 'DESC'} LIMIT ?")
    params.append(max(0, int(limit)))
    rows = [dict(zip(OUTPUT_COLUMNS, map(_shown, r), strict=True))
            for r in _fetch(conn, sql, params)]
    return rows if forward else rows[::-1]


def tail_after(db: Db, run_id: str, n: int, search: str | None = None) -> int:
    """The id just before the first of a run's last `n` lines (matching `search`), 0 when it
    has no more than `n`: a tail is then read forward from it, a page at a time."""
    conn = _conn(db)
    if n <= 0 or (found := _output_source(conn, run_id, search)) is None:
        return 0
    where, params, rowid, source = found
    row = conn.execute(f"SELECT {rowid} FROM {source} WHERE {' AND '.join(where)} "
                       f"ORDER BY {rowid} DESC LIMIT 1 OFFSET ?", [*params, n - 1]).fetchone()
    return 0 if row is None else int(row[0]) - 1


def _output_source(conn: sqlite3.Connection, run_id: str, search: str | None
                   ) -> tuple[list[str], list[Any], str, str] | None:
    """(where, params, rowid, source) selecting a run's output lines, through the full-text
    index when there is a search; None when the search can match nothing."""
    if search is None or not search.strip():
        return ["o.run_id = ?"], [run_id], "o.id", "output o"
    match = fts_query(search)
    lo, hi = conn.execute("SELECT min(id), max(id) FROM output WHERE run_id = ?",
                          (run_id,)).fetchone()
    if match is None or lo is None:
        return None
    # FTS drives, limited to the run's lifetime (two index seeks).
    return (["output_fts MATCH ?", "output_fts.rowid BETWEEN ? AND ?", "o.run_id = ?"],
            [match, lo, hi, run_id], "output_fts.rowid",
            "output_fts CROSS JOIN output o ON o.id = output_fts.rowid")


def count_output(db: Db, run_id: str, upto_id: int | None = None) -> int:
    """How many output lines a run has stored (an index range count), up to a row id if given."""
    if upto_id is None:
        return _conn(db).execute("SELECT count(*) FROM output WHERE run_id = ?",
                                 (run_id,)).fetchone()[0]
    return _conn(db).execute("SELECT count(*) FROM output WHERE run_id = ? AND id <= ?",
                             (run_id, upto_id)).fetchone()[0]


# --- runs --------------------------------------------------------------------------------------


def query_runs(db: Db, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Runs newest first, JSON columns decoded."""
    sql = "SELECT * FROM runs"
    params: list[Any] = []
    if state is not None:
        sql += " WHERE state = ?"
        params.append(state)
    sql += " ORDER BY started_at DESC, rowid DESC LIMIT ?"
    params.append(max(0, int(limit)))
    return [_run_row(r) for r in sqlite_utils.Database(_conn(db), execute_plugins=False,
                                                        recursive_triggers=False).query(sql, params)]


def get_run(db: Db, run_id: str) -> dict[str, Any] | None:
    rows = list(sqlite_utils.Database(_conn(db), execute_plugins=False, recursive_triggers=False)
                .query("SELECT * FROM runs WHERE id = ?", [run_id]))
    return _run_row(rows[0]) if rows else None


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    """A runs row as the writer stores one: each column its type, or None (unknown) where an
    edited file holds something else, so every reader (ps, report, the console) takes it;
    `audit verify` names such a row."""
    row = {k: _shown(v) for k, v in row.items()}
    for col in RUN_JSON_COLUMNS:
        if col in row:
            row[col] = _json(row[col])
    for col, kind in _RUN_TYPES.items():
        if col in row:
            row[col] = kind(row[col])
    return row


def _words(v: Any) -> list[str]:
    """A command: a list of words (as text), or the stored text as one word."""
    if isinstance(v, list):
        return [w if isinstance(w, str) else json.dumps(w) for w in v]
    return [] if v is None else [v if isinstance(v, str) else json.dumps(v)]


_RUN_TYPES: dict[str, Any] = {
    **dict.fromkeys(("id", "profile", "backend", "state", "workspace"), values.opt),
    **dict.fromkeys(("started_at", "ended_at", "energy_j", "cost"), values.read_number),
    **dict.fromkeys(("exit_code", "tokens_in", "tokens_out"), values.read_int),
    "command": _words,
    "pids": lambda v: [p for p in v if values.read_int(p) is not None] if isinstance(v, list) else [],
    "info": lambda v: v if isinstance(v, dict) else {},
}


# --- export ------------------------------------------------------------------------------------


def export(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write rows as JSON lines or CSV (data as JSON text, plus an ISO `time` column beside
    ts). Streams; returns how many rows were written."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    count = 0
    writer: csv.DictWriter[str] | None = None
    for row in rows:
        row = _with_time(row)
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
                writer.writeheader()
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        count += 1
    return count


def _with_time(row: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(row.get("ts"), int | float):
        return dict(row)
    out: dict[str, Any] = {}
    for k, v in row.items():
        out[k] = v
        if k == "ts":
            out["time"] = datetime.fromtimestamp(v, UTC).isoformat(timespec="milliseconds")
    return out


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value
