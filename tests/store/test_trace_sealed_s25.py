"""Left after s23: the workload trace (`trace_requests`, what `trace export` and the replays
read) was neither chained nor sealed: a request's tokens or times edited in the file, a request
removed or one planted, passed `audit verify` and went into the benchmark. A run's end now
seals its trace rows as stored (count and digest, chained with the end); the recorder stores no
row of a run after handing its rows over for the end; verify digests each sealed run's rows
again and names it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from store.trace_requests import COLUMNS, insert_trace_rows
from store.writer import StoreWriter
from tests.conftest import needs_bwrap
from tests.store.test_audit_tamper_attacks import Make, _sql, _verify
from tests.store.test_run_tokens_chain_s23 import end_row, metered_daemon, start_run


def _row(rid: str, n: int, **over: object) -> tuple[object, ...]:
    now = time.time()
    row = {"request_id": f"{rid}-req{n}", "run_id": rid, "profile": "shell", "lane": f"{rid}/0",
           "start": now + n, "first_byte": now + n + 0.01, "end": now + n + 0.5, "think_s": 0.2,
           "method": "POST", "endpoint": "/v1/chat/completions", "status": 200, "model": "m",
           "stream": 1, "max_tokens": 64, "prompt_tokens": 100 + n, "completion_tokens": 20,
           "cached_tokens": 0, "blocks": "[]", "content": None, **over}
    return tuple(row[c] for c in COLUMNS)


def _ended_run(make_writer: Make, witness: Path, rid: str = "r1", rows: int = 3) -> dict:
    w = make_writer(witness=witness)
    now = time.time()
    start_run(w, rid, now)
    end_row(w, rid, now)
    w.call(lambda db: insert_trace_rows(db.conn, [_row(rid, i) for i in range(rows)])).result(10)
    ended = w.commit("run.ended", run_id=rid, text="exited (exit 0)",
                     data={"state": "exited", "exit_code": 0, "ended_at": now, "notes": []},
                     seal_output=True)
    w.flush()
    w.close()
    return ended["data"]


def test_edited_removed_or_planted_trace_rows_are_named_by_verify(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    end = _ended_run(make_writer, witness)
    assert end["trace"]["rows"] == 3, end
    assert _verify(db_path, key, witness).ok
    edits = [
        ("UPDATE trace_requests SET completion_tokens = 2000 WHERE request_id = 'r1-req1'",
         "UPDATE trace_requests SET completion_tokens = 20 WHERE request_id = 'r1-req1'"),
        ("UPDATE trace_requests SET end = end + 30 WHERE request_id = 'r1-req2'",
         "UPDATE trace_requests SET end = end - 30 WHERE request_id = 'r1-req2'"),
        ("UPDATE trace_requests SET run_id = 'elsewhere' WHERE request_id = 'r1-req0'",
         "UPDATE trace_requests SET run_id = 'r1' WHERE request_id = 'r1-req0'"),
    ]
    for edit, undo in edits:
        _sql(db_path, edit)
        result = _verify(db_path, key, witness)
        assert not result.ok and "r1" in result.reason and "workload trace" in result.reason, (
            f"{edit}: verify says {result.reason!r}")
        _sql(db_path, undo)
        assert _verify(db_path, key, witness).ok, undo
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(f"INSERT INTO trace_requests ({', '.join(COLUMNS)}) VALUES "
                     f"({', '.join('?' for _ in COLUMNS)})", _row("r1", 7))  # planted
    finally:
        conn.close()
    planted = _verify(db_path, key, witness)
    assert not planted.ok and "4 requests" in planted.reason, planted.reason
    _sql(db_path, "DELETE FROM trace_requests WHERE request_id IN ('r1-req7', 'r1-req0')")
    removed = _verify(db_path, key, witness)
    assert not removed.ok and "2 requests" in removed.reason, removed.reason


def test_a_run_without_requests_is_sealed_empty(make_writer: Make, db_path: Path, key: bytes,
                                                witness: Path) -> None:
    end = _ended_run(make_writer, witness, rows=0)
    assert end["trace"]["rows"] == 0, end
    _sql(db_path, f"INSERT INTO trace_requests ({', '.join(COLUMNS)}) VALUES "
         f"({', '.join('?' for _ in COLUMNS)})", params=_row("r1", 1))
    result = _verify(db_path, key, witness)
    assert not result.ok and "r1" in result.reason, result.reason


def test_a_row_the_store_would_not_write_costs_no_recorded_end(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    """A blob planted in the file before the end: the end is still recorded, and says so."""
    w = make_writer(witness=witness)
    now = time.time()
    start_run(w, "r1", now)
    end_row(w, "r1", now)
    w.flush()
    _sql(db_path, f"INSERT INTO trace_requests ({', '.join(COLUMNS)}) VALUES "
         f"({', '.join('?' for _ in COLUMNS)})", params=_row("r1", 1, blocks=b"\x00blob"))
    ended = w.commit("run.ended", run_id="r1", text="exited (exit 0)",
                     data={"state": "exited", "exit_code": 0, "ended_at": now, "notes": []},
                     seal_output=True)
    w.close()
    assert "unreadable" in ended["data"]["trace"], ended["data"]
    result = _verify(db_path, key, witness)
    assert not result.ok and "workload trace" in result.reason, result.reason


@needs_bwrap
def test_a_real_runs_trace_is_sealed_whole_and_an_edit_is_named(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A real daemon, a sandboxed agent calling a local model through its gate, three runs in
    a row: each end seals all of its requests (none arrive after it: no false alarm), verify is
    clean, and a request's tokens edited in the file are named."""
    with metered_daemon(home, daemon_env, tmp_path) as (d, agent_run):
        for _ in range(3):
            agent_run()
        db = home / "data" / "pilothouse.db"
        conn = sqlite3.connect(db)
        try:
            seals = [json.loads(data)["trace"] for (data,) in conn.execute(
                "SELECT data FROM events WHERE kind = 'run.ended' ORDER BY id")]
            stored = conn.execute("SELECT count(*) FROM trace_requests").fetchone()[0]
        finally:
            conn.close()
        assert [s["rows"] for s in seals] == [2, 2, 2] and stored == 6, (seals, stored)
        clean = json.loads(d.cli("audit", "verify", "--json", check=False).stdout)
        assert clean["ok"], clean
        _sql(db, "UPDATE trace_requests SET completion_tokens = completion_tokens * 10 "
                 "WHERE id = (SELECT max(id) FROM trace_requests)")
        tampered = json.loads(d.cli("audit", "verify", "--json", check=False).stdout)
    assert not tampered["ok"] and "workload trace" in tampered["reason"], tampered


async def test_a_request_that_ends_after_its_runs_end_is_not_stored(tmp_path: Path) -> None:
    """drain(run) hands the run's rows over for its end; a request of it that finishes later
    would break the seal if stored: it is counted lost, and another run's is stored."""
    import os

    from console.gate.trace import TraceRecorder

    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    try:
        recorder = TraceRecorder(w, None, key=b"k" * 32)
        early = recorder.begin("r1", "POST", "127.0.0.1:1/v1/chat/completions")
        late = recorder.begin("r1", "POST", "127.0.0.1:1/v1/chat/completions")
        other = recorder.begin("r2", "POST", "127.0.0.1:1/v1/chat/completions")
        early.finish(None, 200)
        await recorder.drain("r1")
        late.finish(None, 200)
        other.finish(None, 200)
        await recorder.drain("r2")
        w.flush()
        stored = w.call(lambda db: db.conn.execute(
            "SELECT run_id, count(*) FROM trace_requests GROUP BY run_id").fetchall()).result(10)
    finally:
        w.close()
    assert dict(stored) == {"r1": 1, "r2": 1}, stored
    assert recorder.lost == 1, recorder.lost
