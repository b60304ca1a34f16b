"""A root daemon killed mid-run leaves its run's staged workspace view mounted in the run
folder (close() never ran). The next daemon's start must detach that view before it removes
the lost run's folder: removed first, the folder's deletion went through the mount and
deleted the person's workspace."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from console.paths import resolve
from tests.conftest import Daemon, needs_bwrap

pytestmark = [needs_bwrap,
              pytest.mark.skipif(os.geteuid() != 0, reason="a staged view needs a root daemon")]


def test_a_restart_after_kill9_never_deletes_the_workspace(daemon: Daemon, workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("print('precious')\n")
    run_id = daemon.cli("run", "shell", "-w", str(workspace), "--", "sleep", "60").stdout.split()[-1]
    run_dir = resolve(daemon.home).runs_dir / run_id
    deadline = time.monotonic() + 20
    while str(run_dir / ".view") not in Path("/proc/self/mountinfo").read_text():
        assert time.monotonic() < deadline, daemon.cli("ps", "--all").stdout
        time.sleep(0.05)
    daemon.kill9()  # bwrap dies with it; the staged view stays mounted
    assert str(run_dir / ".view") in Path("/proc/self/mountinfo").read_text()
    daemon.start()
    assert (workspace / "src" / "main.py").read_text() == "print('precious')\n"
    assert (workspace / "README.txt").exists()
    assert str(run_dir) not in Path("/proc/self/mountinfo").read_text()  # detached
    assert not run_dir.exists()  # and the lost run's folder removed
