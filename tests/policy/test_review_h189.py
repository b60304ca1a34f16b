"""Review h189: a reserved word right after a compound command's head starts a new command.

bash takes a reserved word (`then`, `do`, `{`, ...) with no `;` or newline before it after an
arithmetic command `((...))`, a `[[ ... ]]`, `for NAME`, `select NAME` and a closing `esac`
(parse.y, reserved_word_acceptable): `if ((1)) then rm -rf ~; fi` runs rm, as do `while [[ -d . ]]
do ...`, `for ((;;)) { ...; }`, `for x do ...` and `if case x in x) ;; esac then ...`. The reader
(console/policy/shellwords.py) kept the head and the command after it in one part, whose program
was `((1))` (or `for`, `esac`): no forbid rule reached rm, so the built-in profiles only asked,
and a profile whose default is allow allowed it. Commands are data only here; bash itself runs
them in tmp_path with `touch mark` in their place.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from console.policy import ExecRules, evaluate_exec
from tests.conftest import Daemon
from tests.policy.builtin_profiles import builtin_rules

# Each as bash runs it; CMD is the forbidden command.
HEADS = [
    "if ((1)) then CMD; fi",
    "if (( 2 > 1 )) then :; else :; fi; while ((1)) do CMD; break; done",
    "until ((0)) do CMD; break; done",
    "while [[ -d . ]] do CMD; break; done",
    "if [[ -n x ]] then CMD; fi",
    "for ((;;)) { CMD; break; }",
    "for ((i = 0; i < 1; i++)) do CMD; done",
    "set -- a; for x do CMD; done",
    "if case x in x) ;; esac then CMD; fi",
    "if ! ((0)) then CMD; fi",
    "if ((1)) then eval 'CMD'; fi",
]


@pytest.mark.parametrize("profile", ["claude", "demo", "codex", "aider"])
@pytest.mark.parametrize("head", HEADS)
def test_a_command_after_a_compound_head_meets_the_forbid_rules(profile: str, head: str) -> None:
    line = head.replace("CMD", "rm -rf ~")
    decision = evaluate_exec(line, builtin_rules(profile), consume=False)
    assert decision.action == "deny", (line, decision)


@pytest.mark.parametrize("head", [*HEADS, "select x do CMD; break; done"])
def test_a_default_allow_profile_never_allows_it(head: str) -> None:
    rules = ExecRules(allow=["ls"], ask=["git push"], forbid=["rm -rf ~"], default="allow")
    assert evaluate_exec(head.replace("CMD", "rm -rf ~"), rules, consume=False).action == "deny"
    asked = head.replace("CMD", "git push origin main")
    assert evaluate_exec(asked, rules, consume=False).action == "ask", asked


@pytest.mark.parametrize("line", [
    "git log --grep for x do",     # a word `for` not where a command starts
    "grep -n then src/a.py",
    "ls esac then",
])
def test_such_words_as_arguments_are_still_arguments(line: str) -> None:
    assert evaluate_exec(line, builtin_rules("claude"), consume=False).action == "allow"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("head", HEADS)
def test_bash_runs_the_command_after_the_head(tmp_path: Path, head: str) -> None:
    subprocess.run(["bash", "-c", head.replace("CMD", "touch mark")], cwd=tmp_path,
                   capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (tmp_path / "mark").exists(), head


@pytest.mark.parametrize("line", ["if ((1)) then rm -rf ~; fi", "for ((;;)) { git reset --hard; break; }"])
def test_the_daemons_answer_is_deny(daemon: Daemon, line: str) -> None:
    """`pilothouse policy check` against a real daemon: what ph-ask and the hook get."""
    out = daemon.cli("policy", "check", "claude", "--json", "--", line)
    assert json.loads(out.stdout)["decision"] == "deny", (line, out.stdout)


# 2. A here-document inside `$(...)`, `<(...)` or `"$(...)"`: bash reads its body as data up to
#    the delimiter line, and the substitution ends after it. The reader's scanner
#    (shellscan.close_paren) did not know here-documents, so a `)` in the body ended the
#    substitution there, and a `'` after it opened a quote that hid the rest of the line:
#    `rm -rf ~` was one word of `ls`'s, asked, not refused (or the line could not be read).
IN_SUBSTITUTION = [
    "ls $(cat <<'EOF'\n)'\nEOF\n); CMD; echo \\'",
    "ls $(cat <<EOF\n)'\nEOF\n); CMD; echo \\'",
    "cat <(cat <<'EOF'\n)'\nEOF\n); CMD; echo \\'",
    "echo \"$(cat <<'EOF'\n)\"\nEOF\n)\"; CMD",
    "ls $(cat <<-EOF\n)'\n\tEOF\n); CMD; echo \\'",
    # a `<<` the scanner takes for a here-document that bash reads as a shift: the line is also
    # read without skipping bodies, and the stricter reading wins
    "echo $( ((1<<EOF))\n) ; echo '\nEOF\n'; CMD; echo ')'",
]


@pytest.mark.parametrize("profile", ["claude", "demo", "codex", "aider"])
@pytest.mark.parametrize("line", IN_SUBSTITUTION)
def test_a_here_document_in_a_substitution_hides_no_command(profile: str, line: str) -> None:
    line = line.replace("CMD", "rm -rf ~")
    assert evaluate_exec(line, builtin_rules(profile), consume=False).action == "deny", line


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("line", IN_SUBSTITUTION)
def test_bash_runs_the_command_after_the_substitution(tmp_path: Path, line: str) -> None:
    subprocess.run(["bash", "-c", line.replace("CMD", "touch mark")], cwd=tmp_path,
                   capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (tmp_path / "mark").exists(), line


def test_a_commit_message_with_a_parenthesis_is_read() -> None:
    """The line Claude Code writes for a commit, a `)` in its message: still one commit, asked
    by the profile's rule."""
    line = "git commit -m \"$(cat <<'EOF'\nfix: step 1)\nEOF\n)\""
    decision = evaluate_exec(line, builtin_rules("claude"), consume=False)
    assert decision.action == "ask" and decision.provenance.rule == "git commit", decision
