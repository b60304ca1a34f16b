"""The batched writer against a real database: batching, durability, failure, bounds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from store import db as db_mod
from store import history
from store.audit import verify
from store.db import StoreError, open_db
from store.writer import StoreWriter

Raw = Callable[[], sqlite3.Connection]
Make = Callable[..., StoreWriter]


def _count(raw: Raw, table: str = "events", where: str = "1") -> int:
    conn = raw()
    return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def _verified(db_path: Path, key: bytes) -> bool:
    db = open_db(db_path, readonly=True)
    try:
        result = verify(db, key)
        assert result.ok, result
        return True
    finally:
        db.close()


def test_many_records_commit_in_few_transactions(make_writer: Make, raw: Raw) -> None:
    w = make_writer(max_batch=500, max_delay=3600)  # only size (or a flush) triggers a commit
    for i in range(5000):
        w.record("gpu.sample", text=f"sample {i}", data={"w": i})
    w.flush()
    stats = w.stats()
    assert _count(raw) == 5000
    assert stats["rows"] == 5000 and stats["batches"] <= 11


def test_timer_commits_a_partial_batch(make_writer: Make, raw: Raw) -> None:
    w = make_writer(max_batch=1000, max_delay=0.01)
    w.record("x")
    conn = raw()
    while conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0:
        threading.Event().wait(0.005)  # the timer, not a flush, gets it there
    # The writer counts a batch after its commit (and witness line): a reader may see the row
    # a moment before the count (a fresh run met that gap).
    for _ in range(2000):
        if w.stats()["batches"]:
            break
        threading.Event().wait(0.005)
    assert w.stats()["batches"] == 1


def test_commit_returns_after_the_row_is_committed(make_writer: Make, raw: Raw) -> None:
    w = make_writer(max_delay=3600)
    for i in range(3000):
        w.record("run.output", text=f"bulk {i}")
    row = w.commit("approval.decided", run_id="r1", actor="alice", text="allow git push",
                   data={"decision": "allow"})
    assert row["id"] == 3001 and row["data"] == {"decision": "allow"} and len(row["hash"]) == 64
    conn = raw()  # a separate connection, opened only now, sees it at once
    stored = conn.execute("SELECT kind, actor, hash FROM events WHERE id = ?", (row["id"],)).fetchone()
    assert stored == ("approval.decided", "alice", row["hash"])
    assert conn.execute("SELECT count(*) FROM events WHERE id < ?", (row["id"],)).fetchone()[0] == 3000
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_acommit_does_not_block_the_loop(make_writer: Make, raw: Raw) -> None:
    w = make_writer()
    blocker = raw()
    blocker.execute("BEGIN IMMEDIATE")  # the writer cannot commit while this is held
    task = asyncio.create_task(w.acommit("net.decision", text="CONNECT pypi.org:443",
                                         data={"decision": "allow"}))
    ticks = 0
    for _ in range(20):
        await asyncio.sleep(0.005)
        ticks += 1
    assert ticks == 20 and not task.done()  # the loop ran on while the commit waited
    blocker.execute("ROLLBACK")
    row = await task
    assert row["kind"] == "net.decision"


def test_call_runs_in_the_transaction(make_writer: Make, db_path: Path) -> None:
    w = make_writer()
    fut = w.call(lambda db: db["runs"].upsert(
        {"id": "r1", "profile": "demo", "state": "running", "command": ["ph-demo-agent"],
         "pids": [1, 2]}, pk="id").last_pk)
    assert fut.result(timeout=10) == "r1"
    count = w.call(lambda db: db.execute("SELECT count(*) FROM runs").fetchone()[0])
    assert count.result(timeout=10) == 1
    reader = open_db(db_path, readonly=True)
    run = history.get_run(reader, "r1")
    assert run is not None and run["command"] == ["ph-demo-agent"] and run["pids"] == [1, 2]
    assert [r["id"] for r in history.query_runs(reader)] == ["r1"]
    reader.close()


def test_call_exception_undoes_only_that_call(make_writer: Make, raw: Raw) -> None:
    w = make_writer(start=False)
    w.record("before")

    def bad(db: object) -> None:
        db.execute("INSERT INTO runs (id) VALUES ('half')")  # type: ignore[attr-defined]
        raise RuntimeError("changed my mind")

    fut = w.call(bad)
    sec = w.submit("after")
    w.start()
    with pytest.raises(RuntimeError, match="changed my mind"):
        fut.result(timeout=10)
    assert sec.result(timeout=10)["id"] == 2
    assert _count(raw) == 2 and _count(raw, "runs") == 0


def test_failed_batch_fails_its_security_events(make_writer: Make, raw: Raw, db_path: Path,
                                                key: bytes) -> None:
    open_db(db_path).close()
    w = make_writer(start=False)
    # Made inside the batch's own transaction (a trigger in the file is refused at start), so
    # it refuses the rows queued after it and goes with the batch's rollback.
    trigger = w.call(lambda db: db.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN new.kind = 'test.refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"))
    innocent = w.submit("approval.decided", text="allow git push")
    w.record("run.output", text="bulk in the same batch")
    w.record_output("r1", "stdout", "a line: in a batch of lines, after")
    doomed = w.submit("test.refused")
    call = w.call(lambda db: "would have run")
    w.start()  # all of the above land in one batch, which fails
    for fut in (trigger, innocent, doomed, call):
        with pytest.raises(StoreError, match="refused by test trigger"):
            fut.result(timeout=10)
    assert _count(raw) == 0
    # the writer keeps going, the chain has no hole, and the loss is on record
    row = w.commit("approval.decided", text="a later decision")
    assert row["id"] == 2  # 1 is the note about the lost rows, written first
    stats = w.stats()
    assert stats["failed_batches"] == 1 and stats["lost"] == 1
    assert "refused by test trigger" in stats["last_error"]
    note = raw().execute("SELECT data FROM events WHERE kind = 'store.write_failed'").fetchone()
    assert json.loads(note[0])["lost"] == 1
    w.flush(lines_of=["r1"])  # lines wait apart from events (write_queue.py): not in that batch
    assert _count(raw, "output") == 1
    w.commit("run.started", run_id="r1")  # verify wants a recorded run for every line
    w.close()
    assert _verified(db_path, key)


def test_closed_writer_refuses_security_events(make_writer: Make) -> None:
    w = make_writer()
    w.close()
    with pytest.raises(StoreError, match="closed"):
        w.commit("approval.decided")
    with pytest.raises(StoreError, match="closed"):
        w.call(lambda db: None)
    w.record("late")  # bulk after close: dropped, counted, no exception
    assert w.stats()["dropped"] == 1


async def test_acommit_on_closed_writer_raises(make_writer: Make) -> None:
    w = make_writer()
    w.close()
    with pytest.raises(StoreError):
        await w.acommit("approval.decided")


def test_close_flushes_everything(make_writer: Make, raw: Raw) -> None:
    w = make_writer(max_delay=3600, max_batch=100_000)
    for i in range(2000):
        w.record("x", text=str(i))
        w.record_output("r", "stderr", str(i))
    w.close()
    assert _count(raw) == 2000 and _count(raw, "output") == 2000
    assert w.stats()["state"] == "closed"


def test_queue_bound_drops_bulk_never_security(make_writer: Make, raw: Raw) -> None:
    """Events have one bound; each run's lines have their own (a run's flood drops its own
    lines, not another run's, nor events)."""
    w = make_writer(start=False, max_queue=100)
    for i in range(200):
        w.record("flood", text=str(i))
    for i in range(150):
        w.record_output("r1", "stdout", str(i))
    for i in range(50):
        w.record_output("r2", "stdout", str(i))
    secured = [w.submit("approval.requested", text=str(i)) for i in range(3)]
    assert w.stats()["dropped"] == 150
    w.start()
    assert [f.result(timeout=10)["kind"] for f in secured] == ["approval.requested"] * 3
    w.flush()
    assert _count(raw, where="kind = 'flood'") == 100
    assert _count(raw, "output", where="run_id = 'r1'") == 100
    assert _count(raw, "output", where="run_id = 'r2'") == 50
    note = raw().execute("SELECT data FROM events WHERE kind = 'store.dropped'").fetchone()
    assert json.loads(note[0]) == {"dropped": 150, "total": 150}


