"""Second attack review of the tamper-evident history (2026-12-02), against the fixes of
017f467 (store/integrity.py, the prune chain check, fts repair, run_dir, kill_leftovers).

Tests not named test_held_* failed on 017f467 (/work/notes/review-e-output.txt: 5 failed, 14
passed) and assert the secure (or correct) behaviour; test_held_* record attacks that held.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlite_utils

from store import history
from store.db import StoreError, migrate, open_db
from tests.store.test_audit_tamper_attacks import DAY, Make, _sql, _verify


def _fill(make_writer: Make, witness: Path, n: int = 20, *, old: int = 0) -> None:
    now = time.time()
    w = make_writer(witness=witness)
    for i in range(n):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"decision {i} word{i}",
                 data={"i": i}, ts=now - 100 * DAY if i < old else now - 10)
    w.record_output("r1", "stdout", "rm -rf ~/project", ts=now - 10)
    w.flush()
    w.close()


def _search(db_path: Path, text: str) -> list[int]:
    db = open_db(db_path, readonly=True)
    try:
        return [e["id"] for e in history.query_events(db, search=text)]
    finally:
        db.close()


def _prune(make_writer: Make, witness: Path, cutoff: float) -> None:
    w = make_writer(witness=witness)
    try:
        w.prune(cutoff)
    finally:
        w.close()


# === findings ===================================================================================


def test_forged_runs_row_passes_verify_once_any_anchor_exists(make_writer: Make, db_path: Path,
                                                              key: bytes, witness: Path) -> None:
    """runs_off skips "start never recorded" for every run as soon as one anchor exists. After
    a routine prune of 100-day-old rows, a row for a run that never existed, started a minute
    ago (long after anything an anchor stands for), is shown by `ps` and passes verify."""
    _fill(make_writer, witness, 20, old=10)
    _prune(make_writer, witness, time.time() - 30 * DAY)
    assert _verify(db_path, key, witness).ok
    now = time.time()
    _sql(db_path, "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at,"
         " ended_at, exit_code, pids, info) VALUES ('ghost', 'claude', 'bwrap', 'exited', "
         "'[\"rm\", \"-rf\", \"/\"]', '/home/alice/project', ?, ?, 0, '[]', '{}')",
         params=(now - 60, now - 30))
    result = _verify(db_path, key, witness)
    assert not result.ok, "a runs row started after every anchor, with no start event, passes"


def _plant_sqlite_trigger(db_path: Path) -> None:
    """A trigger named sqlite_... written through writable_schema: SQLite reserves the prefix
    only for CREATE, and loads the row from sqlite_master like any other trigger."""
    sql = ("CREATE TRIGGER sqlite_wipe AFTER INSERT ON events BEGIN "
           "DELETE FROM output; UPDATE runs SET state = 'exited'; END")
    _sql(db_path, "PRAGMA writable_schema=ON",
         "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) "
         "VALUES ('trigger', 'sqlite_wipe', 'events', 0, ?)",
         "PRAGMA writable_schema=OFF", params=(sql,))


def test_trigger_named_sqlite_x_is_not_seen_by_verify(make_writer: Make, db_path: Path,
                                                      key: bytes, witness: Path) -> None:
    """foreign_schema leaves out every name LIKE 'sqlite\\_%'. A planted trigger named
    sqlite_wipe is invisible to verify (and to the writer's refusal)."""
    _fill(make_writer, witness, 5)
    _plant_sqlite_trigger(db_path)
    result = _verify(db_path, key, witness)
    assert not result.ok, "a trigger named sqlite_wipe is not reported"


def test_trigger_named_sqlite_x_runs_on_the_writer(make_writer: Make, db_path: Path,
                                                   key: bytes, witness: Path) -> None:
    """The same trigger fires on the writer's own connection: every chained event wipes the
    run output (not chained) and marks every run ended. The writer must refuse to start."""
    _fill(make_writer, witness, 5)
    _plant_sqlite_trigger(db_path)
    try:
        w = make_writer(witness=witness)
    except StoreError:
        return  # refused: the fix
    w.commit("approval.decided", run_id="r1", actor="alice", text="after", data={})
    w.flush()
    w.close()
    conn = sqlite3.connect(db_path)
    try:
        left = conn.execute("SELECT count(*) FROM output").fetchone()[0]
    finally:
        conn.close()
    pytest.fail(f"the writer started with the planted trigger; output rows left: {left}")


def test_fts_row_reindexed_with_other_text_hides_it_from_search(make_writer: Make, db_path: Path,
                                                                key: bytes, witness: Path) -> None:
    """index_off compares only the docsize row ids. Row 5 taken out of events_fts with its real
    text and put back with other text: the counts and ids still agree, PRAGMA integrity_check
    (SQLite < 3.44) does not look into FTS5, and `history --search word5` no longer shows it
    while verify is green. FTS5's own 'integrity-check' command catches it."""
    _fill(make_writer, witness, 20)
    assert _search(db_path, "word5")
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        rid, text, kind = conn.execute(
            "SELECT id, text, kind FROM events WHERE text LIKE '%word5'").fetchone()
        conn.execute("INSERT INTO events_fts(events_fts, rowid, text, kind) "
                     "VALUES ('delete', ?, ?, ?)", (rid, text, kind))
        conn.execute("INSERT INTO events_fts(rowid, text, kind) VALUES (?, 'nothing here', ?)",
                     (rid, kind))
    finally:
        conn.close()
    assert _search(db_path, "word5") == []  # hidden
    result = _verify(db_path, key, witness)
    assert not result.ok, "a search index that lies about a row's words passes verify"


def test_held_prune_over_a_non_utf8_row_refuses_cleanly(make_writer: Make, db_path: Path,
                                                   key: bytes, witness: Path) -> None:
    """A non-UTF-8 row under the cutoff: the prune refuses with a StoreError and the writer
    stays usable."""
    _fill(make_writer, witness, 20, old=10)
    _sql(db_path, "UPDATE events SET text = CAST(x'c3' AS TEXT) WHERE id = 3")
    w = make_writer(witness=witness)
    try:
        with pytest.raises(StoreError):
            w.prune(time.time() - 30 * DAY, timeout=30)
        w.commit("approval.decided", run_id="r1", actor="alice", text="still writing", data={})
    finally:
        w.close()


def test_kill_leftovers_kills_an_unrelated_bwrap(tmp_path: Path) -> None:
    """A pid in a live run's row (not compared by verify) that names a process in no
    Pilothouse cgroup is killed, with its children, whenever it is called bwrap: every
    flatpak app of the user runs under a bwrap. A forged or stale row kills them."""
    from console.daemon.lost_runs import kill_leftovers

    fake = tmp_path / "bwrap"
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "60"])
    try:
        time.sleep(0.2)
        killed = kill_leftovers([proc.pid], "0123456789ab-r1")
        time.sleep(0.2)
        assert proc.poll() is None and not killed, "a bwrap process of no run was killed"
    finally:
        proc.kill()
        proc.wait()


