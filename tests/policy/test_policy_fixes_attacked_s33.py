"""Helper 128 (review s33): what the fixes of dd0d8c3 and a5d3882 still let through.
Each case checked with bash 5.2.15, git 2.39, npm 11, pytest 8.4 + coverage 7 / pytest-cov."""

from __future__ import annotations

import pytest

from console.policy import ExecRules, evaluate_exec

FORBID = ["rm -rf /", "rm -rf ~", "git push --force", "git reset --hard"]
# The built-in claude profile's allow list (console/agents/profiles.toml).
CLAUDE = ["ls", "cat", "head", "tail", "wc", "pwd", "grep", "rg",
          "git status", "git diff", "git log", "git show"]


def _action(allow: list[str], command: str) -> str:
    return evaluate_exec(command, ExecRules(allow=allow, forbid=FORBID)).action


# 1. `{NAME}>FILE` gives NAME the new fd's number, in the shell itself for a builtin:
#    `pwd {PATH}>/dev/null; git status` ran ./11/git (PATH=11).
@pytest.mark.parametrize("command", [
    "pwd {PATH}>/dev/null; git status",
    "pwd {PATH}>&2 && ls",
    "echo hi {PATH}>/dev/null; ls",
    "pwd {PATH}<&0; ls",
])
def test_fd_variable_redirection_sets_environment(command):
    assert _action(CLAUDE + ["echo"], command) != "allow"


# 2. bash tilde-expands a redirection's target: `~sys` is /dev (Debian's base-passwd), so
#    `cat < ~sys/tcp/H/P` connects to H:P (and looks H up), under the built-in `cat` rule.
@pytest.mark.parametrize("command", [
    "cat < ~sys/tcp/127.0.0.1/47123",
    "head -c 100 < ~sys/tcp/example.invalid/80",
    "cd /dev && cat < ~+/tcp/127.0.0.1/47123",
])
def test_tilde_dev_tcp_is_asked(command):
    assert _action(CLAUDE + ["cd"], command) != "allow"


# 3. `set -k` (`-o keyword`) puts every NAME=VALUE word of a later command in its
#    environment: `set -e -k; git status GIT_DIR=D` ran D's core.fsmonitor.
@pytest.mark.parametrize("command", [
    "set -e -k; git status GIT_DIR=/tmp/evil/.git",
    "set -euo pipefail -k; git status GIT_DIR=/tmp/evil/.git",
    "set -x -o keyword; git status GIT_DIR=/tmp/evil/.git",
    "set -e -k; ls LD_PRELOAD=./x.so",
])
def test_set_keyword_is_a_setter(command):
    assert _action(CLAUDE + ["set -e", "set -x", "set -euo pipefail"], command) != "allow"


# 4. The option tables by name miss `coverage run -m MODULE` (python -m's twin): it emptied
#    --basetemp's folder as pytest does.
@pytest.mark.parametrize("rule, command", [
    ("coverage run -m pytest", "coverage run -m pytest --basetemp=/home/agent"),
    ("coverage run -m pytest", "coverage run -m pytest -o cache_dir=/tmp/x"),
    ("python3 -m coverage run -m pytest", "python3 -m coverage run -m pytest --basetemp=/x"),
])
def test_coverage_run_module_reads_pytest_table(rule, command):
    assert _action([rule], command) != "allow"


# 5. Writers the tables miss: npm's --cache (npm writes DIR/_logs/*-debug-0.log there, as
#    --logs-dir), py.test's --junit-xml/--override-ini (pytest has them), pytest-cov's
#    --cov-report=KIND:PATH, coverage xml -o / html -d.
@pytest.mark.parametrize("rule, command", [
    ("npm ls", "npm ls --cache /tmp/x"),
    ("py.test", "py.test --junit-xml=/tmp/x.xml"),
    ("py.test", "py.test --override-ini=cache_dir=/tmp/x"),
    ("pytest", "pytest --cov=. --cov-report=html:/tmp/x"),
    ("coverage xml", "coverage xml -o /tmp/x.xml"),
    ("coverage html", "coverage html -d /tmp/x"),
])
def test_writer_options(rule, command):
    assert _action([rule], command) != "allow"


# 6. Options that run a command the tables miss: make's --eval/-E ($(shell CMD) ran CMD), a
#    command-line variable (make exports it and expands it for each recipe's environment:
#    `X=$(shell CMD)` ran CMD), .SHELLFLAGS; and runners not known: `pyenv exec` (pytest
#    --basetemp emptied the folder, find -delete deleted).
@pytest.mark.parametrize("rule, command", [
    ("make test", "make test --eval='$(shell touch /tmp/pwned)'"),
    ("make test", "make test -E '$(shell touch /tmp/pwned)'"),
    ("make test", "make test 'X=$(shell touch /tmp/pwned)'"),
    ("make test", "make test '.SHELLFLAGS=-c touch\\ /tmp/pwned;'"),
    ("pyenv exec pytest", "pyenv exec pytest --basetemp=/home/agent"),
    ("pyenv exec find", "pyenv exec find . -delete"),
    ("ruff check", "ruff check --fix /home/agent/.config/x.py"),
])
def test_runs_or_writes_unseen(rule, command):
    assert _action([rule], command) != "allow"


# Regression (false ask): json.tool's --indent takes a value; reading a file writes nothing.
def test_json_tool_indent_reads_only():
    assert _action(["python3 -m json.tool"], "python3 -m json.tool --indent 2 data.json") == "allow"


@pytest.mark.parametrize("rule, command", [
    ("pytest", "pytest --co -q"),  # pytest's own alias of --collect-only: no abbreviations
    ("make test", "make test -j4"),
    ("make", "make -C sub all"),
    ("coverage run -m pytest", "coverage run -m pytest -q"),
    ("coverage report", "coverage report -m"),
    ("ruff check", "ruff check src"),
    ("pyenv exec pytest", "pyenv exec pytest -q"),
    ("cat", "cat < ~/notes.txt"),
])
def test_what_these_rules_mean_still_goes_on_unasked(rule, command):
    assert _action([rule], command) == "allow"