def test_concurrent_producers(make_writer: Make, raw: Raw, db_path: Path, key: bytes) -> None:
    w = make_writer()
    acked: list[list[int]] = [[] for _ in range(4)]

    def produce(n: int) -> None:
        for i in range(500):
            w.record("bulk", run_id=f"r{n}", text=str(i))
            if i % 10 == 0:
                acked[n].append(w.commit("sec", run_id=f"r{n}")["id"])

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    assert _count(raw) == 4 * 550
    for ids in acked:
        assert ids == sorted(ids) and len(ids) == 50
    assert len({i for ids in acked for i in ids}) == 200
    assert _verified(db_path, key)


def test_awkward_values_are_stored_and_chain_verifies(make_writer: Make, db_path: Path,
                                                      key: bytes) -> None:
    w = make_writer()
    w.record("x", text="lone \udcff surrogate", actor="bad\udc80actor")
    w.record("x", text="nul \x00 inside, emoji 🚀, rtl ‏שלום", run_id="r")  # r's lines: known
    w.record("x", text=b"bytes \xff", ts=1700000000)  # int ts, bytes text
    w.record("x", data={"obj": object()})  # not JSON: kept as a repr, never fails the batch
    w.record_output("r", "stdout", "tab\tand\r\ncrlf \udcfe")
    with pytest.raises(TypeError):
        w.commit("sec", data={"obj": object()})  # a security event is never silently altered
    with pytest.raises(ValueError):
        w.commit("sec", data={"power": float("nan")})
    with pytest.raises(ValueError):
        w.record("x", ts=float("inf"))
    w.close()
    assert _verified(db_path, key)
    reader = open_db(db_path, readonly=True)
    texts = [e["text"] for e in history.query_events(reader, limit=10)][::-1]
    assert texts[0].startswith("lone \ufffd") and texts[0].endswith(" surrogate") and "\x00" in texts[1] and "🚀" in texts[1]
    assert "unserializable" in history.query_events(reader, limit=1)[0]["data"]
    reader.close()


