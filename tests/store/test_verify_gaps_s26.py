"""Edits `audit verify` passed over (s26 review of the store, as an offline editor of the file):

- a lost run's exit code set (`ps --all` and `report` then showed `lost exit 0`): a lost run's
  exit was never seen, its recorded end now says so, and verify compares;
- a run's token counts raised past its recorded `tokens` events, excused by any note of
  dropped rows anywhere later in the history (an agent's output flood makes such notes on
  demand): only a note while that run was live excuses it now;
- workload trace rows planted under a run id no recorded event names, or none: named now.

Real daemons on temporary homes, real bwrap runs; the file is edited with the daemon stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path

from store.trace_requests import COLUMNS, insert_trace_rows
from tests.conftest import Daemon, needs_bwrap
from tests.store.conftest import killed_mid_run, run_sql
from tests.store.test_audit_tamper_attacks import Make, _sql, _verify
from tests.store.test_run_tokens_chain_s23 import _metered_run, start_run
from tests.store.test_trace_sealed_s25 import _ended_run, _row


def _verify_daemon(d: Daemon) -> dict:
    done = d.cli("audit", "verify", "--json", check=False)
    return json.loads(done.stdout)


@needs_bwrap
def test_a_lost_runs_exit_code_set_afterwards_is_named(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        rid = killed_mid_run(d, workspace)
        d.start()  # the run is found lost
        shown = [r for r in json.loads(d.cli("ps", "--all", "--json").stdout) if r["id"] == rid]
        assert shown[0]["state"] == "lost" and shown[0]["exit_code"] is None, shown
        assert _verify_daemon(d)["ok"]
        d.stop()
        run_sql(home / "data" / "pilothouse.db", "UPDATE runs SET exit_code = 0 WHERE id = ?",
                (rid,))
        d.start()
        result = _verify_daemon(d)
        assert not result["ok"], result
        assert f"run {rid}" in json.dumps(result) and "exit code" in json.dumps(result), result
    finally:
        d.stop()


def test_a_note_of_rows_dropped_after_a_run_ended_excuses_none_of_its_tokens(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    _metered_run(make_writer, witness, rid="r1")
    # Later, another run floods: the full queue drops rows and the store notes it, chained.
    w = make_writer(witness=witness, max_queue=1, max_delay=30.0)
    start_run(w, "r2", time.time())
    w.record("run.output.noise", run_id="r2", text="x")
    w.record("run.output.noise", run_id="r2", text="dropped")
    w.flush()
    assert w.stats()["dropped"] == 1
    w.record("run.output.noise", run_id="r2", text="the next batch carries the note")
    w.flush()
    w.close()
    assert _verify(db_path, key, witness).ok
    _sql(db_path, "UPDATE runs SET tokens_in = 6000000, tokens_out = 2400000 WHERE id = 'r1'")
    result = _verify(db_path, key, witness)
    assert not result.ok and "run r1" in result.reason and "tokens_in" in result.reason, (
        result.reason)


def test_trace_rows_planted_under_no_run_or_an_unknown_one_are_named(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    _ended_run(make_writer, witness, "r1")
    w = make_writer(witness=witness)  # a live run's rows are not sealed yet, and no finding
    start_run(w, "r2", time.time())
    w.call(lambda db: insert_trace_rows(db.conn, [_row("r2", i) for i in range(2)])).result(10)
    w.flush()
    w.close()
    assert _verify(db_path, key, witness).ok
    planted = [(None, "name no run"), ("zzzz", "run zzzz"), ("r1 ", "run r1 ")]
    for n, (rid, said) in enumerate(planted):
        row = dict(zip(COLUMNS, _row("r1", 90 + n), strict=True))
        row.update(run_id=rid, request_id=f"planted-{n}", prompt_tokens=30000)
        _sql(db_path, f"INSERT INTO trace_requests ({', '.join(COLUMNS)}) VALUES "
             f"({', '.join('?' for _ in COLUMNS)})", params=tuple(row.values()))
        result = _verify(db_path, key, witness)
        assert not result.ok and said in result.reason and "trace" in result.reason, (
            rid, result.reason)
        _sql(db_path, "DELETE FROM trace_requests WHERE request_id = ?", params=(f"planted-{n}",))
    assert _verify(db_path, key, witness).ok


@needs_bwrap
def test_a_live_run_whose_start_was_pruned_is_no_false_alarm(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """Its start pruned (the owner's routine prune), a run still going goes on printing: its
    new lines are named by no event until it ends, and the prune note names the run."""
    d = Daemon(home, daemon_env)
    d.start()
    try:
        rid = json.loads(d.cli("run", "demo", "-w", str(workspace), "--json", "--", "sh", "-c",
                               "while :; do echo tick; sleep 0.2; done").stdout)["id"]
        time.sleep(2.5)
        d.cli("prune", "--older-than", "1s", "--yes")
        deadline = time.monotonic() + 20
        before = d.cli("logs", rid).stdout.count("tick")
        while d.cli("logs", rid).stdout.count("tick") < before + 3:
            assert time.monotonic() < deadline, "the run stopped printing"
            time.sleep(0.2)
        result = _verify_daemon(d)
        assert result["ok"], result
        d.cli("stop", rid)
    finally:
        d.stop()
