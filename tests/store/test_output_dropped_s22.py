"""Review s22: output lines dropped by a full write queue (one run's flood fills it for every
run) left no mark on the run they belonged to: the store's `store.dropped` note counts rows
for the whole store, the run's seal vouches for the lines that were stored, and `logs` showed
a run's output with a hole as if whole. The run's sealed end now counts its dropped lines."""

from __future__ import annotations

from pathlib import Path

from tests.store.test_audit_tamper_attacks import Make


def test_a_runs_seal_counts_its_lines_dropped_by_a_full_queue(make_writer: Make,
                                                              db_path: Path) -> None:
    w = make_writer(start=False, max_queue=3)  # not started: the queue fills, nothing drains
    for i in range(5):
        w.record_output("victim", "out", f"line {i}")
    w.start()
    ended = w.commit("run.ended", run_id="victim", text="exited (exit 0)",
                     data={"state": "exited"}, seal_output=True)
    other = w.commit("run.ended", run_id="other", text="exited (exit 0)", data={},
                     seal_output=True)
    w.close()
    assert ended["data"]["output"]["lines"] == 3
    assert ended["data"].get("output_dropped") == 2, ended["data"]
    assert "output_dropped" not in other["data"], other["data"]
