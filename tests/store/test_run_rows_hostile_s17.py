"""Runs rows the writer never writes (an edited history file): `ps -a` and `report` read them
with a traceback (a start time that is text, a command of numbers, a backend that is NULL),
and `report` of such a run failed inside the daemon. Each column now reads as its type or as
unknown, and the altered row is still listed, so a person can look into it (and `audit
verify` names it)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import Daemon

ODD_RUNS = [
    ("r001", "demo", None, "exited", '["true"]', "/tmp", 1.0, 2.0, 0, "[]", "{}",
     None, None, None, None),
    ("r002", None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    ("r003", "demo", "bwrap", "exited", '{"a":1}', "/tmp", "x", 2.0, "y", "5", "[1]", "a", -1,
     "inf", None),
    ("r004", 5, 6, 7, '[1,2,{"x":[]}]', 8, 1e308, -1e308, 2**62, '"s"', '"t"', None, None,
     None, None),
    ("r005", "demo", "bwrap", "exited", "[" * 5000, "/tmp", b"\x00\xff", None, None,
     "[" * 5000, "{" * 5000, 10**18, 2**63 - 1, 1e308, -1.0),
]


@pytest.fixture
def odd_runs(daemon: Daemon) -> Daemon:
    daemon.stop()
    conn = sqlite3.connect(daemon.home / "data" / "pilothouse.db")
    with conn:
        conn.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * 15)})", ODD_RUNS)
    conn.close()
    daemon.start()
    return daemon


def test_ps_and_report_read_every_altered_run_row(odd_runs: Daemon) -> None:
    listed = odd_runs.cli("ps", "-a", check=False)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    for run_id, *_ in ODD_RUNS:
        assert run_id in listed.stdout
    rows = {r["id"]: r for r in json.loads(odd_runs.cli("ps", "-a", "--json").stdout)}
    assert set(rows) >= {r[0] for r in ODD_RUNS}
    for run_id, *_ in ODD_RUNS:
        row = rows[run_id]
        assert isinstance(row["command"], list) and all(isinstance(w, str) for w in row["command"])
        for col in ("started_at", "ended_at"):
            assert row[col] is None or isinstance(row[col], float)
        done = odd_runs.cli("report", run_id, check=False)
        assert done.returncode == 0, (run_id, done.stderr)
        assert "Traceback" not in done.stderr and run_id in done.stdout
