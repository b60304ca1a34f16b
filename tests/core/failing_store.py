"""Shared by the tests of a failing store: make the daemon's store fail (RLIMIT_FSIZE at the audit
witness's length, as tests/core/test_run_end_unrecorded.py does) and put it back."""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Daemon


@contextlib.contextmanager
def store_failing(d: Daemon) -> Iterator[None]:
    witness = next(d.home.rglob("audit.witness"))
    assert d.proc is not None
    _, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (witness.stat().st_size, hard))
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # a daemon that stopped meanwhile
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))


def wait_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def wait_running(d: Daemon, run_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        live = {r["id"]: r for r in json.loads(d.cli("ps", "--json").stdout)}
        if live.get(run_id, {}).get("state") == "running":
            return
        assert time.monotonic() < deadline, f"run {run_id} not running: {live}"
        time.sleep(0.1)


def start_run(d: Daemon, profile: str, ws: Path, script: str) -> str:
    out = d.cli("run", profile, "-w", str(ws), "--", "sh", "-c", script)
    run_id = out.stdout.split()[-1]
    wait_running(d, run_id)
    return run_id
