"""A second attack review of the exec reader, after the first one's fixes: every command here
was allowed, or got past a forbid rule, before. Commands are strings only: never run in a
shell."""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = dict(allow=["git status", "ls", "cat", "echo"], ask=["git push"],
             forbid=["rm -rf /", "git push --force"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")


# A. Here-document operator misread.
HEREDOC = [
    "cat <<-EOF\nhello\nEOF\ngit push --force\n",          # <<- read as << with delimiter -EOF
    "cat <<- EOF\n\thello\n\tEOF\ngit push --force\n",
    "echo $[1<<2]\ngit push --force\n",                    # $[...] arithmetic: no here-doc in bash
]


@pytest.mark.parametrize("command", HEREDOC)
def test_heredoc_forbid(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", HEREDOC)
def test_heredoc_never_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action != "allow", command


# B. Shell -c strings.
SHELL_C = [
    "bash -c -o errexit 'git push --force'",
    "bash -c -O extglob 'git push --force'",
    "bash -c +x 'git push --force'",
    "bash -c -- '-n; git push --force'",
    "sh -c '\"$0\" \"$@\"' git push --force",
    "su --session-command='git push --force'",
    "su --comm='git push --force'",
    "eval -- git push --force",
    "eval -- 'git push --force'",
]


@pytest.mark.parametrize("command", SHELL_C)
def test_shell_c_forbid(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", SHELL_C)
def test_shell_c_not_allowed_by_allow_default(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# C. Wrapper options.
WRAPPERS = [
    "env --uns X git push --force",
    "timeout --sig KILL 5 git push --force",
    "nice --adj 5 git push --force",
    "strace --output /tmp/o git push --force",
    "command time -f %e git push --force",
    "env time -o /tmp/t git push --force",
    "runuser -u root -- git push --force",
]


@pytest.mark.parametrize("command", WRAPPERS)
def test_wrapper_forbid(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# D. Expansions not seen: never allowed.
EXPANSIONS = [
    "{git,-c,'user.name=a b',push,--force}",
    "{git,push,--force,-o,ci\\ skip}",
    "git -c ALIAS.p='push --force' p",
    "/usr/bin/gi[t] push --force",
    "/usr/bin/g?t push --force",
]


@pytest.mark.parametrize("command", EXPANSIONS)
def test_expansion_never_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action != "allow", command


# E. Arithmetic subscripts in other builtins.
ARITH = [
    "a=(); unset -v 'a[$(git push --force)]'",
    "read 'a[$(git push --force)]' <<< x",
]


@pytest.mark.parametrize("command", ARITH)
def test_arith_forbid(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


# F. Exceptions instead of a decision.
EXC = [
    "echo " + "$" * 3000 + "'x'",
    "echo " + '"$(' * 600 + ")\"" * 600,
]


@pytest.mark.parametrize("command", EXC, ids=["dollars", "nested"])
def test_no_exception(command: str) -> None:
    # docs: what the reader cannot read is asked; today a RecursionError escapes evaluate()
    assert ASK_DEFAULT.evaluate(command).action == "ask"


# G. A here-document or a comment inside $(...): shellscan.close_paren ended the substitution at a ")" that
#    bash reads as here-document data or comment text; the rest of the real body is then read
#    as a quoted word. Opaque: asked under any default, never allowed; the forbid rule is not
#    reached (docs/policy.md says so: a $(...) holding a here-document or a comment is asked).
IN_SUBSTITUTION = [
    "echo $(cat <<EOF\n) '\nEOF\ngit push --force\n) #'\n",
    "echo $(true # ) '\ngit push --force\n) #'\n",
]


@pytest.mark.parametrize("command", IN_SUBSTITUTION)
def test_in_substitution_is_asked(command: str) -> None:
    # Since session 12 _close_paren skips a comment as bash does, so the comment case reaches
    # the forbid rule (deny); never allowed either way.
    for rules in (ASK_DEFAULT, ALLOW_DEFAULT):
        assert rules.evaluate(command).action in ("ask", "deny"), command
    assert ALLOW_DEFAULT.evaluate(IN_SUBSTITUTION[1]).action == "deny"


# The command is built from an expansion ($1): asked under any default, never allowed.
@pytest.mark.parametrize("command", ["sh -c '$1 push --force' _ git"])
def test_shell_string_built_from_its_arguments_is_asked(command: str) -> None:
    for rules in (ASK_DEFAULT, ALLOW_DEFAULT):
        assert rules.evaluate(command).action == "ask", command
