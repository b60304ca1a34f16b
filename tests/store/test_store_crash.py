"""kill -9 in the middle of a burst: the database is intact and every acknowledged security
event is there, in a chain that verifies."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from store.audit import load_or_create_key, verify
from store.db import open_db
from store.writer import StoreWriter

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[2]


def test_sigkill_mid_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db_path, key_path = tmp_path / "history.db", tmp_path / "audit.key"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, str(CHILD), str(db_path), str(key_path)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    assert child.stdout is not None
    acked: list[int] = []
    try:
        assert child.stdout.readline().strip() == "ready"
        for line in child.stdout:
            if line.strip() == "done":
                break
            acked.append(int(line))
            if len(acked) == 200:  # a fifth of the way through the burst
                os.kill(child.pid, signal.SIGKILL)
                break
        # ids printed before the kill landed in the pipe were acknowledged too
        acked += [int(x) for x in child.stdout.read().split() if x.isdigit()]
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    assert len(acked) >= 200

    conn = sqlite3.connect(db_path)  # recovers the WAL, as the next daemon start would
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
    conn.execute("INSERT INTO output_fts(output_fts, rank) VALUES ('integrity-check', 1)")
    marks = ",".join("?" * len(acked))
    found = conn.execute(f"SELECT count(*) FROM events WHERE kind = 'sec.test' AND id IN ({marks})",
                         acked).fetchone()[0]
    assert found == len(acked)
    conn.close()

    key = load_or_create_key(key_path)
    reader = open_db(db_path, readonly=True)
    result = verify(reader, key)
    assert result.ok, result
    assert result.checked >= max(acked)
    # and the next writer carries on from there
    writer = StoreWriter(db_path, key).start()
    assert writer.commit("daemon.started")["id"] == result.checked + 1
    writer.close()
    assert verify(reader, key).ok
    reader.close()
