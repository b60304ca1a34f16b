"""Review s23: lines of a run's output that a full write queue dropped were never stored, and
`pilothouse logs RUN` (and `run --wait`) showed what was stored as the whole output, with no
word of the hole; only the run's chained end counted them (`output_dropped`, s22). `logs` now
ends with a line saying how many were dropped, and its result carries `output_dropped`.

A real daemon whose store queue holds one row (a sitecustomize in its environment), so a run
printing 3,000 lines at once overflows it every time, as a flood does a full-sized queue."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import daemon_with_sitecustomize

SMALL_QUEUE = '''
from store import writer
_init = writer.StoreWriter.__init__

def __init__(self, *args, **kw):
    kw["max_queue"] = 1
    _init(self, *args, **kw)

writer.StoreWriter.__init__ = __init__
'''
LINES = 3000


def _sealed(db: Path, run_id: str) -> tuple[int, int]:
    """(lines the run's chained end counts as dropped, lines stored)."""
    conn = sqlite3.connect(db)
    try:
        data = conn.execute("SELECT data FROM events WHERE run_id = ? AND kind = 'run.ended'",
                            (run_id,)).fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM output WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()
    return json.loads(data).get("output_dropped", 0), stored


def _logs_result(home: Path, run_id: str) -> dict:
    """The `logs` op's result, as a client other than the CLI reads it."""
    from console.client.sync import Client
    from console.paths import resolve

    with Client(resolve(home), autostart=False) as client:
        return next(payload for kind, payload in client.stream("logs", run=run_id)
                    if kind == "result")


def test_logs_says_how_many_output_lines_were_dropped(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks", SMALL_QUEUE,
                                  '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\n')
    d.start()
    try:
        waited = d.cli("run", "bare", "-w", str(workspace), "--wait", "--", "seq", str(LINES))
        run_id = json.loads(d.cli("ps", "--all", "--json").stdout)[0]["id"]
        dropped, stored = _sealed(home / "data" / "pilothouse.db", run_id)
        assert dropped > 0 and dropped + stored >= LINES, (dropped, stored)
        shown = d.cli("logs", run_id)
        followed = d.cli("logs", run_id, "--follow")
        tail = d.cli("logs", run_id, "--tail", "1")
        answer = _logs_result(home, run_id)
    finally:
        d.stop()
    said = ("1 output line was" if dropped == 1 else f"{dropped} output lines were") + \
        " dropped (the store's queue was full)"
    for name, done in (("logs", shown), ("logs --follow", followed), ("logs --tail 1", tail),
                       ("run --wait", waited)):
        assert said in done.stderr, f"{name} printed {len(done.stdout.splitlines())} lines " \
            f"of {LINES} and said nothing of the {dropped} dropped: {done.stderr!r}"
    assert answer.get("output_dropped") == dropped, answer
    assert len(shown.stdout.splitlines()) == stored  # what is stored, and a word of the rest
