"""Attack review s18 of the exec policy: command lines whose decision says allow (or ask where a
forbid rule should deny) while bash runs the forbidden program. Commands are data only: never
run in a shell here.

Shell facts relied on (bash 5.2.15), checked with `touch MARK` in place of the forbidden program
in an empty folder under /tmp:
- `((` is an arithmetic command wherever a compound command may start, also after `time -p`,
  `time --`, `function NAME` and `coproc [NAME]`: `printf 'time -p ((x<<A))\\ntouch MARK\\nA\\n'
  | bash` makes MARK (the `<<` is a shift, the next line a command, not a here-document body);
- bash evaluates a variable's value as arithmetic where a name stands in an arithmetic context,
  and a subscript in that value runs its `$(...)`: `printf -v x 'a[\\x24(touch MARK)]'; printf -v
  'a[x]' 1` makes MARK (printf builds the value from an escape, so no `$(` is ever written), and
  so do `x='a[$'; x+='(touch MARK)]'; ((x))`, `(( $x ))`, `let x`, `read 'a[x]'`, `test -v
  'a[x]'`, `declare 'a[x]=1'` and `declare -i n=x` after such a value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.daemon.evaluation import PolicyEvaluator
from console.daemon.live_config import LiveConfig
from console.policy import ExecRules, GrantTable
from tests.policy.test_exec_attacks_s12 import (  # noqa: F401  (fixtures)
    _helper,
    _policy_check,
    agent_sock,
    config_file,
)

RULES = dict(allow=["git status", "ls", "echo", "printf", "test", "read"],
             ask=["curl"], forbid=["rm", "git push"])
ASK_DEFAULT = ExecRules(**RULES)
ALLOW_DEFAULT = ExecRules(**RULES, default="allow")


def _config(default: str) -> str:
    return (f'[profiles.t]\ncommand = ["true"]\n[profiles.t.exec]\ndefault = "{default}"\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in RULES.items()))


def _every_path(command: str, default: str, tmp_path: Path) -> list[str]:
    """The decision of the engine, the daemon's evaluator (what ph-ask and ph-claude-hook get)
    and `pilothouse policy check`, for the test profile with that default."""
    config = tmp_path / f"config-{default}.toml"
    config.write_text(_config(default))
    rules = ASK_DEFAULT if default == "ask" else ALLOW_DEFAULT
    evaluator = PolicyEvaluator(LiveConfig(config), GrantTable())
    return [rules.evaluate(command).action, evaluator.policy_eval("exec", command, "r1", "t").action,
            _policy_check(config, tmp_path / "home", command)]


# 1. `((` after `time -p`, `function NAME` or `coproc [NAME]` was read as two subshells, so its
#    `<<` started a here-document that hid the next lines: bash runs them. An allow default
#    allowed the line; an ask default asked instead of denying.
AFTER_WORDS = [
    "time -p ((x<<A))\nrm -rf x\nA",
    "time -p -- ((x<<A))\ngit push --force\nA",
    "time -- ((x<<A))\nrm x\nA",
    "function f ((x<<A))\nrm -rf x\nA",
    "coproc ((x<<A))\nrm -rf x\nA",
    "coproc N ((x<<A))\nrm -rf x\nA",
    "time -p ! ((x<<A))\nrm -rf x\nA",
]


@pytest.mark.parametrize("command", AFTER_WORDS)
def test_arithmetic_after_time_function_or_coproc_hides_nothing(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command
    assert ASK_DEFAULT.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", AFTER_WORDS[:1] + AFTER_WORDS[3:5])
def test_arithmetic_after_time_every_path_denies(command: str, tmp_path: Path) -> None:
    assert _every_path(command, "allow", tmp_path) == ["deny"] * 3, command


# 2. A name read in an arithmetic context evaluates the variable's value, and a subscript in
#    that value runs its `$(...)`. The reader looked only for a `$(` written in an assignment,
#    so a value it never sees whole (built by printf's escapes, appended with +=, read from
#    input) was run by a command an allow rule (printf, test, read) carried.
THROUGH_A_VALUE_ALLOWED_BY_RULES = [
    "printf -v x 'a[\\x24(rm -rf x)]'; printf -v 'a[x]' 1",
    "printf -v x 'a[\\044(rm -rf x)]'; printf -va[x] 1",
    "printf -v x 'a[\\x24(rm -rf x)]'; test -v 'a[x]'",
    "printf -v x 'a[\\x24(rm -rf x)]'; read 'a[x]' <<< 1",
    "printf -v x '%s(rm -rf x)]' 'a[$'; printf -v 'a[ x ]' 1",
]
THROUGH_A_VALUE = THROUGH_A_VALUE_ALLOWED_BY_RULES + [
    "x='a[$'; x+='(rm -rf x)]'; ((x))",
    "x='a[$'; x+='(rm -rf x)]'; (( $x ))",
    "x=a[\\$; x+=\\(rm\\ -rf\\ x\\)]; let x",
    "read x; for ((i = x; i < 1; i++)); do :; done",
    "read x; declare -i n=x",
    "read x; declare 'a[x]=1'",
]


@pytest.mark.parametrize("command", THROUGH_A_VALUE_ALLOWED_BY_RULES)
def test_arithmetic_on_a_value_is_not_allowed_by_a_rule(command: str, tmp_path: Path) -> None:
    assert _every_path(command, "ask", tmp_path) == ["ask"] * 3, command


@pytest.mark.parametrize("command", THROUGH_A_VALUE)
def test_arithmetic_on_a_value_is_asked_under_an_allow_default(command: str) -> None:
    assert ALLOW_DEFAULT.evaluate(command).action == "ask", command


# What stays allowed: arithmetic on numbers only, and the same builtins without a subscript.
@pytest.mark.parametrize("command", ["printf -v x '%s' 1", "printf 'a[x]\\n'", "read -r x",
                                     "test -v x", "printf -v 'a[1]' 1", "((1<<2))",
                                     "((16#ff + 0x1f))"])
def test_arithmetic_on_numbers_stays_as_the_rules_say(command: str) -> None:
    expect = "allow" if not command.startswith("((") else "ask"
    assert ASK_DEFAULT.evaluate(command).action == expect, command
    assert ALLOW_DEFAULT.evaluate(command).action == "allow", command


# 3. bash drops a backslash-newline before it reads tokens (outside single quotes), so `$\`
#    then a newline then `(cmd)` is `$(cmd)`, `(\` newline `(` is `((`, `<<\` newline `A` is an
#    unquoted `<<A`. The reader skipped the pair inside a word but looked at the characters on
#    either side as they were written: it saw a plain `$`, two subshells, a quoted delimiter.
#    `ls $\<newline>[1<<2]` hid the next lines in a here-document that bash never reads, and the
#    built-in allow rule for ls allowed the line (checked: the next line runs, `touch MARK`).
JOINED_BY_A_CONTINUATION = [
    "ls $\\\n[1<<2]\nrm -rf /\n2]",
    "(\\\n(ls<<A))\nrm -rf /\nA",
    "cat <<\\\nA\n$(rm -rf /)\nA",
    "echo \"$\\\n(rm -rf /)\"",
    "echo $\\\n'\\x72m' -rf x",
    "ls $\\\n{x:--o}",
]


@pytest.mark.parametrize("command", JOINED_BY_A_CONTINUATION)
def test_a_continuation_that_joins_a_token_is_not_allowed(command: str, tmp_path: Path) -> None:
    rules = dict(RULES, allow=[*RULES["allow"], "cat"])
    assert ExecRules(**rules).evaluate(command).action == "ask", command
    assert ExecRules(**rules, default="allow").evaluate(command).action != "allow", command


@pytest.mark.parametrize("command", JOINED_BY_A_CONTINUATION[:1])
def test_a_continuation_every_path_asks(command: str, tmp_path: Path) -> None:
    assert _every_path(command, "ask", tmp_path) == ["ask"] * 3, command


@pytest.mark.parametrize("command", ["ls -la \\\n  x", "git status && \\\n  ls", "echo a\\\nb"])
def test_continuations_between_words_stay_allowed(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "allow", command


# 4. Lines a forbid rule should deny that were only asked (a person could say yes to them):
#    - in `[[ a =~ (x<<A) ]]` the parenthesised regex is one word to bash, and `<<` is never a
#      here-document inside `[[ ... ]]`; the reader took `(` for a subshell and `<<A` for a
#      here-document that hid the next lines, which bash runs;
#    - inside `$(...)` a `#` after `;`, `|`, `&`, `)`, `<` or `>` starts a comment (it starts a
#      word), which hides a `)`; the reader ended the substitution at that `)` and took the next
#      lines for a quoted string: `echo $(true;#)'` newline `rm x` newline `#')` newline `)`
#      runs rm inside the substitution.
FORBID_ONLY_ASKED = [
    "[[ a =~ (x<<A) ]]\nrm -rf x\nA",
    "if [[ a =~ ( <<A) ]]; then :; fi\ngit push --force\nA",
    "echo $(true;#)'\nrm -rf x\n#')\n)",
    "echo $(echo a|#)'\nrm -rf x\n#')\n)",
    "echo \"$(true&#)\"'\nrm -rf x\n#')\"\n)\"",
]


@pytest.mark.parametrize("command", FORBID_ONLY_ASKED)
def test_forbidden_program_hidden_from_the_reader_is_denied(command: str) -> None:
    assert ASK_DEFAULT.evaluate(command).action == "deny", command
    assert ALLOW_DEFAULT.evaluate(command).action == "deny", command


def test_a_double_bracket_that_is_an_argument_keeps_its_here_document() -> None:
    # `echo [[ <<A` has a here-document in bash: reading its body as commands would let a quote
    # in it swallow the line after its delimiter, which bash runs.
    command = "echo [[ <<A\n'\nA\nrm -rf /\n#'"
    assert ASK_DEFAULT.evaluate(command).action == "deny"
    assert ALLOW_DEFAULT.evaluate(command).action == "deny"
    assert ALLOW_DEFAULT.evaluate("if ! [[ a =~ (x<<A) ]]; then :; fi\nrm -rf /\nA").action == "deny"


def test_here_document_after_a_condition_still_hides_its_body() -> None:
    # After `]]` a `<<` is a here-document again (bash reads one there): its body is data.
    assert ASK_DEFAULT.evaluate("[[ -n x ]] && cat <<'A'\nrm -rf x\nA").action == "ask"
    assert ALLOW_DEFAULT.evaluate("cat <<'A'\nrm -rf x\nA").action == "allow"


# 5. A glob in a command's words is expanded by bash before the program sees them: with a file
#    named `push` in the folder, `git pu* --force` runs `git push --force`; `rm -rf /*` empties
#    `/` as `rm -rf /` would (bash: `echo rm -rf /*` prints `rm -rf /bin /boot ...`). Forbid and
#    ask rules compared the glob's text with their words, saw no match, and an allow default
#    allowed both. A glob that may stand for a forbid or ask rule's words is now asked.
GLOBBED = ExecRules(allow=["ls", "git status"], ask=["git commit"],
                    forbid=["rm -rf /", "rm -rf ~", "rm -rf .", "git push --force"],
                    default="allow")


@pytest.mark.parametrize("command", [
    "git pu* --force", "git p?sh -f origin main", "git pu[s]h origin +main",
    "rm -rf /*", "rm -fr //*", "sudo rm -rf /[a-z]*", "rm -rf ~/*", "rm -rf ./*", "rm -rf *",
    "git comm* -m x", "ls; git pu* --force",
])
def test_a_glob_that_may_stand_for_a_rule_is_asked(command: str, tmp_path: Path) -> None:
    assert GLOBBED.evaluate(command).action == "ask", command


@pytest.mark.parametrize(("command", "rule"), [
    ("rm -rf *", "rm -rf ."), ("rm -rf /*", "rm -rf /"), ("rm -rf ~/*", "rm -rf ~"),
    ("rm -rf ./*", "rm -rf ."), ("git pu* --force", "git push --force")])
def test_a_globs_ask_names_the_rule_it_may_stand_for(command: str, rule: str) -> None:
    """A `*` never spans a `/` in bash: `rm -rf *` empties the folder (rule `rm -rf .`), it
    never stands for `/` (it was said to)."""
    detail = GLOBBED.evaluate(command).provenance.detail
    assert f'rule "{rule}"' in detail, detail


def test_a_glob_on_every_path_is_asked(tmp_path: Path) -> None:
    assert _every_path("git pu* --force", "allow", tmp_path) == ["ask"] * 3


@pytest.mark.parametrize("command", ["rm -rf build/*", "rm -f *.pyc", "git log -- '*.py'",
                                     "ls /*", "git status *", "rm -rf /tmp/x"])
def test_a_glob_no_rule_names_stays_as_the_default_says(command: str) -> None:
    assert GLOBBED.evaluate(command).action == "allow", command


# The agent's own paths (ph-ask exec, ph-claude-hook) through a run's agent.sock, for the s12
# profile (allow default, forbid "rm -rf /"): a hidden forbidden line is denied by the rule, a
# line the reader cannot follow is never allowed (asked, then denied when nobody answers).
async def test_ph_ask_and_hook_deny_what_the_reader_now_sees(agent_sock: Path) -> None:  # noqa: F811
    for command in ("time -p ((x<<A))\nrm -rf /\nA", "[[ a =~ (x<<A) ]]\nrm -rf /\nA"):
        rc, _, err = await _helper(agent_sock, "ph-ask", "exec", "--", command)
        assert rc == 1 and "forbid" in err, (command, rc, err)
        event = {"tool_name": "Bash", "tool_input": {"command": command}, "cwd": "/workspace",
                 "session_id": "s18", "hook_event_name": "PreToolUse"}
        rc, out, _ = await _helper(agent_sock, "ph-claude-hook", stdin=json.dumps(event).encode())
        got = json.loads(out)["hookSpecificOutput"]
        assert rc == 0 and got["permissionDecision"] == "deny", (command, got)
        assert "forbidden by rule" in got["permissionDecisionReason"], (command, got)


async def test_hook_never_allows_a_joining_continuation(agent_sock: Path) -> None:  # noqa: F811
    event = {"tool_name": "Bash", "tool_input": {"command": "ls $\\\n[1<<2]\nrm -rf /\n2]"},
             "cwd": "/workspace", "session_id": "s18", "hook_event_name": "PreToolUse"}
    rc, out, _ = await _helper(agent_sock, "ph-claude-hook", stdin=json.dumps(event).encode())
    assert rc == 0 and json.loads(out)["hookSpecificOutput"]["permissionDecision"] != "allow"
