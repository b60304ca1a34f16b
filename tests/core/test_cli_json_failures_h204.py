"""With --json a failure is one JSON object, the last line of stdout (review h204).

Before, every failure went to stderr as prose only: a script reading stdout got nothing it could
parse, and told a missing daemon from a refused decision by matching English. Now, with --json,
stdout ends with the object the daemon answers a failure with, `{"ok": false, "error": {"code",
"message", "hint"[, "data"]}}`, the exit status stays non-zero, and stderr keeps its lines for a
person. Real CLI, real daemon (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, ensure_group, ensure_user
from tests.core.failing_store import store_failing
from tests.core.test_team import GROUP, OUTSIDER, as_user


def _failure(done: subprocess.CompletedProcess[str], code: str, status: int = 1) -> dict:
    """The error object a --json failure ends stdout with, checked for its shape."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert lines, f"nothing on stdout; stderr: {done.stderr}"
    said = json.loads(lines[-1])
    assert said["ok"] is False, said
    error = said["error"]
    assert error["code"] == code, error
    assert error["message"] and isinstance(error["hint"], str), error
    assert error["message"].split("\n")[0] in done.stderr, (error, done.stderr)  # a person too
    return error


def test_no_daemon_and_bad_words_are_json(daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = Daemon(tmp_path / "ph-home", daemon_env)  # never started: nothing answers
    error = _failure(d.cli("reload", "--json", check=False), "no-daemon")
    assert "pilothouse daemon" in error["hint"], error
    for args, hint in ((["ps", "--json", "--bogus"], "see pilothouse ps --help"),
                       (["stop", "--json"], "see pilothouse stop --help"),
                       (["history", "--json", "--since", "soon"], "see pilothouse history --help"),
                       (["ps", "--limit", "0", "--json"], "see pilothouse ps --help"),
                       (["--json", "ps"], "see pilothouse --help")):
        error = _failure(d.cli(*args, check=False), "bad-args", status=2)
        assert error["hint"] == hint, (args, error)
    # Without --json, stdout stays empty: the person's text is on stderr as before.
    plain = d.cli("ps", "--bogus", check=False)
    assert plain.returncode == 2 and plain.stdout == "", plain
    assert "unrecognized arguments: --bogus" in plain.stderr, plain.stderr


def test_the_daemons_refusal_is_its_own_object(daemon: Daemon) -> None:
    error = _failure(daemon.cli("stop", "--json", "nosuch", check=False), "no-such-run")
    assert error["message"] == "no live run 'nosuch'" and "pilothouse ps" in error["hint"], error
    _failure(daemon.cli("report", "--json", "nosuch", check=False), "no-such-run")
    plain = daemon.cli("stop", "nosuch", check=False)
    assert plain.returncode == 1 and plain.stdout == "", plain


def test_a_store_that_fails_is_json(daemon: Daemon) -> None:
    config = Path(daemon.env["PILOTHOUSE_CONFIG"])
    with store_failing(daemon):
        config.write_text('[profiles.later]\ncommand = ["sh"]\n')
        error = _failure(daemon.cli("reload", "--json", check=False), "record-failed")
    assert "could not be recorded" in error["message"] and "doctor" in error["hint"], error
    # The CLI's own reading of a store (replay.db) fails the same way.
    (daemon.home / "data" / "replay.db").write_text("not a database, " * 100)
    error = _failure(daemon.cli("replay-report", "--json", check=False), "store-failed")
    assert "move that file aside" in error["hint"], error


@pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")
def test_a_refused_user_is_told_in_json(home: Path, daemon_env: dict[str, str]) -> None:
    ensure_group(GROUP)
    ensure_user(OUTSIDER, "--no-create-home", "--shell", "/usr/sbin/nologin")
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\n')
    for parent in (home / "run").parents:  # a teammate must reach the runtime folder
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        assert pwd.getpwnam(OUTSIDER)
        error = _failure(as_user(OUTSIDER, d, "ps", "--json"), "not-allowed")
        assert "permission denied" in error["message"] and "[team]" in error["hint"], error
    finally:
        d.stop()


def test_ctrl_c_is_json(daemon: Daemon) -> None:
    watch = subprocess.Popen([str(BIN / "pilothouse"), "gpu", "--watch", "--json"],
                             env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())  # it is watching: one snapshot is out
    assert "available" in first, first
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=30)
    done = subprocess.CompletedProcess(watch.args, watch.returncode, out, err)
    assert done.returncode == 130 and "Traceback" not in err, (out, err)
    said = json.loads(out.splitlines()[-1])
    assert said["ok"] is False and said["error"]["code"] == "interrupted", said
    assert err == "", err  # a person pressed it: nothing said to them, as before


def _in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path,
                words: list[str], where: str, error: BaseException) -> tuple[int | None, str]:
    """The CLI's group run on `words` in this process, `where` (a name the words pass through)
    raising `error`: the exit status (None: the error went on) and stdout's last line. A home
    of its own: a call that got past `where` must not start a daemon in the person's."""
    from console.cli.main import main

    monkeypatch.setenv("PILOTHOUSE_HOME", str(home))

    def raise_it(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(where, raise_it)
    status: int | None = None
    try:
        main(words)
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 1
    except type(error):
        status = None
    lines = capsys.readouterr().out.splitlines()
    return status, lines[-1] if lines else ""


def test_ctrl_c_while_the_words_are_read_is_json(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """Before a command's @friendly runs (its words still being read) Ctrl-C exited 130 with no
    object: a script saw an empty stdout (closing note s46)."""
    status, last = _in_process(monkeypatch, capsys, tmp_path, ["ps", "--json"],
                               "console.cli.parsing.Command.run", KeyboardInterrupt())
    assert status == 130, status
    assert last and json.loads(last)["error"]["code"] == "interrupted", last


def test_a_bug_is_a_traceback_and_with_json_an_object(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    """A bug (an exception nobody expected) stays a traceback for the person, and a script
    asking --json gets an `internal` object instead of nothing (closing note s46)."""
    status, last = _in_process(monkeypatch, capsys, tmp_path, ["ps", "--json"],
                               "console.cli.parsing.Command.run", RuntimeError("a bug"))
    assert status is None, "the bug's exception did not go on to its traceback"
    said = json.loads(last)["error"] if last.startswith("{") else {}
    assert said.get("code") == "internal" and "RuntimeError: a bug" in said["message"], last
