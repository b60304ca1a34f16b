"""Review h156: forbidden commands a nested runner's script options still ran, only asked.

- entr takes its flags as getopt does, so `-rs` is `-r -s` (`ls | entr -rs 'make test'` is how
  its manual runs a line): the line after `-rs` was not read, and `rm -rf ~` there was asked.
- gdb takes any blank after a command's name (`shell<TAB>rm -rf ~` ran rm: checked with gdb
  13.1), and lldb's shell command is `platform shell` (`-h`, `--` before the line).
"""

from __future__ import annotations

import pytest

from console.policy import evaluate_exec
from tests.policy.builtin_profiles import builtin_rules


@pytest.mark.parametrize("line", [
    "ls *.py | entr -rs 'rm -rf ~'",
    "entr -cs 'git push --force'",
    "entr -sr 'rm -rf ~'",
    "entr -n -rcs 'git reset --hard'",
    "tini -- entr -rs 'rm -rf ~'",
    "gdb -batch -ex 'shell\trm -rf ~' ./a.out",
    "lldb -o 'platform shell rm -rf ~' ./a.out",
    "lldb -o 'platform shell -h -- git push --force' ./a.out",
    "lldb --one-line='plat sh rm -rf ~' ./a.out",
    "hyperfine -L x 'ls,rm -rf ~' '{x}'",
    "hyperfine --parameter-list cmd 'git status,git reset --hard' -L ref HEAD~1 '{cmd} {ref}'",
])
def test_a_forbidden_line_a_runner_option_runs_is_refused(line: str) -> None:
    assert evaluate_exec(line, builtin_rules("claude"), consume=False).action == "deny"


@pytest.mark.parametrize("line", [
    "ls *.py | entr -rs 'make test'", "entr -cs ls", "gdb -ex 'shell\tls' ./a.out",
    "lldb -o 'platform shell ls' ./a.out", "gdb -nx ./a.out", "entr -r ./serve",
])
def test_such_lines_are_still_asked(line: str) -> None:
    assert evaluate_exec(line, builtin_rules("claude"), consume=False).action == "ask"
