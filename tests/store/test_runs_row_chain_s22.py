"""Review s22: a `runs` row (what `ps`, `report` and the console show) that disagrees with its
run's chained `run.started` / `run.ended` / `run.lost` events, edited in the file offline.

`audit verify` compared profile, backend, workspace, command, state and exit code; the times,
the actor and notes (`info`), a deleted row, and a row set to an ended state with no recorded
end went unnoticed. Each test edits one thing and expects verify to name the run and what."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.store.test_audit_tamper_attacks import Make, _sql, _verify

DAY = 86_400.0


def _db(daemon) -> Path:  # noqa: ANN001 - the conftest Daemon
    return daemon.home / "data" / "pilothouse.db"


def _verify_cli(daemon) -> dict:  # noqa: ANN001
    done = daemon.cli("audit", "verify", "--json", check=False)
    return json.loads(done.stdout)


def _one(db_path: Path, sql: str) -> object:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_runs_row_times_actor_notes_and_deletion_are_caught(daemon, workspace: Path) -> None:
    """A real ended run; then, one at a time (each undone after): its start set back a day, its
    end moved, its actor rewritten or a note added, its row deleted. verify must name each."""
    from tests.conftest import needs_bwrap  # noqa: F401 - the daemon fixture runs bwrap

    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "exit 0")
    db = _db(daemon)
    rid = _one(db, "SELECT id FROM runs")
    clean = _verify_cli(daemon)
    assert clean["ok"], clean
    row = sqlite3.connect(db)
    try:
        started, ended, info = row.execute(
            "SELECT started_at, ended_at, info FROM runs WHERE id = ?", (rid,)).fetchone()
    finally:
        row.close()
    forged_info = json.dumps({"actor": "alice", "notes": json.loads(info)["notes"]})
    noted_info = json.dumps({"actor": json.loads(info)["actor"],
                             "notes": ["reviewed and approved by alice"]})
    edits = [
        ("started_at", f"UPDATE runs SET started_at = {started - DAY} WHERE id = '{rid}'"),
        ("ended_at", f"UPDATE runs SET ended_at = {ended + 3600} WHERE id = '{rid}'"),
        ("info", f"UPDATE runs SET info = '{forged_info}' WHERE id = '{rid}'"),
        ("info", f"UPDATE runs SET info = '{noted_info}' WHERE id = '{rid}'"),
    ]
    for field, sql in edits:
        _sql(db, sql)
        result = _verify_cli(daemon)
        assert not result["ok"] and rid in result["reason"] and field in result["reason"], (
            f"{sql}: verify says {result['reason']!r}")
        _sql(db, "UPDATE runs SET started_at = ?, ended_at = ?, info = ? WHERE id = ?",
             params=(started, ended, info, rid))
    assert _verify_cli(daemon)["ok"]
    _sql(db, f"DELETE FROM runs WHERE id = '{rid}'")
    result = _verify_cli(daemon)
    assert not result["ok"] and rid in result["reason"], (
        f"the row of ended run {rid} was deleted and verify says {result['reason']!r}")


def test_live_run_is_not_a_false_alarm(daemon, workspace: Path) -> None:
    """A run still going has no recorded end and an open row: verify stays ok."""
    from tests.conftest import needs_bwrap  # noqa: F401

    daemon.cli("run", "shell", "-w", str(workspace), "--", "sleep", "600")
    db = _db(daemon)
    deadline = time.monotonic() + 60
    while _one(db, "SELECT count(*) FROM runs WHERE state = 'running'") != 1:
        assert time.monotonic() < deadline, "the run never showed as running"
        time.sleep(0.1)
    result = _verify_cli(daemon)
    assert result["ok"], result


def _started(make_writer: Make, witness: Path, rid: str, *, ts: float) -> None:
    w = make_writer(witness=witness)
    w.commit("run.started", run_id=rid, actor="alice", text="shell in bwrap: sh",
             data={"profile": "shell", "backend": "bwrap", "workspace": "/w", "command": ["sh"],
                   "unsandboxed": False, "started_at": ts}, ts=ts)
    row = {"id": rid, "profile": "shell", "backend": "bwrap", "state": "running",
           "command": '["sh"]', "workspace": "/w", "started_at": ts, "ended_at": None,
           "exit_code": None, "pids": "[]", "info": json.dumps({"actor": "alice", "notes": []})}
    from store.runs_table import upsert_run

    w.call(lambda db: upsert_run(db.conn, row)).result(10)
    w.flush()
    w.close()


def test_row_set_to_ended_without_a_recorded_end_is_caught(make_writer: Make, db_path: Path,
                                                           key: bytes, witness: Path) -> None:
    """A run that was live when the daemon stopped dead: its row set to `exited`, exit 0, in the
    file. The restarted daemon no longer marks it lost (it is not live), `ps` shows it exited
    cleanly, and nothing chained says it ended."""
    _started(make_writer, witness, "r1", ts=time.time() - 60)
    assert _verify(db_path, key, witness).ok
    _sql(db_path, "UPDATE runs SET state = 'exited', exit_code = 0, ended_at = ? WHERE id = 'r1'",
         params=(time.time(),))
    result = _verify(db_path, key, witness)
    assert not result.ok and "r1" in result.reason and "state" in result.reason, result.reason


def test_pruned_runs_are_not_a_false_alarm(make_writer: Make, db_path: Path, key: bytes,
                                           witness: Path) -> None:
    """A run that started and ended 100 days ago, pruned under a signed anchor: its row stays,
    its events are gone, verify is ok."""
    old = time.time() - 100 * DAY
    _started(make_writer, witness, "old", ts=old)
    w = make_writer(witness=witness)
    w.call(lambda db: db.conn.execute(
        "UPDATE runs SET state = 'exited', exit_code = 0, ended_at = ? WHERE id = 'old'",
        (old + 5,))).result(10)
    w.commit("run.ended", run_id="old", text="exited (exit 0)",
             data={"state": "exited", "exit_code": 0, "duration_s": 5.0, "ended_at": old + 5,
                   "notes": []}, ts=old + 5)
    w.commit("approval.decided", run_id=None, actor="alice", text="young", data={})
    w.flush()
    w.prune(time.time() - 30 * DAY)
    w.close()
    assert _one(db_path, "SELECT count(*) FROM events WHERE run_id = 'old'") == 0
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason


def test_report_warns_when_the_runs_row_disagrees_with_the_chain(daemon, workspace: Path) -> None:
    """`report RUN` shows the row (state, exit code, command): an edited exit code read as a
    clean run there with no word of doubt; only `audit verify` knew."""
    from tests.conftest import needs_bwrap  # noqa: F401

    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "exit 3",
               check=False)
    db = _db(daemon)
    rid = str(_one(db, "SELECT id FROM runs"))
    clean = daemon.cli("report", rid)
    assert "WARNING" not in clean.stdout, clean.stdout
    _sql(db, f"UPDATE runs SET exit_code = 0, state = 'exited' WHERE id = '{rid}'")
    shown = daemon.cli("report", rid)
    assert "WARNING" in shown.stdout and "exit code" in shown.stdout, shown.stdout
    answer = json.loads(daemon.cli("report", rid, "--json").stdout)
    assert "exit code" in (answer.get("warning") or ""), answer


def test_forged_row_dated_before_a_prune_is_caught(make_writer: Make, db_path: Path, key: bytes,
                                                   witness: Path) -> None:
    """Once anything was pruned, a runs row without a recorded start was excused whenever its
    started_at fell before the prune's cutoff: a row forged 200 days back (`ps --all` shows
    it) passed verify. The prune's note now names the runs whose start it removed."""
    old = time.time() - 100 * DAY
    _started(make_writer, witness, "old", ts=old)
    w = make_writer(witness=witness)
    w.commit("approval.decided", run_id=None, actor="alice", text="young", data={})
    w.flush()
    w.prune(time.time() - 30 * DAY)
    w.close()
    assert _verify(db_path, key, witness).ok
    _sql(db_path, "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at,"
         " ended_at, exit_code, pids, info) VALUES ('forged', 'claude', 'bwrap', 'exited', "
         "'[\"make\", \"deploy\"]', '/w', ?, ?, 0, '[]', '{\"actor\": \"alice\", \"notes\": []}')",
         params=(old - 100 * DAY, old - 100 * DAY + 60))
    result = _verify(db_path, key, witness)
    assert not result.ok and "forged" in result.reason, result.reason


def test_a_second_prune_that_removes_the_first_note_keeps_its_runs_excused(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    old = time.time() - 100 * DAY
    _started(make_writer, witness, "old", ts=old)
    w = make_writer(witness=witness)
    w.commit("approval.decided", run_id=None, actor="alice", text="young", data={})
    w.flush()
    w.prune(time.time() - 30 * DAY)
    w.commit("approval.decided", run_id=None, actor="alice", text="later", data={})
    w.flush()
    w.prune(time.time() + 60)  # everything, the first prune's note too
    w.close()
    assert _one(db_path, "SELECT count(*) FROM events WHERE kind = 'store.pruned'") == 1
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason
