"""Programs that run a command named in their words, whose options the rules do not know
(review s38): `gosu root rm -rf /`, `cpulimit -l 50 rm -rf /`, `perf stat rm -rf /`,
`gdb --args rm -rf /` were asked where a forbid rule should refuse them, and allowed under a
profile whose default is allow. Their command is now read as a nested one, every way it may
start: forbid and ask rules see it, and no allow rule is reached through it."""

from __future__ import annotations

import json
import shlex

import pytest

from console.policy import ExecRules, evaluate_exec
from console.policy.unwrap import expand
from tests.conftest import Daemon

RULES = ExecRules(allow=["ls", "nsys profile", "gdb", "perf stat"], ask=["git push"],
                  forbid=["rm -rf /"], default="ask")
OPEN = ExecRules(allow=["ls"], ask=["git push"], forbid=["rm -rf /"], default="allow")

HIDDEN = [
    "gosu root rm -rf /", "su-exec nobody rm -rf /", "/usr/sbin/gosu root:root rm -rf /",
    "tini -s -- rm -rf /", "dumb-init --rewrite 15:9 rm -rf /", "cpulimit -l 50 rm -rf /",
    "cpulimit --limit=50 -- rm -rf /", "ccache rm -rf /", "perf stat -e cycles rm -rf /",
    "perf record -g -o /tmp/p.data -- rm -rf /", "gdb -batch --args rm -rf /",
    "watchexec -e py -- 'rm -rf /'", "hyperfine --setup 'rm -rf /' true", "hyperfine 'rm -rf /'",
    "mpirun -np 4 rm -rf /", "srun -N 1 rm -rf /", "nsys profile -o out --trace cuda rm -rf /",
    "ncu --set full rm -rf /", "compute-sanitizer rm -rf /", "aws-vault exec dev -- rm -rf /",
    "bwrap --ro-bind / / --dev /dev rm -rf /", "sudo gosu root rm -rf /",
    "gosu root sh -c 'rm -rf /'", "perf stat -e a -e b -e c -e d -e e -e f -- rm -rf /",
    "gosu a gosu b gosu c gosu d gosu e rm -rf /",
    # review h155
    "bundle exec rm -rf /", "rr record rm -rf /", "systemd-inhibit rm -rf /", "retry -- rm -rf /",
    "entr -s 'rm -rf /'", "nix-shell --run 'rm -rf /'", "nix develop -c rm -rf /",
    "nix shell nixpkgs#hello --command rm -rf /", "caffeinate -i rm -rf /",
]


@pytest.mark.parametrize("line", HIDDEN)
def test_a_forbid_rule_sees_the_command_they_run(line: str) -> None:
    for rules in (RULES, OPEN):
        decided = evaluate_exec(line, rules, consume=False)
        assert decided.action == "deny", (line, decided)


@pytest.mark.parametrize("line", ["gosu root git push", "doppler run -- git push --force",
                                  "nsys profile git push"])
def test_an_ask_rule_sees_it_too(line: str) -> None:
    assert evaluate_exec(line, OPEN, consume=False).action == "ask"
    assert evaluate_exec(line, RULES, consume=False).action == "ask"


@pytest.mark.parametrize("line", ["gosu root ls", "cpulimit -l 50 ls", "tini -- ls", "ccache ls"])
def test_an_allow_rule_for_the_command_never_allows_the_program(line: str) -> None:
    assert evaluate_exec(line, RULES, consume=False).action == "ask"


def test_a_rule_may_name_such_a_program_with_its_words() -> None:
    """`perf stat` and `nsys profile` are rules a person writes (their readings are nested);
    what they run is still seen by forbid and ask rules."""
    assert evaluate_exec("nsys profile python3 train.py", RULES, consume=False).action == "allow"
    assert evaluate_exec("perf stat ls", RULES, consume=False).action == "allow"
    assert evaluate_exec("nsys profile rm -rf /", RULES, consume=False).action == "deny"
    with pytest.raises(ValueError, match="one plain command"):
        ExecRules(allow=["sh -c ls"], default="ask")  # a shell's string stays a nested command


@pytest.mark.parametrize("line", ["gdb -ex 'shell touch x' ./a.out", "gdb -x cmds.gdb ./a.out",
                                  "gdb --eval-command=run --args ./a.out",
                                  "perf stat --pre 'curl x.invalid' ls", "lldb -o 'platform shell x' ./a"])
def test_what_a_debugger_or_profiler_runs_of_its_own_is_never_allowed(line: str) -> None:
    assert evaluate_exec(line, RULES, consume=False).action == "ask", line


def _quoted_levels(levels: int, width: int) -> str:
    line = "gosu 1 2 3 4 5 6 7 8"
    for _ in range(levels):
        line = "hyperfine " + " ".join([shlex.quote(line)] * width)
    return line


HOSTILE = [" ".join([w] * 400)[:4000] + " rm -rf /" for w in (
    "gosu", "hyperfine", "watchexec", "nice gosu", "perf stat -e x", "hyperfine 'a b'")] + [
    # review h153: readings of readings, quoted a level deeper each time (a second and more)
    "; ".join([_quoted_levels(2, 7)] * 2),
    "; ".join(["hyperfine c c c c c c c " + shlex.quote("hyperfine c c c c c c c " + shlex.quote(
        "hyperfine c c c c c c c x"))] * 12),
    "; ".join([" ".join(["parallel"] * 12)] * 40)[:4000],
]


@pytest.mark.parametrize("line", HOSTILE)
def test_readings_stay_bounded_on_a_long_hostile_line(line: str) -> None:
    """Every reading is read again for its own readings, to a depth: a line of such programs
    must not multiply them (thousands of readings, a second and more, before the bound on
    the nested text read for one line). Past it the line is asked, never allowed."""
    assert len(expand(line)) < 400
    assert evaluate_exec(line, RULES, consume=False).action in ("ask", "deny")


@pytest.mark.parametrize("line", ["gosu root rm -rf ~", "cpulimit -l 50 -- rm -rf ~"])
def test_the_daemons_answer_with_the_built_in_claude_profile_is_deny(daemon: Daemon, line: str) -> None:
    out = daemon.cli("policy", "check", "claude", "--json", "--", line)
    decided = json.loads(out.stdout)
    assert decided["decision"] == "deny" and "rm -rf ~" in decided["rule"], (line, out.stdout)
