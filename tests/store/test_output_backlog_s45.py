"""Session 45: under one run's flood of output, `logs` and another run's `run --wait` waited
for the full-text index's second pass to catch up with the flood (minutes behind) and failed
after 30 s ("the store is stuck"). A read that searches nothing now waits for the commit only.
(Decisions no longer wait behind the flood: tests/store/test_output_apart_s46.py; bench/hook.py prints
that round trip beside the idle one.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.store.test_audit_tamper_attacks import Make


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
