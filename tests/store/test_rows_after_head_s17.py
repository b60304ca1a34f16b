"""Rows someone appended after the signed chain head (review s17).

The head is written in the transaction of the rows it signs, so a row past it was written by
something other than the writer: someone with the history file. The writer went on from the
head and numbered its next row as the forged one, so every commit failed on the row id: the
daemon could not start (a traceback in its log, shown by every CLI command), and `audit
verify`, which goes through the daemon, could not say what happened. Now the writer goes on
after the last row, records a chain warning naming the rows, and verify names the first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from store.writer import StoreWriter
from tests.store.test_audit_tamper_attacks import _verify


def _append_forged(db_path: Path, n: int) -> list[int]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        last_id, last_hash = conn.execute("SELECT id, hash FROM events ORDER BY id DESC").fetchone()
        ids = list(range(last_id + 1, last_id + 1 + n))
        for i in ids:
            conn.execute("INSERT INTO events (id, ts, run_id, kind, actor, text, data, prev, hash) "
                         "VALUES (?, 1.0, NULL, 'approval.decided', 'mallory', 'forged', NULL, ?, ?)",
                         (i, last_hash, "0" * 64))
        return ids
    finally:
        conn.close()


def test_the_writer_goes_on_after_forged_rows_and_names_them(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes) -> None:
    w = make_writer()
    for i in range(3):
        w.commit("approval.decided", text=f"decision {i}")
    w.close()
    forged = _append_forged(db_path, 2)
    w = make_writer()
    after = w.commit("approval.decided", text="after the restart")
    w.close()
    assert after["id"] > forged[-1]
    conn = sqlite3.connect(db_path)
    warnings = [t for (t,) in conn.execute("SELECT text FROM events WHERE kind = "
                                           "'store.chain_warning'")]
    conn.close()
    assert len(warnings) == 1 and f"{forged[0]}" in warnings[0] and f"{forged[-1]}" in warnings[0]
    assert "past the signed chain head" in warnings[0]
    result = _verify(db_path, key, None)
    assert not result.ok and result.first_bad_id == forged[0], result
