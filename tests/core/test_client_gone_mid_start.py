"""The person's connection closes while `run.start` is under way (Ctrl-C on `pilothouse run`,
SSH lost). The daemon cancelled the connection's operations (console/daemon/server.py
`_session`), and RunManager._start handled failures, not cancellation: runs stayed "starting"
for good, and after `daemon stop` a staged workspace view stayed mounted. A start now runs to its
end (the run is listed, and a stop ends it). Found by an attack review."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap


def _start_and_go_away(d: Daemon, ws: Path, delay: float) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(d.sock))
    s.sendall(json.dumps({"v": 1, "id": 1, "op": "run.start", "args": {
        "profile": "demo", "workspace": str(ws), "command": ["sh", "-c", "sleep 300"],
        "cwd": str(ws)}}).encode() + b"\n")
    time.sleep(delay)
    s.close()


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
        for delay in (0.005, 0.02, 0.05, 0.1, 0.2):
            _start_and_go_away(d, workspace, delay)
        time.sleep(5)
        live = json.loads(d.cli("ps", "--json").stdout)
        stuck = [r["id"] for r in live if r["state"] != "running"]
        for r in live:
            d.cli("stop", r["id"], check=False)
        time.sleep(3)
        left = [(r["id"], r["state"]) for r in json.loads(d.cli("ps", "--json").stdout)]
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