# === held =======================================================================================


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_held_old_schema_migrated_by_the_writer_verifies(make_writer: Make, db_path: Path,
                                                         key: bytes, witness: Path,
                                                         version: int) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    migrate(sqlite_utils.Database(conn), target=version)
    conn.close()
    _fill(make_writer, witness, 5)
    w = make_writer(witness=witness)
    w.close()
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason


def test_held_prune_everything_then_new_rows(make_writer: Make, db_path: Path, key: bytes,
                                             witness: Path) -> None:
    _fill(make_writer, witness, 10, old=10)
    _prune(make_writer, witness, time.time() + DAY)
    _prune(make_writer, witness, time.time() + DAY)  # a prune after a prune
    w = make_writer(witness=witness)
    w.commit("approval.decided", run_id="r2", actor="bob", text="fresh zebraword", data={})
    w.record_output("r2", "stdout", "new output quokkaword")
    w.flush()
    w.close()
    w = make_writer(witness=witness)
    w.close()
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason
    assert _search(db_path, "zebraword")


def test_held_forged_anchor_row_does_not_launder_via_prune(make_writer: Make, db_path: Path,
                                                           key: bytes, witness: Path) -> None:
    """prune reads the newest anchor without checking its signature, but verify checks every
    anchor: rows 1..12 deleted under a forged anchor stay reported after a routine prune."""
    _fill(make_writer, witness, 20, old=10)
    conn = sqlite3.connect(db_path, isolation_level=None)
    h = conn.execute("SELECT hash FROM events WHERE id = 12").fetchone()[0]
    conn.execute("DELETE FROM events WHERE id <= 12")
    conn.execute("INSERT INTO anchors (id, upto_id, upto_hash, pruned, ts, sig) "
                 "VALUES (1, 12, ?, 12, 1, 'x')", (h,))
    conn.close()
    try:
        _prune(make_writer, witness, time.time() - 30 * DAY)
    except StoreError:
        pass
    assert not _verify(db_path, key, witness).ok


@pytest.mark.parametrize("rid", ["..", ".", "a/..", "/", "", "x\0y"])
def test_held_run_dir_refuses(tmp_path: Path, rid: str) -> None:
    """Ids from the history never name a folder outside runs/."""
    from console.paths import Paths

    with pytest.raises(ValueError):
        Paths.run_dir(type("P", (), {"runs_dir": tmp_path})(), rid)  # type: ignore[arg-type]


def test_held_cgroup_prefix_run_ids() -> None:
    """Run id 'ab' does not claim a process of run 'abc' (cgroup leaf names)."""
    from console.daemon import lost_runs

    groups = ["0::/user.slice/pilothouse/k-abc"]
    orig = lost_runs._cgroups
    lost_runs._cgroups = lambda pid: groups  # type: ignore[assignment]
    try:
        assert lost_runs.kill_leftovers([os.getpid()], "k-ab") == []
    finally:
        lost_runs._cgroups = orig  # type: ignore[assignment]
