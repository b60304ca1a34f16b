"""A multicall coreutils runs the program it is told to be: a forbid rule must see that program.

GNU coreutils built as one binary takes `--coreutils-prog=NAME` (and `-shebang=NAME` from a
`#!` line); uutils' `coreutils NAME ARGS` (Ubuntu's coreutils since 25.10) takes the name as its
first word, as busybox does. `coreutils --coreutils-prog=rm -rf /` was asked as an unknown
command where `rm -rf /` and `busybox rm -rf /` are refused (leftover since s21)."""

from __future__ import annotations

import json

import pytest

from console.policy import ExecRules
from console.policy.unwrap import unwrap_stages
from tests.conftest import Daemon

RULES = ExecRules(allow=["ls"], ask=[], forbid=["rm -rf /"], default="ask")


@pytest.mark.parametrize("line", [
    "coreutils --coreutils-prog=rm -rf /",
    "/usr/bin/coreutils --coreutils-prog=rm -rf /",
    "coreutils --coreutils-prog-shebang=rm -rf /",
    "coreutils rm -rf /",
    "sudo coreutils --coreutils-prog=rm -rf /",
    "coreutils --coreutils-prog=env rm -rf /",
])
def test_a_forbid_rule_sees_the_program_coreutils_is_told_to_be(line: str) -> None:
    got = RULES.evaluate(line)
    assert got.action == "deny", (line, got)


def test_the_program_and_its_words_are_what_runs() -> None:
    assert unwrap_stages(["coreutils", "--coreutils-prog=rm", "-rf", "/tmp/x"])[-1] == [
        "rm", "-rf", "/tmp/x"]
    # As every wrapper (busybox, env, sudo): an allow rule for what it runs does not allow it.
    assert RULES.evaluate("coreutils --coreutils-prog=ls -la").action == "ask"
    assert RULES.evaluate("busybox ls -la").action == "ask"
    # An option of coreutils' own, or no program: nothing is run that a rule could name.
    assert RULES.evaluate("coreutils --help").action == "ask"


def test_policy_check_refuses_it_with_the_embedded_defaults(daemon: Daemon) -> None:
    """The daemon's answer (what ph-ask gets): its embedded defaults forbid `rm -rf /`."""
    out = daemon.cli("policy", "check", "demo", "--json", "--", "coreutils",
                     "--coreutils-prog=rm", "-rf", "/")
    decided = json.loads(out.stdout)
    assert decided["decision"] == "deny", (out.stdout, out.stderr)
