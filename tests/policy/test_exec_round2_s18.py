"""Attack review s18, round 2: holes in this session's own exec-policy fixes. Commands are data
only: never run in a shell here.

Shell facts relied on (bash 5.2.15), checked with `touch MARK` in an empty folder under /tmp:
- a variable given the integer attribute evaluates every later value as arithmetic, and a
  nameref to `a[x]` evaluates its subscript on each use: `printf -v x 'a[\\x24(touch MARK)]';
  declare -i n; n=x` makes MARK, and so do `typeset -i n; n+=x`, `declare -i n; read n <<< x`,
  `declare -i n; printf -v n x`, `declare -n r='a[x]'; r=1` and `declare -n r; r='a[x]'; r=1`;
- a glob expands to whatever names exist, so a glob among a folder's entries may be every one
  of them: `echo /[!x]*` prints `/bin /boot /dev /etc ...`, and `/*/*` names everything one level
  further down; `~+` is the working folder;
- a glob in an option word expands to a file named like an option: with a file `--force` in
  the folder, `echo git push --f* --forc[e]` prints `git push --force --force`; with `-r`,
  `echo rm -? -f` prints `rm -r -f`.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules

RULES = dict(allow=["git status", "ls", "echo", "printf", "test", "read"],
             ask=["curl"], forbid=["rm", "git push"])
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")

# 1. The integer attribute and namerefs: the attribute is given in one command, the value that
#    runs a `$(...)` is evaluated by a later plain assignment or `read` that looks harmless.
INTEGER_OR_NAMEREF = [
    "printf -v x 'a[\\x24(rm -rf x)]'; declare -i n; n=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; typeset -i n; n+=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; declare -i n; read n <<< x",
    "printf -v x 'a[\\x24(rm -rf x)]'; declare -i n; printf -v n x",
    "printf -v x 'a[\\x24(rm -rf x)]'; declare -n r='a[x]'; r=1",
    "printf -v x 'a[\\x24(rm -rf x)]'; declare -n r; r='a[x]'; r=1",
    "declare -ai n",
]


@pytest.mark.parametrize("command", INTEGER_OR_NAMEREF)
def test_integer_attribute_or_nameref_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["declare -a n", "declare -x n=1", "declare -p n"])
def test_other_declarations_stay_allowed(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "allow", command


# 2. A glob among a rule path's entries may be every one of them: only a glob that matched the
#    made-up name `x` was asked, so `[!x]*` (which matches every other name) was allowed, and so
#    was `/*/*`, which empties every folder in `/`, and `~+/*` (the working folder's entries).
GLOBBED = ExecRules(allow=["ls", "git status"], ask=["git commit"],
                    forbid=["rm -rf /", "rm -rf ~", "rm -rf .", "git push --force"],
                    default="allow")


@pytest.mark.parametrize("command", [
    "rm -rf /[!x]*", "rm -rf /*/*", "rm -rf ~/[!x]*", "rm -rf [!x]*", "rm -rf ~+/*",
    "rm -rf /.[!.]*", "rm -rf /a* /b* /c*",
])
def test_any_glob_among_a_rule_paths_entries_is_asked(command: str) -> None:
    assert GLOBBED.evaluate(command).action == "ask", command


# 3. A glob in an option word may expand to the rule's flag: `git push --f*` with a file named
#    `--force` is a forced push; only positional words were compared as globs.
@pytest.mark.parametrize("command", [
    "git push --f*", "git push --forc[e] origin main", "git push -? origin main",
    "rm -? -f /", "rm --rec* -f /",
])
def test_a_globbed_option_that_may_be_the_rules_flag_is_asked(command: str) -> None:
    assert GLOBBED.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["rm -rf build/*", "rm -f *.pyc", "git log -- '*.py'",
                                     "ls /*", "git status *", "rm -rf /tmp/*", "rm -rf /tmp/x",
                                     "git push origin main"])
def test_a_glob_outside_every_rule_stays_as_the_default_says(command: str) -> None:
    assert GLOBBED.evaluate(command).action == "allow", command


# 4. Inside `[[ ... ]]` only an unquoted `]]` outside the regex's parentheses ends it: bash
#    reads `"]]"`, `]\]` and the `]]` of `=~ ( ]] )` as words of the condition. The reader took
#    each for the end, then read the regex's `<<A` as a here-document that hid the next lines,
#    which bash runs (checked: `[[ a =~ "]]"(x<<A) ]]` newline `touch MARK` newline `A` makes
#    MARK). The forbidden line was asked, not denied.
CONDITION_NOT_ENDED = [
    '[[ a =~ "]]"(x<<A) ]]\nrm -rf x\nA',
    "[[ a =~ ']]'(x<<A) ]]\nrm -rf x\nA",
    "[[ a =~ ]\\](x<<A) ]]\nrm -rf x\nA",
    "[[ a =~ ( ]] <<A ) ]]\nrm -rf x\nA",
    "[[ a =~ ((x) ]] (y<<A) ) ]]\nrm -rf x\nA",
]


@pytest.mark.parametrize("command", CONDITION_NOT_ENDED)
def test_a_quoted_or_grouped_double_bracket_does_not_end_the_condition(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ExecRules(**RULES).evaluate(command).action == "deny", command


def test_an_unquoted_double_bracket_still_ends_the_condition() -> None:
    # After the real `]]` a `<<` is a here-document again: its body is data, not commands (a
    # `[[` is always asked; read as a command, the body's rm would be denied).
    for command in ("[[ a =~ (x) ]] && cat <<'A'\nrm -rf x\nA",
                    "[[ a =~ ( ]] ) ]] && cat <<'A'\nrm -rf x\nA"):
        assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


# 5. bash's own integer variables (RANDOM, SRANDOM, OPTIND, HISTCMD: `declare -i` lists them)
#    evaluate every value given them as arithmetic, like a variable made with `declare -i`:
#    `printf -v x 'a[\x24(touch MARK)]'; read OPTIND <<< x` makes MARK, and so do `printf -v
#    RANDOM x`, `OPTIND=x`, `SRANDOM+=x`, `for OPTIND in x`, `export OPTIND=x`, `mapfile -t
#    OPTIND`. The allow rules for printf and read allowed the first two under an ask default.
BUILTIN_INTEGER = [
    "printf -v x 'a[\\x24(rm -rf x)]'; read OPTIND <<< x",
    "printf -v x 'a[\\x24(rm -rf x)]'; printf -v RANDOM x",
    "printf -v x 'a[\\x24(rm -rf x)]'; read -a RANDOM <<< x",
]


@pytest.mark.parametrize("command", BUILTIN_INTEGER)
def test_a_value_for_bashs_integer_variable_is_not_allowed_by_a_rule(command: str) -> None:
    assert ExecRules(**RULES).evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", [
    *BUILTIN_INTEGER,
    "printf -v x 'a[\\x24(rm -rf x)]'; OPTIND=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; SRANDOM+=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; HISTCMD=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; for OPTIND in x; do :; done",
    "printf -v x 'a[\\x24(rm -rf x)]'; export OPTIND=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; declare RANDOM=x",
    "printf -v x 'a[\\x24(rm -rf x)]'; mapfile -t OPTIND <<< x",
])
def test_a_value_for_bashs_integer_variable_is_asked(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


@pytest.mark.parametrize("command", ["echo random optind", "read -r line", "printf -v out %s 1"])
def test_other_names_stay_allowed(command: str) -> None:
    assert ExecRules(**RULES).evaluate(command).action == "allow", command


# 6. Inside `$(...)` bash drops a backslash-newline before it reads words: in `a\` newline `#)`
#    the `#` ends the word `a#`, it starts no comment, and that `)` ends the substitution. The
#    reader took the `#` for a comment (it followed a newline), hid the `)` in it, and read the
#    next line into the substitution's quoted text (checked: `echo "$(echo a\` newline
#    `#)" ; touch MARK ; echo "` newline `)"` makes MARK). The forbidden line was asked, not
#    denied.
@pytest.mark.parametrize("command", [
    'echo "$(echo a\\\n#)" ; rm -rf x ; echo "\n)"',
    'echo "$(echo a\\\n\\\n#)" ; rm -rf x ; echo "\n)"',
    # a blank before the backslash-newline: the `#` starts a comment, as before
    "echo $(true \\\n#)'\nrm -rf x\n#')\n)",
])
def test_a_hash_after_a_continuation_is_read_as_bash_joins_it(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ExecRules(**RULES).evaluate(command).action == "deny", command


# 7. A backslash-newline inside a here-document's delimiter is dropped by bash before it reads
#    the word: `<<A\` newline `B` is the unquoted delimiter AB, so the body is expanded and its
#    `$(...)` runs (checked: `cat <<A\` newline `B` newline `$(touch MARK)` newline `AB` makes
#    MARK). The reader saw a backslash in the delimiter, took it for a quoted one (no expansion)
#    and the rule for cat allowed the line. Only a continuation right after `<` was caught.
@pytest.mark.parametrize("command", [
    "cat <<A\\\nB\n$(rm -rf x)\nAB",
    "cat <<-A\\\nB\n\t$(rm -rf x)\n\tAB",
    "cat <<A\\\n\\\nB\n`rm -rf x`\nAB",
])
def test_a_continuation_inside_a_delimiter_leaves_it_unquoted(command: str) -> None:
    rules = dict(RULES, allow=[*RULES["allow"], "cat"])
    assert ExecRules(**rules).evaluate(command).action == "deny", command
    assert ExecRules(**rules, default="allow").evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", ["cat <<'A'\n$(rm -rf x)\nA", "cat <<\\A\n$(rm -rf x)\nA",
                                     "cat <<A\\ B\n$(rm -rf x)\nA B"])
def test_a_quoted_delimiter_still_keeps_its_body_data(command: str) -> None:
    rules = dict(RULES, allow=[*RULES["allow"], "cat"])
    assert ExecRules(**rules).evaluate(command).action == "allow", command


# 8. In an unquoted here-document's body bash joins a line ending in a backslash with the next
#    before it compares a line with the delimiter: `A\` newline `B` ends a body delimited by AB
#    (checked: `cat <<AB` newline `x` newline `A\` newline `B` newline `touch MARK` makes MARK).
#    The reader compared the lines as written, kept reading the body to the end, and the rule
#    for cat allowed the line that follows it.
@pytest.mark.parametrize("command", [
    "cat <<AB\nx\nA\\\nB\nrm -rf x",
    "cat <<AB\nA\\\n\\\nB\nrm -rf x",
])
def test_a_continuation_in_a_body_may_end_it(command: str) -> None:
    rules = dict(RULES, allow=[*RULES["allow"], "cat"])
    assert ExecRules(**rules).evaluate(command).action == "deny", command
    assert ExecRules(**rules, default="allow").evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", [
    "cat <<'AB'\nA\\\nB\nrm -rf x\nAB",  # quoted: no joining, the body ends at AB
    "cat <<AB\nA\\\\\nB\nrm -rf x\nAB",  # an escaped backslash joins nothing
])
def test_a_body_that_bash_does_not_join_stays_data(command: str) -> None:
    rules = dict(RULES, allow=[*RULES["allow"], "cat"])
    assert ExecRules(**rules).evaluate(command).action == "allow", command
