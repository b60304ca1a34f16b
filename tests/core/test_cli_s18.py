"""Review s18 of the CLI: inputs a person gives by mistake, or copies from somewhere hostile,
that got a traceback, raw terminal control sequences, or a silently wrong answer.

- A PILOTHOUSE_HOME the CLI cannot use (a file, a folder that cannot be made, a path too long
  for a unix socket) gave every command a NotADirectoryError / "AF_UNIX path too long" /
  FileNotFoundError traceback.
- A usage error ("unrecognized arguments: ...") wrote the words as given: an escape sequence in
  them (an id copied from an agent's output) reached the terminal raw.
- `history --decision denied` (a typo of deny) answered "no events match", exit 0: the person
  reads that nothing was denied.
- `run PROFILE -w ""` (an unset "$WS") started the agent in the current folder, as if no
  workspace had been named.
- `reload` printed its diff raw: a rule's words may be an agent's.
- `approve ID --scope profile --json` at a terminal asked "save these rules?" without showing
  them (--json hides the preview), and wrote the question into the JSON on stdout.
- `pilothouse` (the console) without a terminal (a script, cron, `| tee`) drew its screen into
  the pipe and never ended.
- With standard input closed (`<&-`), `approve`, `deny` and the console stopped on
  "'NoneType' object has no attribute 'isatty'", a traceback.
- `replay-report` on a damaged replay.db (not a database, a folder) gave a sqlite3 traceback.
- `logs` and `run --wait` at a terminal passed a run's colours with NO_COLOR set.
- A PILOTHOUSE_HOME that is not UTF-8 (a Latin-1 home folder) started a daemon that could not
  answer (its answers name its files): every command hung; a PILOTHOUSE_CONFIG that is not
  UTF-8 made every command fail "inside the daemon".
- `logs -f -s TEXT RUN` printed the stored matches once and ended: --follow was dropped unsaid.
- With standard output a non-blocking pipe (a parent such as node sets O_NONBLOCK), what did not
  fit in the pipe at once was dropped without a word (CPython's behaviour), exit 0: `logs`
  and `export` gave part of the output as if it were all.

The real CLI as a subprocess, a real daemon on a temporary home. Nothing leaves the machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import termios
from pathlib import Path

import pytest

from tests.approvals.terminal import at_a_terminal
from tests.conftest import BIN, Daemon
from tests.core.test_approvals_e2e import background, wait_pending

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


def _cli(env: dict[str, str], *words: str, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pilothouse"), *words], env=env, capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def _stdin_closed(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    """`pilothouse WORDS <&-`: Python starts with sys.stdin None."""
    return subprocess.run(["sh", "-c", 'exec "$0" "$@" <&-', str(BIN / "pilothouse"), *words],
                          env=env, capture_output=True, text=True, timeout=30)


def _kill_daemon_of(home: Path) -> None:
    """A daemon the CLI started in `home` where the test expected none (before a fix)."""
    pid_file = home / "run" / "daemon.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _env_with_home(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    return {**env, "PILOTHOUSE_HOME": home, "PILOTHOUSE_CONFIG": "/nonexistent/config.toml"}


def _unusable_homes(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "home-is-a-file"
    a_file.write_text("")
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    return {"a file": str(a_file), "too long for a socket": str(deep),
            "cannot be made": "/proc/pilothouse-s18/home"}


@pytest.mark.parametrize("words", [["ps"], ["status", "--json"], ["daemon", "stop"]])
def test_an_unusable_home_is_said_not_a_traceback(tmp_path: Path, words: list[str]) -> None:
    for why, home in _unusable_homes(tmp_path).items():
        if words[0] in ("daemon", "status") and why == "cannot be made":
            continue  # no home, no daemon: "the daemon is not running" is the truth (s27: status)
        done = _cli(_env_with_home(home), *words)
        assert "Traceback" not in done.stderr, (why, done.stderr)
        assert done.returncode == 1, (why, done.returncode, done.stderr)
        assert "PILOTHOUSE_HOME" in done.stderr, (why, done.stderr)
        # With --json, stdout is the failure as an object (h204); else nothing.
        said = json.loads(done.stdout)["error"]["code"] if "--json" in words else done.stdout
        assert said == ("bad-home" if "--json" in words else ""), (why, done.stdout)


@pytest.mark.parametrize("words", [["ps", HOSTILE], ["stop", "r1", HOSTILE],
                                   ["history", "--json", "--x" + HOSTILE]])
def test_a_usage_error_shows_control_sequences_escaped(tmp_path: Path, words: list[str]) -> None:
    done = _cli(_env_with_home(str(tmp_path / "home")), *words)
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments" in done.stderr, done.stderr
    assert not any(ch in done.stderr for ch in "\x1b\x07\x9b"), ascii(done.stderr)
    assert not (tmp_path / "home").exists(), "a usage error starts no daemon"


@pytest.mark.parametrize("command", ["history", "export"])
def test_a_decision_that_does_not_exist_is_refused(daemon: Daemon, command: str) -> None:
    done = daemon.cli(command, "--decision", "denied", check=False)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "denied" in done.stderr and "deny" in done.stderr, done.stderr
    assert done.stdout == "", done.stdout


def test_an_empty_workspace_is_refused_not_read_as_here(daemon: Daemon, tmp_path: Path) -> None:
    here = tmp_path / "where-the-shell-is"
    here.mkdir()
    for words in (["run", "demo", "-w", ""], ["run", "--workspace=", "demo", "--", "true"]):
        done = _cli(daemon.env, *words, cwd=here)
        assert done.returncode == 2, (words, done.returncode, done.stdout, done.stderr)
        assert "--workspace" in done.stderr, done.stderr
    assert json.loads(daemon.cli("ps", "--all", "--json").stdout) == [], "no run was started"
    assert list(here.iterdir()) == [], "nothing was made in the current folder"


def test_reload_shows_a_rules_control_sequences_escaped(home: Path, daemon_env: dict) -> None:
    """A rule's words can be an agent's (saved by `approve --scope profile`, or pasted from its
    suggestion): `pilothouse reload` printed its diff lines raw."""
    config = Path(daemon_env["PILOTHOUSE_CONFIG"])
    rule = '[profiles.p]\ncommand = ["true"]\n[profiles.p.exec]\nallow = ["ls {}x"]\n'
    config.write_text(rule.format("A" * 14))
    d = Daemon(home, daemon_env)
    d.start()
    try:
        before = os.stat(config)
        with open(config, "r+") as f:  # the same size, inode and time: only `reload` sees it
            f.write(rule.format("\\u001b[2J\\u202e"))
        os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
        done = d.cli("reload")
        assert "[2J" in done.stdout, done.stdout
        assert not any(ch in done.stdout for ch in "\x1b\u202e"), ascii(done.stdout)
    finally:
        d.stop()


def test_a_profile_rule_is_not_saved_from_json_at_a_terminal_unseen(
        daemon: Daemon, workspace: Path) -> None:
    config = Path(daemon.env["PILOTHOUSE_CONFIG"])
    t, out = background(daemon, workspace, "ph-ask exec -- make build; echo rc=$?")
    try:
        req = wait_pending(daemon)[0]
        code, seen = at_a_terminal(daemon, "approve", req["id"], "--scope", "profile", "--json",
                                   answer=b"y\n")
        assert code == 1 and "--yes" in seen, (code, seen)
        assert "[y/N]" not in seen, seen
        assert not config.exists(), "no rule was saved"
        assert [r["id"] for r in json.loads(daemon.cli("approvals", "--json").stdout)] == [req["id"]]
        closed = _stdin_closed(daemon.env, "deny", req["id"], "--scope", "profile")
        assert "Traceback" not in closed.stderr, closed.stderr
        assert closed.returncode == 1 and "--yes" in closed.stderr, closed.stderr
        assert not config.exists(), "no rule was saved"
    finally:
        for r in json.loads(daemon.cli("approvals", "--json").stdout):
            daemon.cli("deny", r["id"], check=False)
        t.join(timeout=60)
    assert "rc=0" not in out["result"].stdout


@pytest.mark.parametrize("words", [[], ["tui"]])
def test_the_console_without_a_terminal_says_so_and_ends(daemon: Daemon, words: list[str]) -> None:
    try:
        done = subprocess.run([str(BIN / "pilothouse"), *words], env=daemon.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"still drawing into a pipe after 30s: {exc.stdout!r}") from None
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "terminal" in done.stderr and "--json" in done.stderr, done.stderr
    assert done.stdout == "", ascii(done.stdout[:200])


def test_the_console_with_stdin_closed_says_so(daemon: Daemon) -> None:
    done = _stdin_closed(daemon.env)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2 and "terminal" in done.stderr, done.stderr


@pytest.mark.parametrize("damage", ["not a database", "a folder"])
def test_a_damaged_replay_db_is_said_not_a_traceback(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "home" / "data" / "replay.db"
    db.parent.mkdir(parents=True)
    if damage == "a folder":
        db.mkdir()
    else:
        db.write_text("garbage, not SQLite\n")
    for words in (["replay-report"], ["replay-report", "--json"]):
        done = _cli(_env_with_home(str(tmp_path / "home")), *words)
        assert "Traceback" not in done.stderr, (damage, done.stderr)
        assert done.returncode == 1 and str(db) in done.stderr, (damage, done.stderr)
        said = json.loads(done.stdout)["error"]["code"] if "--json" in words else done.stdout
        assert said == ("store-failed" if "--json" in words else ""), done.stdout  # h204


def test_logs_at_a_terminal_follow_no_color(daemon: Daemon, workspace: Path) -> None:
    done = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--",
                      "printf", "\\033[31mred\\033[0m words\\n")
    run_id = json.loads(daemon.cli("ps", "--all", "--json").stdout)[0]["id"]
    assert "red words" in done.stdout, done.stdout
    coloured = Daemon(daemon.home, {**daemon.env, "NO_COLOR": ""})  # empty: not set
    _, shown = at_a_terminal(coloured, "logs", run_id, answer=None)
    assert "\x1b[31mred" in shown, ascii(shown)
    plain = Daemon(daemon.home, {**daemon.env, "NO_COLOR": "1"})
    _, shown = at_a_terminal(plain, "logs", run_id, answer=None)
    assert "red words" in shown and "\x1b[" not in shown, ascii(shown)


@pytest.mark.parametrize("which", ["PILOTHOUSE_HOME", "PILOTHOUSE_CONFIG"])
def test_a_home_or_config_that_is_not_utf8_is_refused(tmp_path: Path, which: str) -> None:
    home = tmp_path / ("home-" + b"\xff".decode("utf-8", "surrogateescape"))
    if which == "PILOTHOUSE_CONFIG":
        home = tmp_path / "home"
    env = _env_with_home(str(home))
    if which == "PILOTHOUSE_CONFIG":
        env[which] = str(tmp_path / ("c-" + b"\xe9".decode("utf-8", "surrogateescape")))
    try:
        for words in (["status"], ["daemon"]):
            try:
                done = _cli(env, *words)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{words} hung: the daemon cannot answer") from None
            assert "Traceback" not in done.stderr, done.stderr
            assert done.returncode in (1, 2) and "UTF-8" in done.stderr, done.stderr
            assert which in done.stderr and "inside the daemon" not in done.stderr, done.stderr
        assert not (home / "run" / "daemon.pid").exists(), "no daemon was started"
    finally:  # before the fix, one was, and it never answers
        _kill_daemon_of(home)


def test_logs_follow_with_search_is_refused_not_dropped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        for words in (["logs", "-f", "-s", "error", "r1"], ["logs", "--search=x", "--follow", "r1"]):
            done = _cli(_env_with_home(str(home)), *words)
            assert done.returncode == 2, (words, done.returncode, done.stderr)
            assert "--follow" in done.stderr and "--search" in done.stderr, done.stderr
        assert not home.exists(), "refused before any daemon is started"
    finally:
        _kill_daemon_of(home)


def _read_once_full(proc: subprocess.Popen[bytes], read: int) -> bytes:
    """Everything written to the pipe, read only once it stops filling (the writer is blocked,
    or has met EAGAIN and dropped what did not fit), so a writer that drops is caught."""
    before = -1
    while proc.poll() is None:
        select.select([], [], [], 0.2)
        waiting = int.from_bytes(fcntl.ioctl(read, termios.FIONREAD, b"\0\0\0\0"), "little")
        if waiting and waiting == before:
            break
        before = waiting
    out = bytearray()
    while chunk := os.read(read, 1 << 16):
        out += chunk
    return bytes(out)


def test_a_non_blocking_stdout_loses_nothing(daemon: Daemon, workspace: Path) -> None:
    lines = 100_000
    daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "seq", "1", str(lines))
    run_id = json.loads(daemon.cli("ps", "--all", "--json").stdout)[0]["id"]
    for words in (["logs", run_id], ["export"]):
        read, write = os.pipe()
        os.set_blocking(write, False)
        proc = subprocess.Popen([str(BIN / "pilothouse"), *words], env=daemon.env, stdout=write,
                                stderr=subprocess.PIPE)
        os.close(write)
        out = _read_once_full(proc, read)
        os.close(read)
        err = proc.communicate(timeout=60)[1].decode()
        assert proc.returncode == 0, (words, proc.returncode, err)
        if words[0] == "logs":
            assert out.decode().splitlines() == [str(i) for i in range(1, lines + 1)], len(out)
        else:
            events = [json.loads(line) for line in out.decode().splitlines()]
            # The run's own events end with its end (the daemon's, a gpu.status say, may follow).
            ours = [e for e in events if e.get("run_id") == run_id]
            assert ours and ours[-1]["kind"] == "run.ended", events[-3:]


def test_policy_rules_of_an_unknown_profile_is_said_not_a_daemon_failure(daemon: Daemon) -> None:
    """`policy rules nope` came back as "policy.rules failed inside the daemon: ConfigError",
    with a pointer to the daemon's log, as if the daemon had broken."""
    out = daemon.cli("policy", "rules", "nope", check=False)
    assert out.returncode == 1, out
    assert "no profile named 'nope'" in out.stderr and "inside the daemon" not in out.stderr, out.stderr


def test_an_unknown_profile_in_a_home_with_no_config_file_blames_no_file(daemon: Daemon) -> None:
    """Review h192: with no config.toml in the home, `policy check nope ls` said
    `.../config.toml: no profile named 'nope'`, naming a file that does not exist as where the
    profile was missing. The built-in profiles are blamed, and the file is named as the place
    to define one."""
    config = daemon.home / "config.toml"
    if config.exists():
        pytest.skip("this daemon's home has a config file")
    out = daemon.cli("policy", "check", "nope", "ls", check=False)
    assert out.returncode == 1, out
    first = out.stderr.strip().splitlines()[0]
    assert not first.startswith(f"pilothouse: {config}:"), first
    assert f"defined under [profiles] in {config} (no such file yet)" in out.stderr, out.stderr
