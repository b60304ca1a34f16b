"""End to end in a real terminal: the console in tmux, a run that asks, keys sent to the pane."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
    needs_bwrap,
]


class Pane:
    def __init__(self, socket: str, name: str) -> None:
        self.socket, self.name = socket, name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              timeout=10).stdout

    def text(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)  # escape followed at once by a key would read as alt+key

    def wait(self, test: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.text()
            if test(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


@pytest.fixture
def pane(daemon: Daemon, tmp_path: Path) -> Iterator[Pane]:
    socket = f"ph-test-{tmp_path.name}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in daemon.env.items()
                   if k.startswith("PILOTHOUSE_") or k in ("PATH", "HOME"))
    command = f"env TERM=xterm-256color {env} {BIN / 'pilothouse'}"
    p = Pane(socket, "ph")
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "ph", "-x", "120", "-y", "40",
                    command], check=True, timeout=10)
    try:
        yield p
    finally:
        p.tmux("kill-server")


def test_approve_in_a_real_terminal(daemon: Daemon, workspace: Path, pane: Pane) -> None:
    pane.wait(lambda s: "attached to daemon" in s, "the console to attach")
    run_id = daemon.cli("run", "demo", "-w", str(workspace), "--", "sh", "-c",
                        "ph-ask exec -- pytest -q; echo rc=$?").stdout.strip()
    screen = pane.wait(lambda s: "APPROVAL" in s and "pytest -q" in s and "1 pending" in s,
                       "the approval banner")
    assert run_id in screen
    pane.keys("a")
    pane.wait(lambda s: "why it asks" in s and 'rule "pytest" (ask)' in s, "the approval view")
    pane.keys("y")
    screen = pane.wait(lambda s: any(run_id in line and "exited (0)" in line for line in s.splitlines()),
                       "the run to show exited")
    assert "APPROVAL" not in screen
    pane.keys("enter")
    pane.wait(lambda s: "rc=0" in s, "the run's output")
    pane.keys("q")
