"""The runs table as the run manager writes it (store/runs_table.py), through the real writer
on a real database: upsert, the live rows a restarted daemon finds, and marking them lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from store.db import open_db
from store.runs_table import mark_lost, run_ids, runs_in_states, upsert_run
from store.writer import StoreWriter


def _row(run_id: str, state: str, pids: list[int]) -> dict:
    return {"id": run_id, "profile": "demo", "state": state, "backend": "bwrap",
            "command": json.dumps(["true"]), "workspace": "/w", "started_at": 1.0,
            "ended_at": None, "exit_code": None, "pids": json.dumps(pids), "info": "{}"}


def test_upsert_finds_live_runs_and_marks_them_lost(make_writer: Callable[..., StoreWriter],
                                                    db_path: Path) -> None:
    w = make_writer()
    w.call(lambda conn: upsert_run(conn, _row("ab12", "starting", []))).result(10)
    w.call(lambda conn: upsert_run(conn, _row("ab12", "running", [41, 42]))).result(10)
    w.call(lambda conn: upsert_run(conn, _row("cd34", "exited", []))).result(10)
    # A start recorded without a row (the daemon stopped between the two) holds its id too.
    w.commit("run.started", run_id="ef56", text="demo in bwrap: true")
    assert w.call(run_ids).result(10) == {"ab12", "cd34", "ef56"}
    live = w.call(lambda conn: runs_in_states(conn, ("starting", "running"))).result(10)
    assert live == [("ab12", "[41, 42]")]
    w.call(lambda conn: mark_lost(conn, "ab12", 5.0)).result(10)
    w.close()
    db = open_db(db_path, readonly=True)
    assert db.execute("SELECT state, ended_at FROM runs WHERE id = 'ab12'").fetchone() == ("lost", 5.0)
    assert db.execute("SELECT count(*) FROM runs").fetchone() == (2,)
