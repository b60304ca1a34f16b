"""Commands a forbid (or ask) rule must catch, found by an attack review: before, every one was
decided by the default ("ask" under default = "ask", "allow" under default = "allow").

Each command below was run under bash 5.2 with a fake `git` on PATH that logs its arguments: each
one ran `git push --force` (or the rm shown). docs/policy.md promises that forbid and ask rules
"see through wrappers with their options (`env -u X`, `sudo -u root`, `nice -n 5`, `timeout -s KILL
5`, `xargs -I {}`, `env -S '...'`, `stdbuf`, `ionice`, ...), shells (`sh -c`, `bash -lc`, `su -c`,
`eval`) ... and match flags in any order and spelling", and "the strictest wins: forbid > ask >
allow > default".

Where the words come from an expansion the reader cannot perform (brace expansion, $"...",
${...}, $IFS) or from a git alias, the part is opaque: asked under any default, never allowed
(a person sees the command exactly as it will run).
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = dict(allow=["git status", "ls", "cat", "echo"], ask=["git push"],
             forbid=["rm -rf /", "git push --force"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")

# 1. Wrapper options read wrongly (unwrap._skip_wrapper, _KEYWORDS).
WRAPPER_OPTIONS = [
    "env - git push --force",                 # `-` is env's -i
    "env -iu X git push --force",             # -u X inside a cluster
    "env -vS'git push --force'",              # -S STRING inside a cluster
    "sudo -Eu root git push --force",         # -u root inside a cluster
    "timeout -vs KILL 5 git push --force",    # -s KILL inside a cluster
    "xargs -0I {} git push --force",          # -I {} inside a cluster
    "strace -fo /tmp/o git push --force",     # -o FILE inside a cluster
    "time -p git push --force",               # bash's `time` keyword with -p
    "time -- git push --force",
]
# 2. Shell command strings not found (unwrap._inner_commands) or not looked for.
SHELL_STRINGS = [
    "bash -c -- 'git push --force'",          # the string is the first non-option word
    "bash -c -e 'git push --force'",
    "sh -c >/dev/null 'git push --force'",    # a redirection between -c and its string
    "su --command='git push --force'",        # --command=STRING
    "bash <<< 'git push --force'",            # the shell reads its commands from a here-string
    ". /dev/stdin <<< 'git push --force'",
    "sh -c '\"$@\"' _ git push --force",      # the string runs its arguments
    "flock /tmp/lk -c 'git push --force'",    # flock -c runs a shell command
    "watch -n 1 'git push --force'",          # watch runs its argument with sh -c
]
# 3. Compound commands the reader does not know: the body's first word is not the command.
COMPOUNDS = [
    "function f { git push --force; }; f",
    "coproc X { git push --force; }",
]
# 4. Expansions that make the forbidden words: brace expansion, $"...", ${x:-...}, $IFS, and a
#    git alias defined on the command line. Opaque: asked, never allowed.
EXPANSIONS = [
    "{git,push} --force",
    "git {push,--force}",
    "rm -rf ${HOME:+/}",
    "rm${IFS}-rf${IFS}/",
    "git -c alias.p='push --force' p",
]
# 5. Others: long-option abbreviations (rm takes --recur for --recursive), backtick bodies
#    (bash removes the backslash of \` inside `...`), wrappers not in _WRAPPER_ARGS, git aliases,
#    arithmetic subscripts that run $(...), aliases.
OTHERS = [
    "rm --recur --for /",
    "echo `echo \\`git push --force\\``",
    "chroot / git push --force",
    "unshare -r git push --force",
    "script -qc 'git push --force' /dev/null",
    "[[ 'a[$(git push --force)]' -eq 0 ]]",
    "let 'a[$(git push --force)]'",
    "shopt -s expand_aliases; alias g='git push --force'\ng",
    '$"git" push --force',  # bash's reading, $"git" is git (no translation): denied since h151
]
ALL = WRAPPER_OPTIONS + SHELL_STRINGS + COMPOUNDS + EXPANSIONS + OTHERS


@pytest.mark.parametrize("command", WRAPPER_OPTIONS + SHELL_STRINGS + COMPOUNDS + OTHERS)
def test_forbid_catches_it(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", EXPANSIONS)
def test_words_made_by_an_expansion_are_asked(command: str) -> None:
    for rules in (ASK_DEFAULT, ALLOW_DEFAULT):
        assert rules.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ALL)
def test_never_allowed_by_the_default(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# The same causes let a plain `git push` past the ask rule under default = "allow".
@pytest.mark.parametrize("command", [
    "env - git push", "sudo -Eu root git push", "time -p git push", "bash -c -- 'git push'",
    "function f { git push; }; f", "git {push,origin}", "git -c alias.p=push p",
    "watch -n 1 'git push'", "su --command='git push'",
])
def test_ask_rule_catches_it(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command
