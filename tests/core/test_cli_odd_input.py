"""Review of the argparse CLI against the click one it replaced (2026-12-01): words click took
that must still work, and output to a closed stdout or a closed pipe without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from console.cli.parsing import argument, group, option
from tests.conftest import BIN, Daemon
from tests.core.cli_invoke import invoke


@group("toy", alone=True)
def toy() -> None:
    """A toy."""


@toy.command("run")
@argument("profile")
@argument("words", nargs="*")
@option("--workspace", "-w", metavar="DIR")
def toy_run(profile: str, words: list[str], workspace: str | None) -> None:
    """Start PROFILE."""
    print(json.dumps([profile, words, workspace]))


@toy.command("logs")
@argument("run_id", metavar="RUN")
@option("--tail", "-n", type=int, default=0)
def toy_logs(run_id: str, tail: int) -> None:
    """Show RUN."""
    print(json.dumps([run_id, tail]))


def _toy(*words: str) -> object:
    done = invoke(toy, list(words))
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_double_dash_before_the_first_argument_still_ends_the_options() -> None:
    """click took `run -- demo ls` (as `pilothouse run -- PROFILE CMD...`) and `logs -- -x`
    (an argument that starts with a dash); argparse's intermixed parse drops them."""
    assert _toy("run", "--", "demo", "ls", "-la") == ["demo", ["ls", "-la"], None]
    assert _toy("run", "-w", "ws", "--", "demo") == ["demo", [], "ws"]
    assert _toy("logs", "--", "-x") == ["-x", 0]
    assert _toy("logs", "-n", "3", "--", "-x") == ["-x", 3]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PILOTHOUSE_HOME": str(tmp_path / "home")}


def test_help_and_version_into_a_closed_pipe_say_nothing_and_exit(tmp_path: Path) -> None:
    """`pilothouse --help | head -0`: the reader is gone. click exited without a traceback."""
    for words in (["--help"], ["--version"]):
        read, write = os.pipe()
        os.close(read)  # nobody reads: every write gets EPIPE
        try:
            done = subprocess.run([str(BIN / "pilothouse"), *words], stdout=write,
                                  stderr=subprocess.PIPE, text=True, env=_env(tmp_path),
                                  timeout=60)
        finally:
            os.close(write)
        assert "Traceback" not in done.stderr, (words, done.stderr)


def test_help_and_version_with_stdout_closed_give_no_traceback(tmp_path: Path) -> None:
    """`pilothouse --version >&-` (a cron line, a service without stdout): sys.stdout is None."""
    for words in ("--help", "--version"):
        done = subprocess.run(["sh", "-c", f'exec "$0" {words} >&-', str(BIN / "pilothouse")],
                              stderr=subprocess.PIPE, text=True, env=_env(tmp_path), timeout=60)
        assert "Traceback" not in done.stderr, (words, done.stderr)
        assert done.returncode in (0, 1), done.returncode


def test_an_argument_that_is_not_utf8_is_refused_without_a_traceback(daemon: Daemon) -> None:
    """`pilothouse logs $'\\xff'` (a byte a shell passed through): Python hands it over as a
    lone surrogate, which neither the daemon's protocol (JSON in UTF-8) nor SQLite can carry.
    The person must be told, not shown a UnicodeEncodeError traceback."""
    for words in (["logs", b"\xff".decode("utf-8", "surrogateescape")],
                  ["history", "--search", "a\udcffb"],
                  ["trace", "list", "--run", "\udcff"]):
        done = subprocess.run([str(BIN / "pilothouse"), *words], env=daemon.env,
                              capture_output=True, timeout=60)
        err = done.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err, (words, err)
        assert done.returncode in (1, 2) and "UTF-8" in err, (words, err)


def test_an_export_to_a_place_that_cannot_be_written_says_so(daemon: Daemon, tmp_path: Path) -> None:
    """`export -o` and `trace export -o` into a missing folder or onto a folder: one line that
    names the file and why, exit 1, no FileNotFoundError/IsADirectoryError traceback."""
    for words in (["export", "-o", str(tmp_path / "missing" / "x.jsonl")],
                  ["export", "--format", "csv", "-o", str(tmp_path)]):
        done = subprocess.run([str(BIN / "pilothouse"), *words], env=daemon.env,
                              capture_output=True, text=True, timeout=60)
        assert "Traceback" not in done.stderr, (words, done.stderr)
        assert done.returncode == 1 and f"cannot write {words[-1]}" in done.stderr, done.stderr


def test_a_folder_whose_path_is_not_utf8_is_named_as_the_cause(daemon: Daemon,
                                                               tmp_path: Path) -> None:
    """`run` sends the folder it is started in: from one named with a byte that is not UTF-8
    the hint must say so, not only blame the arguments (s44)."""
    odd = os.fsencode(tmp_path) + b"/ws-\xff"
    os.mkdir(odd)
    done = subprocess.run([str(BIN / "pilothouse"), "run", "shell", "--", "/bin/true"],
                          env=daemon.env, capture_output=True, timeout=60, cwd=odd)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "Traceback" not in err, err
    assert "from a folder whose path is UTF-8" in err, err