def test_rogue_call_that_commits_does_not_break_the_chain(make_writer: Make, db_path: Path,
                                                          key: bytes) -> None:
    w = make_writer(start=False)
    w.record("a")
    fut = w.call(lambda db: db.conn.execute("COMMIT"))
    w.record("b")
    w.start()
    with pytest.raises(StoreError, match="ended the writer's transaction"):
        fut.result(timeout=10)
    assert w.commit("c")["id"] > 1
    w.close()
    assert _verified(db_path, key)


def test_start_refuses_a_newer_schema(make_writer: Make, db_path: Path) -> None:
    open_db(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer pilothouse"):
        make_writer()


async def test_aprune_and_aflush(make_writer: Make, db_path: Path, key: bytes) -> None:
    w = make_writer(max_delay=3600)
    w.record("old", ts=1.0)
    w.record("new")
    await w.aflush()
    result = await w.aprune(100.0)
    assert result.pruned == 1
    w.close()
    assert _verified(db_path, key)


def test_database_locked_by_someone_else_fails_closed(make_writer: Make, raw: Raw,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the write lock past the busy timeout: the security event fails
    (the action is refused), and once the lock is gone the writer works again. The lock is
    held until the failure is seen, so the writer's busy timeout (5 s) is made 0.5 s here:
    it is waited out either way."""
    ms = 500
    monkeypatch.setattr(db_mod, "BUSY_TIMEOUT_MS", ms)
    monkeypatch.setattr(db_mod, "WRITE_PRAGMAS", tuple(
        f"PRAGMA busy_timeout={ms}" if p.startswith("PRAGMA busy_timeout=") else p
        for p in db_mod.WRITE_PRAGMAS))
    w = make_writer()
    blocker = raw()
    blocker.execute("BEGIN IMMEDIATE")
    fut = w.submit("approval.decided", text="would allow git push")
    with pytest.raises(StoreError, match="locked"):
        fut.result(timeout=60)
    blocker.execute("ROLLBACK")
    assert w.commit("approval.decided", text="after the lock")["id"] == 1
    assert w.stats()["failed_batches"] == 1
