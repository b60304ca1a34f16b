"""The installed `pilothouse` ends a short command without the interpreter's teardown
(Group.script, issue 17): only after what it wrote is flushed, with the command's exit status,
and never while another thread still runs or for a command not marked @quick_exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, Daemon

# A probe: an exit handler that says whether the interpreter's teardown ran, then the program
# exactly as the installed script calls it.
PROBE = """
import atexit, sys, threading, time
atexit.register(lambda: print("teardown ran", file=sys.stderr, flush=True))
if sys.argv[1] == "thread":
    threading.Thread(target=time.sleep, args=(0.3,)).start()
from console.cli.main import main
sys.argv[0] = "pilothouse"
del sys.argv[1]
sys.exit(main.script())
"""


def probe(tmp_path: Path, *argv: str, thread: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PILOTHOUSE_HOME": str(tmp_path / "no-daemon-here"),
           "PILOTHOUSE_CONFIG": str(tmp_path / "config.toml")}
    (tmp_path / "config.toml").write_text('[profiles.demo]\ncommand = ["true"]\n')
    return subprocess.run([sys.executable, "-c", PROBE, "thread" if thread else "-", *argv],
                          capture_output=True, text=True, env=env, timeout=60)


def test_version_and_help_end_without_the_teardown(tmp_path: Path) -> None:
    done = probe(tmp_path, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, "pilothouse, version 0.1.0")
    assert "teardown ran" not in done.stderr
    done = probe(tmp_path, "--help")
    assert done.returncode == 0 and "commands:" in done.stdout
    assert "teardown ran" not in done.stderr


def test_a_command_not_marked_quick_gets_the_ordinary_exit(tmp_path: Path) -> None:
    # --config: checked here, against the file, so no daemon is started (and left running).
    done = probe(tmp_path, "--config", str(tmp_path / "config.toml"), "policy", "check",
                 "--json", "demo", "--", "ls")
    assert done.returncode == 0 and '"decision"' in done.stdout
    assert "teardown ran" in done.stderr


def test_a_live_thread_gets_the_ordinary_exit(tmp_path: Path) -> None:
    done = probe(tmp_path, "--version", thread=True)
    assert done.stdout.strip() == "pilothouse, version 0.1.0"
    assert "teardown ran" in done.stderr


def test_usage_errors_keep_their_status_and_message(tmp_path: Path) -> None:
    done = probe(tmp_path, "ps", "--no-such-option")
    assert done.returncode == 2
    assert "--no-such-option" in done.stderr and "Traceback" not in done.stderr


def test_a_full_output_device_gives_the_interpreters_status(tmp_path: Path) -> None:
    # What Python itself does when the final flush of stdout fails: status 120, not 0.
    with open("/dev/full", "w") as full:
        done = subprocess.run([str(BIN / "pilothouse"), "--help"], stdout=full, text=True,
                              stderr=subprocess.PIPE, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PILOTHOUSE_HOME": str(tmp_path)})
    assert done.returncode == 120, done.stderr


def test_run_wait_flushes_all_output_and_keeps_the_agents_status(daemon: Daemon,
                                                                 workspace: Path) -> None:
    # 20,000 lines fill the stdout buffer many times over; the last ones are still in it when
    # the command returns, so a quick exit that skipped the flush would lose them.
    done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                      "seq 1 20000; exit 7", check=False)
    assert done.returncode == 7, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 20000 and lines[-1] == "20000"
