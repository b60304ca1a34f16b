"""Session 46: one run's flood of output held up every other run. Its lines shared the writer's
one queue with the events, first in first out, so a decision made after 100,000 queued lines
was committed after all of them (bench/hook.py: a hook's round trip 2.5 s p50 under another
run's flood), and so were another run's lines and reads. Lines now wait per run, apart from
the events (store/write_queue.py); a run's end still vouches for every line given before it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.store.test_audit_tamper_attacks import Make

FLOOD = 50_000


def _ids(db_path: Path, run_id: str) -> list[int]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT id FROM output WHERE run_id = ?", (run_id,))]
    finally:
        db.close()


def test_a_decision_is_not_committed_behind_another_runs_queued_lines(make_writer: Make) -> None:
    w = make_writer(start=False)
    for i in range(FLOOD):
        w.record_output("flooder", "out", f"line {i}")
    decision = w.submit("approval.decided", run_id="other", text="allow git status")
    rows_then: list[int] = []
    decision.add_done_callback(lambda _: rows_then.append(w.rows))  # in the writer, at commit
    w.start()
    assert decision.result(timeout=30)["kind"] == "approval.decided"
    w.close(timeout=60)
    assert rows_then[0] < 1000, (f"the decision was committed after {rows_then[0]} rows: behind "
                                 "the other run's queued lines")


def test_another_runs_lines_and_read_do_not_wait_for_a_flood(make_writer: Make,
                                                             db_path: Path) -> None:
    w = make_writer(start=False)
    for i in range(FLOOD):
        w.record_output("flooder", "out", f"line {i}")
    for i in range(3):
        w.record_output("quiet", "out", f"quiet {i}")
    w.start()
    w.flush(lines_of=["quiet"], searchable=False)
    quiet = _ids(db_path, "quiet")
    w.close(timeout=60)
    assert len(quiet) == 3  # the read saw the lines it asked for
    assert max(quiet) < max(_ids(db_path, "flooder")), "the quiet run's lines went after the flood"


def test_a_seal_follows_its_runs_lines_and_other_runs_pass_it(make_writer: Make) -> None:
    w = make_writer(start=False, max_batch=100)
    for i in range(1000):
        w.record_output("ending", "out", f"line {i}")
    seal = w.submit("run.ended", run_id="ending", data={}, seal_output=True)
    after_same = w.submit("run.note", run_id="ending", text="after its end")
    other = w.submit("approval.decided", run_id="other", text="allow ls")
    w.start()
    ended: dict[str, Any] = seal.result(timeout=30)
    w.close()
    assert ended["data"]["output"]["lines"] == 1000  # every line given before the seal
    assert other.result()["id"] < ended["id"], "another run's decision waited for the seal's lines"
    assert after_same.result()["id"] > ended["id"], "an event of the run went before its end"
