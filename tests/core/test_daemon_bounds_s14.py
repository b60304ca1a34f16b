"""Three daemon bounds that were missing (s14): `runs.list`'s limit, a stalled reader on
operator.sock, and the rate of one run's asks on agent.sock. Each first test failed on
557ad2a (/work/notes/bounds-s14-before.txt).

Real daemons on temporary homes, real sockets, SQLite and bubblewrap. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import Daemon

RUNS_LIST_MAX = 1000  # docs/protocol.md: runs.list answers at most this many runs

# --- runs.list ----------------------------------------------------------------------------------


def _ended_runs(home: Path, n: int) -> None:
    """n ended runs in the store's runs table, as a long-lived daemon's history holds them."""
    db = sqlite3.connect(resolve(home).db_file)
    now = time.time()
    with db:
        db.executemany(
            "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at, "
            "ended_at, exit_code, pids, info) VALUES (?, 'demo', 'bubblewrap', 'exited', "
            "'[\"true\"]', '/tmp', ?, ?, 0, '[]', '{}')",
            [(f"old{i:05d}", now - 10_000 + i, now - 10_000 + i + 1) for i in range(n)])
    db.close()


def test_runs_list_refuses_a_limit_below_one_and_caps_a_huge_one(
        home: Path, daemon_env: dict[str, str]) -> None:
    """`runs.list` read `limit` runs whatever it was: limit=10**9 made the daemon read and
    serialize every run ever (any watcher may ask), and 0 or -5 quietly listed no ended run.
    Secure: at most RUNS_LIST_MAX rows, and a limit below 1 is a bad-args error that says so."""
    d = Daemon(home, daemon_env)
    d.start()
    d.stop()
    _ended_runs(home, RUNS_LIST_MAX + 5)
    d.start()
    try:
        with Client(resolve(home), autostart=False) as client:
            huge = client.call("runs.list", all=True, limit=10**9)
            assert len(huge) == RUNS_LIST_MAX, len(huge)
            assert len(client.call("runs.list", all=True, limit=7)) == 7
            for bad in (0, -5):
                with pytest.raises(ClientError) as caught:
                    client.call("runs.list", all=True, limit=bad)
                assert caught.value.code == "bad-args", caught.value
                assert f"limit must be between 1 and {RUNS_LIST_MAX}" in caught.value.message
        rows = json.loads(d.cli("ps", "-a", "--limit", "3", "--json").stdout)
        assert len(rows) == 3, rows
        capped = json.loads(d.cli("ps", "-a", "--limit", "5000", "--json").stdout)
        assert len(capped) == RUNS_LIST_MAX
        for bad in ("0", "-1", "many"):
            out = d.cli("ps", "-a", "--limit", bad, check=False)
            assert out.returncode == 2, out
            assert "--limit" in out.stderr and "Traceback" not in out.stderr, out.stderr
    finally:
        d.stop()
