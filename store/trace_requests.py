"""The gate's per-request trace records (console/gate/trace.py builds them) in the history
database: written in batches through the store writer, read back for `trace` and export."""

from __future__ import annotations

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
