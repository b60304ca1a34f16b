"""Commands an allow rule must not let through (docs/policy.md), found by an attack review.

Every command here was run under bash 5.2 (GNU coreutils, tar, curl, sed, less) with a fake `git`
on PATH: the comment says what it really does. The policy's default is "ask"; before, each of
these was allowed by an allow rule, with no person asked.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = ExecRules(
    allow=["git status", "ls", "cat", "echo", "sort", "tar", "curl", "less", "sed"],
    ask=["git push"],
    forbid=["rm -rf /", "git push --force"],
)


# 1. The reader does not know here-document bodies: a quote inside the body opens a "string"
#    that swallows the next lines, which bash runs as commands.
#    docs: "every part is checked; the strictest wins: forbid > ask > allow > default"
@pytest.mark.parametrize("command", [
    "cat <<EOF\ncat '\nEOF\ngit push --force #'",         # bash: cat, then git push --force
    "cat <<'EOF'\ncat '\nEOF\nrm -rf / #'",               # bash: cat, then rm -rf /
    'cat <<EOF\ncat "\nEOF\ngit push --force #"',        # the same with a double quote
])
def test_heredoc_body_hides_the_next_lines(command: str) -> None:
    assert RULES.evaluate(command).action == "deny", command


# 2. `${...}` is closed at the first `}` even when it is quoted inside (shellscan.close_brace):
#    the `$(...)` after it is read as single-quoted text, so the part is not opaque.
#    docs: "Substitutions (`$(...)`, backticks, `<(...)`, `${x:-$(...)}`) ... are asked, never
#    allowed by a rule."
@pytest.mark.parametrize("command", [
    "echo ${x:-'}'$(git push --force)} #'",               # bash: runs git push --force
    "cat ${x:-'}'$(rm -rf /)} #'",                        # bash: runs rm -rf /
    "ls ${x:-'}'$(touch /tmp/pwned)} #'",
])
def test_quoted_brace_inside_parameter_expansion_hides_a_substitution(command: str) -> None:
    assert RULES.evaluate(command).action != "allow", command


# 3. `>&WORD` where WORD is not all digits (nor `-`) writes stdout and stderr to the file WORD;
#    the reader takes `>&2` (or `>&` + a non-ASCII digit) as a dup and the rest as an argument.
#    docs: "an allow rule never allows a redirection that writes a file (... `>& f`)"
@pytest.mark.parametrize("command", [
    "ls >&2x",        # bash: creates the file "2x"
    "ls >&1.bak",     # creates "1.bak"
    "ls >&\u0662",    # ARABIC-INDIC DIGIT TWO: bash creates a file of that name
])
def test_dup_lookalike_writes_a_file(command: str) -> None:
    assert RULES.evaluate(command).action == "ask", command


# 4. An option that only appears after expansion: brace expansion, $"..." (locale quoting),
#    ${x:-WORD} defaults and $_ are not read as options by risky_options.
#    docs: "Options that run a program or write a file (... `sort -o` ...) are never carried by an
#    allow rule that does not name them."
@pytest.mark.parametrize("command", [
    "sort {-o,/tmp/x} f",          # bash: sort -o /tmp/x f
    'sort $"-o" /tmp/x f',         # bash: sort -o /tmp/x f
    "sort ${x:--o} /tmp/x f",      # bash: sort -o /tmp/x f
    "ls -o; sort $_ /tmp/x f",     # $_ is the last word of `ls -o`: sort -o /tmp/x f
    "sort ${x:---output=/tmp/x} f",
])
def test_an_option_made_by_expansion_is_still_an_option(command: str) -> None:
    assert RULES.evaluate(command).action == "ask", command


# 5. Options (and script commands) that write a file or run a program, missing from execshape's
#    _RISKY_SHORT/_RISKY_LONG: long spellings of short options already listed (tar x/c/r/u/A,
#    less -O), tar's dashless bundled options, curl's other file-writing options. (sed's `w` and
#    `e` script commands are the script's, not options: docs/policy.md says an allow rule for sed
#    allows its scripts.)
@pytest.mark.parametrize("command", [
    "tar xf a.tar",                      # old-style bundle: extracts (writes files)
    "tar cf out.tar .",                  # creates out.tar
    "tar --extract -f a.tar",            # = -x, which is listed
    "tar --create -f out.tar .",         # = -c, which is listed
    "less --LOG-FILE=/tmp/x f",          # = -O, which is listed (case-sensitive long name)
    "curl --remote-name-all https://example.com/f",   # writes ./f like -O
    "curl --trace /tmp/x https://example.com/",       # writes the trace file
])
def test_other_writing_or_executing_options_are_not_carried(command: str) -> None:
    assert RULES.evaluate(command).action == "ask", command
