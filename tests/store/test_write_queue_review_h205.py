"""Review h205 of the per-run output queues (store/write_queue.py, session 46).

1. The writer counted the queue by walking the runs' dict without the lock, while a producer
   added a run's first line (a new entry): "dictionary changed size during iteration" killed
   the writer thread (the random interleavings below hit it too), and a dead writer refuses
   every security event: the daemon refuses every action until restarted. `stats()` (doctor)
   raised the same.
2. A batch took lines only when no item in it was waited on: under a steady stream of commits
   (decisions, a run's starts) every batch held one, and a quiet run's line was never stored
   while the stream lasted (max_delay did not help: its clock restarts at every batch).
3. Each run's lines had a bound of their own and nothing bounded them all: N flooding runs
   held N x max_queue lines (16 KiB each at most) in the daemon's memory, where one queue held
   max_queue before session 46. Runs are made only by the daemon, but each run's agent is
   untrusted, and a teammate may start 8 runs.
4. flush(lines_of="run-id") (a Collection[str] to the type checker) waited for the lines of
   runs named by each of its characters: a read of that run saw none of its queued lines.
5. Output seals stay exact through random interleavings of lines, seals (withdrawn, twice,
   of runs with no lines), events, calls and reads.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

from store.output_seal import output_problem
from tests.store.test_audit_tamper_attacks import Make


def _stored(db_path: Path, run_id: str | None = None) -> int:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        if run_id is None:
            return db.execute("SELECT count(*) FROM output").fetchone()[0]
        return db.execute("SELECT count(*) FROM output WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        db.close()


def test_counting_the_queue_while_a_new_run_gives_a_line_does_not_raise(make_writer: Make
                                                                         ) -> None:
    # Not started: the lines stay queued, so the runs' dict is large and counting it is slow.
    # stats() counts the queue from another thread as the writer's loop does from its own
    # (where the RuntimeError killed the writer).
    w = make_writer(start=False)
    for i in range(2000):
        w.record_output(f"waiting-{i}", "stdout", "x")
    done = threading.Event()

    def new_runs() -> None:
        i = 0
        while not done.is_set():
            w.record_output(f"new-{i}", "stdout", "x")
            i += 1

    producer = threading.Thread(target=new_runs)
    producer.start()
    try:
        for _ in range(3000):
            assert w.stats()["queued"] >= 2000
    finally:
        done.set()
        producer.join()


def test_a_quiet_runs_line_is_stored_under_a_steady_stream_of_commits(make_writer: Make,
                                                                      db_path: Path) -> None:
    w = make_writer()
    w.record_output("quiet", "stdout", "a line nobody reads yet")
    seen = threading.Event()

    def decide(who: int) -> None:  # two at once: a commit is nearly always queued
        for i in range(2500):  # far longer than max_delay in all
            w.commit("approval.decided", run_id="busy", text=f"allow {who}.{i}")
            if seen.is_set():
                return
            if i % 50 == 49 and _stored(db_path, "quiet"):
                seen.set()

    deciders = [threading.Thread(target=decide, args=(k,)) for k in range(2)]
    for t in deciders:
        t.start()
    for t in deciders:
        t.join()
    assert seen.is_set(), (
        "the line waited behind every batch that held a commit: never stored while they came")


def test_many_flooding_runs_hold_a_bounded_number_of_lines(make_writer: Make) -> None:
    w = make_writer(start=False, max_queue=100)  # not started: nothing drains
    floods = [f"flood-{k}" for k in range(10)]
    for i in range(300):
        for run_id in floods:
            w.record_output(run_id, "stdout", f"{run_id} {i}")
    for i in range(3):
        w.record_output("quiet", "stdout", f"quiet {i}")
    queued = w.stats()["queued"]
    assert queued <= 2 * 100, f"{queued} lines held for {len(floods) + 1} runs"
    w.start()
    ends = {r: w.submit("run.ended", run_id=r, data={}, seal_output=True)
            for r in [*floods, "quiet"]}
    quiet = ends.pop("quiet").result(timeout=30)["data"]
    assert quiet["output"]["lines"] == 3 and "output_dropped" not in quiet  # below its share
    for fut in ends.values():  # a flood's own lines dropped, each counted with its end
        data = fut.result(timeout=30)["data"]
        assert data["output"]["lines"] + data["output_dropped"] == 300


def test_a_flush_for_one_run_named_as_text_waits_for_its_lines(make_writer: Make,
                                                                db_path: Path) -> None:
    w = make_writer(max_delay=30.0)  # nothing presses: queued lines wait for the read
    w.record_output("quiet", "stdout", "one line")
    w.flush(lines_of="quiet", searchable=False)
    assert _stored(db_path, "quiet") == 1


def _fuzz_once(seed: int, make_writer: Make, db_path: Path) -> None:
    rnd = random.Random(seed)
    w = make_writer(start=False, max_batch=rnd.choice([1, 3, 7, 50]),
                    max_delay=rnd.choice([0, 0.001]))
    started = rnd.random() < 0.5
    if started:
        w.start()
    runs = ["r1", "r1x", "r2", "r3", "quiet"]  # r1 a prefix of r1x: told apart exactly
    for r in runs:
        w.submit("run.started", run_id=r)
    given = dict.fromkeys(runs, 0)
    seals: list[tuple[Any, bool, int]] = []
    for _ in range(rnd.randint(100, 600)):
        x, r = rnd.random(), rnd.choice(runs[:-1])
        if x < 0.7:
            w.record_output(r, "stdout", f"{r} {given[r]}")
            given[r] += 1
        elif x < 0.8:
            r = rnd.choice(runs)
            fut = w.submit("run.ended", run_id=r, data={}, seal_output=True)
            withdrawn = rnd.random() < 0.3 and fut.cancel()
            seals.append((fut, withdrawn, given[r]))
        elif x < 0.85:
            w.record("run.note", run_id=r)
        elif x < 0.9:
            w.submit("approval.decided", run_id=r)
        elif x < 0.95:
            w.call(lambda db: None)
        elif started:
            w.flush(timeout=30, lines_of=rnd.choice([None, (), [r], ["r"], ["nope"]]),
                    searchable=False)
    if not started:
        w.start()
    w.close(timeout=60)
    first: dict[str, int] = {}
    for fut, withdrawn, before in seals:
        if withdrawn:
            continue
        row = fut.result(0)
        out = row["data"].get("output")
        if row["run_id"] in first:
            assert out is None, (seed, row)  # its end handled twice: the second seals nothing
        else:
            assert out["lines"] == before, (seed, row)  # every line given before it
            first[row["run_id"]] = before
    for r in runs:  # a sealed run stores what its seal counts; lines after it are late
        assert _stored(db_path, r) == first.get(r, given[r]), (seed, r)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert output_problem(db, None) is None, seed
    finally:
        db.close()


def test_seals_match_their_lines_through_random_interleavings(make_writer: Make,
                                                              db_path: Path) -> None:
    for seed in range(20):
        for f in db_path.parent.glob(db_path.name + "*"):
            f.unlink()
        _fuzz_once(seed, make_writer, db_path)
