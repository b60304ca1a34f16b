"""Review s23: `audit verify` compared a `runs` row's start, end, state and exit code with the
run's chained events, but not its token totals (what `report`, `gpu` and the console show):
tokens_in / tokens_out edited in the file, up (a run billed for another's use) or down (use
hidden), passed verify. The GPU service sums the run's chained `tokens` events (each stored
before it is counted), and the run's end now keeps the row's totals as it ended
(`tokens_at_end`: they only grow after). verify names a row above the events' sum, or below
what its end recorded, with the run and the field."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from store.runs_table import upsert_run, write_run_totals
from store.writer import StoreWriter
from tests.conftest import Daemon, needs_bwrap
from tests.store.test_audit_tamper_attacks import Make, _sql, _verify

USES = [{"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        {"prompt_tokens": 50, "completion_tokens": None, "total_tokens": 80}]  # 30 by the total
TOKENS_IN, TOKENS_OUT = 150, 50  # what the GPU service counts of USES


def start_run(w: StoreWriter, rid: str, now: float) -> None:
    """A run's recorded start (5 s ago) and its row, as the run manager makes them."""
    w.commit("run.started", run_id=rid, actor="alice", text="shell in bwrap: sh",
             data={"profile": "shell", "backend": "bwrap", "workspace": "/w", "command": ["sh"],
                   "unsandboxed": False, "started_at": now - 5}, ts=now - 5)
    w.call(lambda db: upsert_run(db.conn, {
        "id": rid, "profile": "shell", "backend": "bwrap", "state": "running",
        "command": '["sh"]', "workspace": "/w", "started_at": now - 5, "ended_at": None,
        "exit_code": None, "pids": "[]",
        "info": json.dumps({"actor": "alice", "notes": []})})).result(10)


def end_row(w: StoreWriter, rid: str, now: float) -> None:
    """The run's row as the run manager leaves it at an exit 0, before the end is recorded."""
    w.call(lambda db: db.conn.execute(
        "UPDATE runs SET state = 'exited', exit_code = 0, ended_at = ? WHERE id = ?",
        (now, rid))).result(10)


def _metered_run(make_writer: Make, witness: Path, rid: str = "r1", *,
                 dropped: dict | None = None, energy_j: float = 0.0) -> dict:
    """A run that made the metered calls USES (and `dropped`, which a full queue drops), its
    totals stored as the GPU service counts them, and its end recorded: the end's data."""
    now = time.time()
    # One row queued at a time, taken only when flushed: the second row offered is dropped.
    w = make_writer(witness=witness, max_queue=1, max_delay=30.0)
    start_run(w, rid, now)
    counted = [TOKENS_IN, TOKENS_OUT]
    for use in USES:
        w.record("tokens", run_id=rid, text="127.0.0.1:8000", data=use)
        if dropped is not None:
            w.record("tokens", run_id=rid, text="127.0.0.1:8000", data=dropped)
            counted = [counted[0] + dropped["prompt_tokens"],
                       counted[1] + dropped["completion_tokens"]]
            dropped = None
        w.flush()
    assert w.stats()["dropped"] == (0 if counted == [TOKENS_IN, TOKENS_OUT] else 1)
    w.call(lambda db: write_run_totals(db.conn, [(*counted, energy_j, 0.0, rid)], [])).result(10)
    end_row(w, rid, now)
    ended = w.commit("run.ended", run_id=rid, text="exited (exit 0)",
                     data={"state": "exited", "exit_code": 0, "ended_at": now, "notes": []},
                     seal_output=True)
    w.flush()
    w.close()
    return ended["data"]


def test_edited_token_totals_are_named_by_verify(make_writer: Make, db_path: Path, key: bytes,
                                                 witness: Path) -> None:
    end = _metered_run(make_writer, witness)
    clean = _verify(db_path, key, witness)
    assert clean.ok, clean.reason
    edits = [("tokens_in", "UPDATE runs SET tokens_in = 1000000 WHERE id = 'r1'"),  # billed
             ("tokens_out", "UPDATE runs SET tokens_out = 51 WHERE id = 'r1'"),
             ("tokens_in", "UPDATE runs SET tokens_in = 0 WHERE id = 'r1'"),  # hidden
             ("tokens_out", "UPDATE runs SET tokens_out = 3 WHERE id = 'r1'")]
    for field, sql in edits:
        _sql(db_path, sql)
        result = _verify(db_path, key, witness)
        assert not result.ok and "r1" in result.reason and field in result.reason, (
            f"{sql}: verify says {result.reason!r}")
        _sql(db_path, "UPDATE runs SET tokens_in = ?, tokens_out = ? WHERE id = 'r1'",
             params=(TOKENS_IN, TOKENS_OUT))
    assert _verify(db_path, key, witness).ok
    assert end.get("tokens_at_end") == {"tokens_in": TOKENS_IN, "tokens_out": TOKENS_OUT}, end


