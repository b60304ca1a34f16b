"""End to end in tmux at 80x24: a request whose title lies is shown with its real command."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap
from tests.tui.test_tmux import Pane

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
    needs_bwrap,
]


@pytest.fixture
def small_pane(daemon: Daemon, tmp_path: Path) -> Iterator[Pane]:
    socket = f"ph-disp-{tmp_path.name}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in daemon.env.items()
                   if k.startswith("PILOTHOUSE_") or k in ("PATH", "HOME"))
    p = Pane(socket, "ph")
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "ph", "-x", "80", "-y", "24",
                    f"env TERM=xterm-256color {env} {BIN / 'pilothouse'}"], check=True, timeout=10)
    try:
        yield p
    finally:
        p.tmux("kill-server")


def test_a_lying_title_is_shown_with_the_real_command(daemon: Daemon, workspace: Path,
                                                      small_pane: Pane) -> None:
    small_pane.wait(lambda s: "attached to daemon" in s, "the console to attach")
    daemon.cli("run", "demo", "-w", str(workspace), "--", "sh", "-c",
               "ph-ask exec --title 'Run the unit tests' -- git push origin main; echo rc=$?")
    screen = small_pane.wait(lambda s: "APPROVAL" in s and "git push origin main" in s,
                             "the banner with the real command")
    small_pane.keys("a")
    card = small_pane.wait(lambda s: "agent says" in s and "git push origin main" in s,
                           "the approval card")
    assert "Run the unit tests" in card
    for line in (screen + card).splitlines():  # the agent's words never stand alone as the request
        if "Run the unit tests" in line:
            assert "agent says" in line or "git push origin main" in line, line
    if os.environ.get("PH_CAPTURE_DIR"):  # for the closing note: the screens as a person saw them
        Path(os.environ["PH_CAPTURE_DIR"], "inbox-lying-title-80x24.txt").write_text(
            screen + "\n--- approval card (a) ---\n" + card)
