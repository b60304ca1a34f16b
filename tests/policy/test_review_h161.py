"""Review h161: lines a forbid rule must refuse that the nested-runner readings (runnerstarts.py)
left only asked. Under the built-in claude and demo profiles (`forbid = [..., "rm -rf ~", "dd",
...]`), each line below runs the forbidden command (checked with GNU parallel 20221122 and perf
6.1, the program a stand-in: /bin/echo copied as `dd` first on PATH).

- GNU parallel reads its long options in any case (Getopt::Long's ignore_case, which bundling
  leaves on for long options): `--ARG-SEP XX`, `--ArgSep XX` make XX its `:::` as `--arg-sep XX`
  does, and `parallel --ARG-SEP XX XX 'rm -rf ~'` runs rm. Refused before h158, asked since.
- perf's parser drops a `--` and perf stat (perf trace) then reads `record` as it does without
  it: `perf stat -- record dd ...` and `perf trace -- record dd ...` run dd. Asked before h158
  too: the reading past `--` started at `record`.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules, evaluate_exec
from tests.policy.builtin_profiles import builtin_rules

CLAUDE, DEMO = builtin_rules("claude"), builtin_rules("demo")

REFUSED = [
    # GNU parallel's separator option in another case
    "parallel --ARG-SEP XX XX 'rm -rf ~'",
    "parallel --ArgSep XX XX 'rm -rf ~'",
    "parallel --ArG-s XX XX 'rm -rf ~'",
    "parallel -j 2 --ARG-SEP , , 'rm -rf ~' ls",
    "parallel --ARG-FILE-SEP YY --ARG-SEP XX XX 'dd if=/dev/zero of=/tmp/x'",
    # perf stat / perf trace: `record` past a `--`
    "perf stat -- record dd if=/dev/zero of=/tmp/x",
    "perf stat -a -- rec dd if=/dev/zero of=/tmp/x",
    "perf stat -- record -a rm -rf ~",
    "perf stat -- record -e cycles -- dd if=/dev/zero of=/tmp/x",
    "perf trace -- record dd if=/dev/zero of=/tmp/x",
    "gosu app perf stat -- record rm -rf ~",
]

# Everyday lines these readings must not refuse (asked: a nested runner is never allowed).
ASKED = [
    "parallel --ARG-SEP , gzip , dd.log mkfs.log",
    "parallel --ArgSep XX grep -c dd XX a.txt b.txt",
    "perf stat -- record ./bench dd",
    "perf stat -- record -e cycles ./bench --mode dd",
    "perf stat -- ./bench dd",
    "perf trace -- record grep -c dd log",
]


@pytest.mark.parametrize("rules", [CLAUDE, DEMO], ids=["claude", "demo"])
@pytest.mark.parametrize("line", REFUSED)
def test_a_forbidden_command_a_runner_really_runs_is_refused(line: str, rules: ExecRules) -> None:
    assert evaluate_exec(line, rules, consume=False).action == "deny"


@pytest.mark.parametrize("rules", [CLAUDE, DEMO], ids=["claude", "demo"])
@pytest.mark.parametrize("line", ASKED)
def test_an_argument_of_the_runners_command_is_still_asked(line: str, rules: ExecRules) -> None:
    assert evaluate_exec(line, rules, consume=False).action == "ask"
