"""Session 45: one run's flood of output held every run's security events. A run's lines
queued for the store (up to the whole queue's 100,000) are committed before any event queued
after them, so under a flood each rule-decided command of every run waited ~2.5 s for its
decision's commit, and `logs`/`run --wait` of another run, which waited for the full-text
index to catch up too, failed after 30 s ("the store is stuck"). Output lines now have a bound
of their own in the queue (dropped past it, counted on the run's seal as before), events keep
the whole queue, and a read that searches nothing waits for the commit only. bench/hook.py
prints the decision's round trip under a flood beside the idle one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.store.test_audit_tamper_attacks import Make


def test_output_has_its_own_bound_in_the_queue_and_events_keep_the_rest(
        make_writer: Make, db_path: Path) -> None:
    w = make_writer(start=False, max_queue=100, max_output_queue=10)  # nothing drains yet
    for i in range(30):
        w.record_output("flood", "out", f"line {i}")
    for i in range(50):
        w.record("tool.exec", run_id="other", text=f"event {i}")
    assert w.stats()["queued"] == 60, w.stats()
    w.start()
    ended = w.commit("run.ended", run_id="flood", text="exited (exit 0)", data={},
                     seal_output=True)
    w.close()
    assert ended["data"]["output"]["lines"] == 10
    assert ended["data"]["output_dropped"] == 20, ended["data"]


def test_a_flush_for_a_read_that_searches_nothing_still_commits_everything_before_it(
        make_writer: Make, db_path: Path) -> None:
    w = make_writer(max_delay=30.0)  # nothing goes by the clock: only the flush moves it
    for i in range(5):
        w.record_output("r1", "out", f"line {i}")
    w.flush(searchable=False)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM output WHERE run_id = 'r1'").fetchone()[0] == 5
    finally:
        db.close()
        w.close()
