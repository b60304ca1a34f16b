"""The person's connection closes while `run.start` is under way (Ctrl-C on `pilothouse run`,
SSH lost). The daemon cancelled the connection's operations (console/daemon/server.py
`_session`), and RunManager._start handled failures, not cancellation: runs stayed "starting"
for good, and after `daemon stop` a staged workspace view stayed mounted. A start now runs to its
end (the run is listed, and a stop ends it). Found by an attack review."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap, read_until


def _start_and_go_away(d: Daemon, ws: Path, delay: float) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(d.sock))
    s.sendall(json.dumps({"v": 1, "id": 1, "op": "run.start", "args": {
        "profile": "demo", "workspace": str(ws), "command": ["sh", "-c", "sleep 300"],
        "cwd": str(ws)}}).encode() + b"\n")
    time.sleep(delay)
    s.close()


def _runs_until(d: Daemon, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """`ps` once `done` holds for its runs, or as it is after 30 s."""
    return read_until(lambda: json.loads(d.cli("ps", "--json").stdout), done, timeout=30)


def _handoff_mounts(run_ids: list[str]) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [ln.split()[4] for ln in lines
            if "pilothouse-handoff" in ln and any(f"/{r}-" in ln for r in run_ids)]


@needs_bwrap
def test_a_start_cut_short_leaves_no_run_stuck_or_mounted(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        delays = (0.005, 0.02, 0.05, 0.1, 0.2)
        for delay in delays:
            _start_and_go_away(d, workspace, delay)
        # Each start runs to its end: wait until all of them are running (a start stuck in
        # "starting" never gets there, and is named below once the deadline has passed).
        live = _runs_until(d, lambda runs: len(runs) >= len(delays) and all(
            r["state"] == "running" for r in runs))
        stuck = [r["id"] for r in live if r["state"] != "running"]
        for r in live:
            d.cli("stop", r["id"], check=False)
        left = [(r["id"], r["state"]) for r in _runs_until(d, lambda runs: not runs)]
        d.stop()
        mounts = _handoff_mounts(stuck)
        assert not stuck and not left, (f"stuck: {stuck}; listed after stop: {left}; "
                                        f"mounted after daemon stop: {mounts}")
        assert not mounts, mounts
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        d.start()  # a fresh start's reconcile detaches what the last one left mounted
        d.stop()
    assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                if "pilothouse-handoff" in ln and str(home) in ln]
