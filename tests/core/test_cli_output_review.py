"""Review of the quick exit (Group.script, 2026-12-01): what the installed `pilothouse` does
with output nobody can take (stdout closed, a full device, a reader that left early) and with
signals (an agent killed, Ctrl-C), on a real daemon. Statuses are the ones a shell sees."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import BIN, Daemon


def pilothouse(daemon: Daemon, words: list[str], shell_tail: str = ""
               ) -> subprocess.CompletedProcess[str]:
    """The installed program through sh, so `shell_tail` can redirect as a person would."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    return subprocess.run(["sh", "-c", f'"$0" {quoted} {shell_tail}', str(BIN / "pilothouse")],
                          env=daemon.env, capture_output=True, text=True, timeout=60)


def test_with_stdout_closed_run_wait_keeps_the_agents_status_and_logs_says_nothing(
        daemon: Daemon, workspace: Path) -> None:
    # `pilothouse run ... --wait >&-` in a cron line: the output goes nowhere, the status is
    # still the agent's, and nothing is shown as a traceback.
    done = pilothouse(daemon, ["run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                               "seq 1 500; exit 7"], ">&-")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 7, done.stderr
    run_id = daemon.cli("ps", "--all", "--json").stdout.split('"id": "')[1].split('"')[0]
    for words in (["logs", run_id], ["logs", run_id, "-f"]):
        done = pilothouse(daemon, words, ">&-")
        assert "Traceback" not in done.stderr, (words, done.stderr)
        assert done.returncode == 0, (words, done.stderr)


def test_output_onto_a_full_device_is_one_line_and_the_interpreters_status(
        daemon: Daemon, workspace: Path) -> None:
    # What Python does when it cannot write its output (status 120), said in one line that
    # names the cause, never a traceback: as `--help > /dev/full` already does.
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "seq 1 3000")
    run_id = daemon.cli("ps", "--all", "--json").stdout.split('"id": "')[1].split('"')[0]
    for words in (["ps", "--all", "--json"], ["logs", run_id],
                  ["run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                   "seq 1 3000; exit 7"]):
        done = pilothouse(daemon, words, "> /dev/full")
        assert "Traceback" not in done.stderr, (words, done.stderr)
        assert done.returncode == 120, (words, done.returncode, done.stderr)
        assert "No space left on device" in done.stderr, (words, done.stderr)


def test_an_agent_killed_gives_137_and_ctrl_c_gives_130_with_the_output_before_it(
        daemon: Daemon, workspace: Path) -> None:
    done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                      "echo before; kill -9 $$", check=False)
    assert (done.returncode, done.stdout) == (137, "before\n"), done.stderr
    for words in (["run", "shell", "-w", str(workspace), "--wait", "--"],
                  ["logs", "-f"]):
        if words[0] == "logs":
            started = daemon.cli("run", "shell", "-w", str(workspace), "--", "sh", "-c",
                                 "echo tick; while sleep 0.1; do echo tick; done")
            words = [*words, started.stdout.strip()]
        else:
            words = [*words, "sh", "-c", "echo tick; while sleep 0.1; do echo tick; done"]
        # As from a terminal: Ctrl-C at its default. A command started with SIGINT ignored (a
        # `&` job in a script, and so this suite when it was started that way) keeps it
        # ignored, as every Unix program does; env --default-signal undoes that here.
        proc = subprocess.Popen(["env", "--default-signal=INT", str(BIN / "pilothouse"), *words],
                                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "tick\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (words, err)
        assert "Traceback" not in err and set(out.split()) <= {"tick"}, (words, err)
    for run in daemon.cli("ps", "--json").stdout.split('"id": "')[1:]:
        daemon.cli("stop", "--kill", run.split('"')[0], check=False)


def test_a_reader_that_leaves_early_gets_no_noise_and_the_status_stays(
        daemon: Daemon, workspace: Path) -> None:
    # `pilothouse run ... --wait | head -1`: the reader is gone long before the output ends.
    done = pilothouse(daemon, ["run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                               "seq 1 200000"], "| head -1")
    assert done.stdout == "1\n"
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_help_version_and_commands_without_a_daemon_onto_a_full_device(
        daemon: Daemon, tmp_path: Path) -> None:
    """`--version` and `demo-workspace` ended in a traceback onto a full device, and a
    subcommand's `--help` ended 0 having written nothing (argparse drops the error) (review
    s18, CLI)."""
    for words in (["--version"], ["--help"], ["ps", "--help"], ["history", "--help"],
                  ["demo-workspace", str(tmp_path / "demo")]):
        done = pilothouse(daemon, words, "> /dev/full")
        assert "Traceback" not in done.stderr, (words, done.stderr)
        assert done.returncode == 120, (words, done.returncode, done.stderr)
        assert "No space left on device" in done.stderr, (words, done.stderr)
