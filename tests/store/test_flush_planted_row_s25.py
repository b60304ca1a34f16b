"""CI s24: `audit verify` hung for its client's whole minute. verify flushes first, and a flush
waits until the search index reaches the table's last row as stored now; a row another process
wrote (an offline editor, the attack the verify is for) was past that mark, but the indexer only
worked when its own writer had committed something since, so once idle it never indexed the row
and the flush (no time limit in the daemon) never returned."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from store import fts


def _plant(db_path: Path, table: str) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        if table == "output":
            conn.execute("INSERT INTO output (run_id, ts, stream, line) VALUES ('planted', ?, "
                         "'out', 'a planted line')", (time.time(),))
        else:
            conn.execute("INSERT INTO events (ts, kind, text, prev, hash) VALUES (?, 'x', "
                         "'planted', '0', '0')", (time.time(),))
    finally:
        conn.close()


@pytest.mark.parametrize(("table", "index", "column"), [("output", "output_fts", "line"),
                                                      ("events", "events_fts", "text")])
def test_a_flush_after_a_row_written_by_another_process_returns(
        make_writer, db_path: Path, table: str, index: str, column: str) -> None:
    w = make_writer()
    w.record("run.started", run_id="r1", actor="alice", text="started")
    w.record_output("r1", "stdout", "hello", ts=time.time())
    w.flush(timeout=10)  # idle now: everything this writer committed is indexed
    time.sleep(fts.DEFER_S * 2)
    _plant(db_path, table)
    w.flush(timeout=10)  # raised StoreError (timed out) before: the planted row was never indexed
    conn = sqlite3.connect(db_path)
    try:
        (found,) = conn.execute(f"SELECT count(*) FROM {index} WHERE {column} MATCH 'planted'"
                                ).fetchone()
    finally:
        conn.close()
    assert found == 1, f"the planted {table} row is not in its search index"


def test_verify_after_a_planted_line_on_an_idle_daemon_answers(daemon, workspace: Path) -> None:
    from tests.conftest import needs_bwrap  # noqa: F401 - the daemon fixture runs bwrap

    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "true")
    assert daemon.cli("audit", "verify", check=False).returncode == 0  # flushed: idle now
    time.sleep(fts.DEFER_S * 2)
    _plant(daemon.home / "data" / "pilothouse.db", "output")
    done = daemon.cli("audit", "verify", check=False)  # hung until the client gave up before
    assert done.returncode == 1 and done.stdout.startswith("BROKEN"), done.stdout
    assert "planted" in done.stdout, done.stdout
