"""What held up in the second attack review of the exec reader, kept so it stays so. Commands
are strings only: never run in a shell."""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = dict(allow=["git status", "ls", "cat", "echo"], ask=["git push"],
             forbid=["rm -rf /", "git push --force"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")

DENIED = [
    "cat <<A <<B\na\nA\nb\nB\ngit push --force\n",            # two here-docs on one line
    "cat <<A; cat <<B\na\nA\nb\nB\ngit push --force\n",
    "cat <<E\"O\"F\n'\nEOF\ngit push --force\n",               # quote in the middle, ' in body
    "cat <<EOF\nEOFX\n'\nEOF\ngit push --force\n",             # a line starting with the delimiter
    "cat <<EOF\r\n'\r\nEOF\r\ngit push --force;\r\n",          # CRLF (the delimiter is EOF\r)
    "cat <<EOF; git push --force\nbody\nEOF\n",                # here-doc then ; on the same line
    "cat <<EOF &&\nbody\nEOF\ngit push --force\n",
    "cat <<EOF\n$(git push --force)\nEOF\n",                   # unquoted body runs $(...)
    "bash <<'EOF'\ngit push --force\nEOF\n",                   # shell reading a here-doc
    "bash -c 'cat <<EOF\n'\"'\"'\nEOF\ngit push --force'",     # here-doc inside bash -c
    "echo ${x:-'}'$(git push --force)}",
    "echo \"${x:-\"'$(git push --force)'\"}\"",
    "echo \"${x:-\"${y:-\"'$(git push --force)'\"}\"}\"",
    "git push >&2x --force",
    "watch -x git push --force",
    "flock -x /tmp/l git push --force",
    "alias g='git push --force'",
    "time -p -- git push --force",
    "sudo FOO=1 git push --force",
]


@pytest.mark.parametrize("command", DENIED)
def test_denied(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


NOT_ALLOWED = [
    "echo {a,b}", "echo $HOME", "echo ${x}", "echo $\"x\"", "echo \"$x\"",
    "ls >&2x", "ls >& 2", "cat <<$'EOF'\nx\nEOF\n",
]


@pytest.mark.parametrize("command", NOT_ALLOWED)
def test_not_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action != "allow", command


def test_missing_delimiter_is_data() -> None:
    # bash: end of input ends the here-document; its lines are data, so cat is allowed
    assert ASK_DEFAULT.evaluate("cat <<EOF\ngit push --force").action == "allow"