def test_counts_of_tokens_events_the_store_dropped_are_no_false_alarm(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    """A full queue dropped a `tokens` event the GPU service counted anyway (the bus brings it
    either way): the row is above the stored events' sum, and the chained store.dropped note
    since the run's start says why."""
    _metered_run(make_writer, witness, dropped=USES[0])
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason


AGENT = """
import json, sys, urllib.request
body = json.dumps({"model": "MODEL", "messages": [{"role": "user", "content": "fix the bug"}],
                   "max_tokens": 12, "stream": True,
                   "stream_options": {"include_usage": True}}).encode()
for _ in range(2):
    req = urllib.request.Request(sys.argv[1] + "/chat/completions", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
print("agent done")
"""


@needs_bwrap
def test_a_real_metered_run_verifies_and_its_inflated_row_does_not(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A real daemon, a real sandboxed agent calling a local model through its gate: its row's
    totals pass verify as the GPU service wrote them, and not once raised in the file."""
    with metered_daemon(home, daemon_env, tmp_path) as (d, agent_run):
        agent_run()
        db = home / "data" / "pilothouse.db"
        conn = sqlite3.connect(db)
        try:
            rid, tin, tout = conn.execute("SELECT id, tokens_in, tokens_out FROM runs").fetchone()
            deadline = time.monotonic() + 60  # the row settles within the service's period
            while (tin, tout) != _summed(conn, rid):
                assert time.monotonic() < deadline, ((tin, tout), _summed(conn, rid))
                time.sleep(0.2)
                tin, tout = conn.execute("SELECT tokens_in, tokens_out FROM runs").fetchone()
        finally:
            conn.close()
        assert tin > 0 and tout > 0, (tin, tout)
        clean = json.loads(d.cli("audit", "verify", "--json", check=False).stdout)
        assert clean["ok"], clean
        _sql(db, f"UPDATE runs SET tokens_out = {tout * 10} WHERE id = '{rid}'")
        tampered = json.loads(d.cli("audit", "verify", "--json", check=False).stdout)
    assert not tampered["ok"] and rid in tampered["reason"] and "tokens_out" in tampered["reason"], (
        tampered)


@contextlib.contextmanager
def metered_daemon(home: Path, daemon_env: dict[str, str], tmp_path: Path
                   ) -> Iterator[tuple[Daemon, Callable[[], None]]]:
    """A real daemon whose shell profile reaches a scripted model through its gate (metered),
    and a function that runs AGENT (two metered calls) in a sandbox to its end."""
    from tests.replay.model_server import MODEL, ScriptedModel

    model = ScriptedModel(itl_s=0.001)
    (home / "config.toml").write_text(
        f'[gate]\ninference = ["127.0.0.1:{model.port}"]\n\n'
        f'[profiles.shell.network]\nallow = ["127.0.0.1:{model.port}"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "agent.py").write_text(AGENT.replace("MODEL", MODEL))

    def agent_run() -> None:
        done = d.cli("run", "shell", "-w", str(ws), "--wait", "--", "python3",
                     "/workspace/agent.py", f"http://127.0.0.1:{model.port}/v1", check=False,
                     timeout=120)
        assert done.returncode == 0 and "agent done" in done.stdout, done.stdout + done.stderr

    try:
        yield d, agent_run
    finally:
        d.stop()
        model.close()


def _summed(conn: sqlite3.Connection, rid: str) -> tuple[int, int]:
    """The run's recorded tokens events, added up (prompt, completion)."""
    rows = conn.execute("SELECT data FROM events WHERE kind = 'tokens' AND run_id = ?", (rid,))
    uses = [json.loads(data) for (data,) in rows]
    return (sum(u.get("prompt_tokens") or 0 for u in uses),
            sum(u.get("completion_tokens") or 0 for u in uses))
