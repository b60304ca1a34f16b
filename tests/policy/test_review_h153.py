"""Review h153 of the nested runners (runners.nested_readings): a program named among a nested
runner's words started no reading of its own, so what it hands a shell was never read
(`tini watchexec 'rm -rf /'`, `tini npx -c ...`, `tini gdb -ex ...`); perf's and gdb's
options that run shell lines were matched only as spelled in full (perf and gdb take a
unique abbreviation: `perf stat --po 'rm -rf /' ls` was allowed by an allow rule "perf
stat"); hyperfine's and watchexec's values given in the same word (`--prepare=LINE`,
`-pLINE`, `--shell=P`) or as a hyperfine parameter list (`-L x 'ls,rm -rf /' '{x}'`) were
not read."""

from __future__ import annotations

import pytest

from console.policy import ExecRules, evaluate_exec

RULES = ExecRules(allow=["ls", "perf stat", "nsys profile", "gdb --args", "hyperfine",
                         "watchexec"], ask=["git push"], forbid=["rm -rf /"], default="ask")
OPEN = ExecRules(allow=["ls"], ask=["git push"], forbid=["rm -rf /"], default="allow")

# A program among the words of another that hands its words to a shell.
STEPPED = [
    "tini watchexec 'rm -rf /'", "gosu root watchexec 'rm -rf /'", "tini hyperfine 'rm -rf /'",
    "tini npx -c 'rm -rf /'", "gosu root npm exec -c 'rm -rf /'", "tini watch 'rm -rf /'",
    "tini flock f -c 'rm -rf /'", "tini env -S 'rm -rf /'", "tini sem 'rm -rf /'",
    "tini strace -o '|rm -rf /' ls", "tini bun exec 'rm -rf /'", "tini pnpm -c 'rm -rf /'",
    "tini parallel ::: 'rm -rf /'", "tsp tini tsp 'rm -rf /'", "tini runuser -c 'rm -rf /'",
]


@pytest.mark.parametrize("line", STEPPED)
def test_a_program_named_inside_a_nested_runner_is_read(line: str) -> None:
    for rules in (RULES, OPEN):
        assert evaluate_exec(line, rules, consume=False).action == "deny", line


# Shell lines a rule cannot read: never allowed, under either default.
UNREAD = [
    "perf stat --po 'rm -rf /' ls", "perf stat --pos='rm -rf /' ls",
    "perf stat --pr 'rm -rf /' ls", "tini perf stat --pre 'rm -rf /' ls",
    "gdb --eval 'shell rm -rf /' --args ls", "gdb -eval 'shell rm -rf /' --args ls",
    "gdb --eval-c 'shell rm -rf /' --args ls", "tini gdb -ex 'shell rm -rf /' --args ls",
    "lldb -o'platform shell rm -rf /'", "lldb --one 'platform shell rm -rf /'",
    "hyperfine --prepare='rm -rf /' ls", "hyperfine -p'rm -rf /' ls",
    "hyperfine -p='rm -rf /' ls", "hyperfine --setup='rm -rf /' ls",
    "hyperfine --shell='rm -rf / --' ls", "hyperfine -S'rm -rf / --' ls",
    "hyperfine -L x 'ls,rm -rf /' '{x}'", "hyperfine --parameter-list=x,'rm -rf /' '{x}'",
    "watchexec --shell='rm -rf / --' ls",
]


@pytest.mark.parametrize("line", UNREAD)
def test_an_option_running_a_line_in_any_spelling_is_never_allowed(line: str) -> None:
    for rules in (RULES, OPEN):
        assert evaluate_exec(line, rules, consume=False).action != "allow", line


@pytest.mark.parametrize("line", ["perf stat ls", "perf stat -e cycles ls", "nsys profile ls",
                                  "gdb --args ls", "hyperfine ls", "watchexec -e py ls"])
def test_plain_lines_are_still_allowed(line: str) -> None:
    assert evaluate_exec(line, RULES, consume=False).action == "allow", line
