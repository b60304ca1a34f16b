"""Review h154: git's own option `--shallow-file FILE` takes the next word as its value.

git reads the options before its subcommand itself (git.c, handle_options), and
`--shallow-file` (undocumented, kept for git's own use) takes the next word: `git
--shallow-file x clean -f` is `git clean -f`, `git --shallow-file x push --force ...` a forced
push, `git --shallow-file x reset --hard` a hard reset. The reader's list of git options that
take a value (console/policy/gitwords.py, GIT_ARGS) does not name it, so it read `x` as the
subcommand: the built-in profiles' forbid rules `git clean`, `git push --force` and `git reset
--hard` missed the line, and it was only asked. Commands are data only here; where git is
present, a throwaway repository in tmp_path (a bare one beside it as the remote: no network)
shows git runs them so."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from console.policy import ExecRules, evaluate_exec
from tests.conftest import Daemon

_PROFILES = tomllib.loads((Path(__file__).resolve().parents[2] / "console" / "agents" / "profiles.toml")
                          .read_text(encoding="utf-8"))["profiles"]


def _rules(name: str) -> ExecRules:
    p = _PROFILES[name]["exec"]
    return ExecRules(allow=p["allow"], ask=p.get("ask", []), forbid=p["forbid"], default=p["default"])


# (line, the forbid rule of the claude profile it is)
SHALLOW_FILE = [
    ("git --shallow-file x clean -fd", "git clean"),
    ("git --shallow-file log clean -fdx", "git clean"),
    ("git --shallow-file x reset --hard", "git reset --hard"),
    ("git --shallow-file status reset --hard HEAD", "git reset --hard"),
    ("git --shallow-file x push --force origin main", "git push --force"),
    ("git --shallow-file x push -f", "git push -f"),
    ("git --shallow-file x push origin +main", "git push --force"),
    ("git -C . --shallow-file x clean -f", "git clean"),
    ("git --shallow-file x -C . clean -f", "git clean"),
    ("nice git --shallow-file x clean -f", "git clean"),
    ("ls; git --shallow-file x reset --hard", "git reset --hard"),
]


@pytest.mark.parametrize(("line", "rule"), SHALLOW_FILE)
def test_git_shallow_file_hides_no_subcommand_from_a_forbid_rule(line: str, rule: str) -> None:
    decision = evaluate_exec(line, _rules("claude"), consume=False)
    assert decision.action == "deny", (line, decision)


@pytest.mark.parametrize("profile", ["codex", "aider", "demo"])
def test_so_in_every_built_in_profile(profile: str) -> None:
    decision = evaluate_exec("git --shallow-file x reset --hard", _rules(profile), consume=False)
    assert decision.action == "deny", (profile, decision)


def test_the_value_is_the_next_word_only() -> None:
    # `--shallow-file=x` is no option of git's (it exits, unknown option): nothing to skip there,
    # and `git --shallow-file x status` stays a question at most, never an allow.
    assert evaluate_exec("git --shallow-file x status", _rules("claude"), consume=False).action != "allow"


def _git(cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "LC_ALL": "C"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_runs_the_subcommand_after_the_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _git(tmp_path, "init", "-q", "--bare", "remote.git", home=home)
    work = tmp_path / "w"
    _git(tmp_path, "init", "-q", "w", home=home)
    (work / "f").write_text("1\n")
    _git(work, "add", "f", home=home)
    _git(work, "commit", "-qm", "one", home=home)
    assert _git(work, "push", "-q", "../remote.git", "HEAD:refs/heads/main", home=home).returncode == 0
    _git(work, "commit", "-q", "--amend", "-m", "two", home=home)
    # a plain push of the rewritten history is refused; the line the reader did not deny forces it
    assert _git(work, "push", "../remote.git", "HEAD:refs/heads/main", home=home).returncode != 0
    forced = _git(work, "--shallow-file", "x", "push", "--force", "../remote.git", "HEAD:refs/heads/main",
                  home=home)
    assert "forced update" in forced.stderr, forced
    assert _git(tmp_path / "remote.git", "log", "--format=%s", "main", home=home).stdout.strip() == "two"
    # a hard reset and a clean, through the same option
    (work / "f").write_text("changed\n")
    (work / "junk").write_text("x\n")
    _git(work, "--shallow-file", "x", "reset", "--hard", home=home)
    assert (work / "f").read_text() == "1\n"
    _git(work, "--shallow-file", "log", "clean", "-f", home=home)
    assert not (work / "junk").exists()


@pytest.mark.parametrize("line", ["git --shallow-file x clean -fd", "git --shallow-file x push --force"])
def test_the_daemons_answer_with_the_built_in_claude_profile_is_deny(daemon: Daemon, line: str) -> None:
    """What ph-ask and the hook get from a real daemon: both lines were asked."""
    out = daemon.cli("policy", "check", "claude", "--json", "--", line)
    decided = json.loads(out.stdout)
    assert decided["decision"] == "deny", (line, out.stdout)


# 2. systemd-run's timer options --on-startup, --on-unit-active and --on-unit-inactive take a
#    value (systemd 252: `--on-startup=SECONDS`, getopt's required argument, so the next word
#    too), as --on-active and --on-boot do; the reader's table (console/policy/wrappers.py,
#    WRAPPER_ARGS["systemd-run"]) lists only those two, so it read `1` as the command and the
#    forbid rule missed `rm -rf ~` (asked). `--on-startup=1` was already denied.
SYSTEMD_RUN_TIMERS = ["systemd-run --on-startup 1 rm -rf ~", "systemd-run --user --on-unit-active 5 rm -rf ~",
                      "systemd-run --on-unit-inactive 5 git push --force"]


@pytest.mark.parametrize("line", SYSTEMD_RUN_TIMERS)
def test_systemd_run_timer_values_hide_no_command_from_a_forbid_rule(line: str) -> None:
    decision = evaluate_exec(line, _rules("claude"), consume=False)
    assert decision.action == "deny", (line, decision)


@pytest.mark.skipif(shutil.which("systemd-run") is None, reason="needs systemd-run")
@pytest.mark.parametrize("option", ["--on-startup", "--on-unit-active", "--on-unit-inactive"])
def test_systemd_run_takes_a_value_for_them(option: str) -> None:
    out = subprocess.run(["systemd-run", option], capture_output=True, text=True, timeout=10)
    assert "requires an argument" in out.stderr, out.stderr


# 3. Past the reader's bounds a forbid rule is missed and the line is only asked: a nested
#    runner's command is read from at most eight words that may start it (runners.py,
#    NESTED_STARTS: `perf stat -e E` eight times, then `rm -rf ~`; gdb's `-ex run` nine
#    times), wrappers seventeen deep (`nice` eighteen times), and nested commands three deep
#    (`bash -c` four times, `tini --` four times: unwrap.MAX_DEPTH). bash runs each one's
#    command. The reader giving up is right to ask where it cannot see; where the words it
#    gave up on hold a forbid rule's program and words, it should refuse.
def _bash_c(line: str, times: int) -> str:
    for _ in range(times):
        line = "bash -c " + shlex.quote(line)
    return line


_PERF = "perf stat " + "-e task-clock " * 8
_GDB = "gdb -batch " + "-ex run " * 9 + "--args "
PAST_THE_BOUNDS = [
    _PERF + "rm -rf ~",
    _PERF + "git push --force",
    "cpulimit " + " ".join(f"-l {n}" for n in range(1, 10)) + " rm -rf ~",
    "mpirun " + " ".join(f"-np {n}" for n in range(1, 10)) + " git reset --hard",
    _GDB + "rm -rf ~",
    "nice " * 18 + "rm -rf ~",
    "timeout 5 " * 17 + "git clean -fd",
    "tini -s -- " * 4 + "rm -rf ~",
]


@pytest.mark.parametrize("line", PAST_THE_BOUNDS)
def test_past_the_readers_bounds_a_forbid_rule_still_refuses(line: str) -> None:
    """The words of a part the reader did not follow to its end are matched flat, from each one
    naming a forbid rule's program (policy._forbidden_past_bounds)."""
    decision = evaluate_exec(line, _rules("claude"), consume=False)
    assert decision.action == "deny", (line, decision)


def test_a_command_nested_past_the_depth_is_asked_never_allowed() -> None:
    """Four shells deep, the innermost string is one word of a part not read (MAX_DEPTH): the
    line is asked, not refused (docs/threat-model.md says so), and never allowed."""
    for default in ("ask", "allow"):
        rules = ExecRules(allow=["bash", "ls"], forbid=["rm -rf ~"], default=default)
        assert evaluate_exec(_bash_c("rm -rf ~", 4), rules, consume=False).action == "ask"


def _marks(tmp_path: Path, line: str) -> bool:
    subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    return (tmp_path / "mark").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("line", ["nice " * 18 + "touch mark", _bash_c("touch mark", 4)])
def test_bash_runs_the_command_past_the_bounds(tmp_path: Path, line: str) -> None:
    assert _marks(tmp_path, line)


