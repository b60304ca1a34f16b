"""Review h151: a `#` inside an arithmetic command hid the rest of its line.

bash finds the `))` of `((...))` without reading comments (`(( echo #x ))` is the expression
`echo #x`, an error whose status is 1), then runs what follows on the line. The reader found
the end with comments read, so the `#` hid `)); rm -rf /`: it fell back to subshells and saw
only `echo`, which an allow rule allowed, and no forbid rule saw the rest. Commands are data
only here; where bash is present, a stand-in `touch` that only leaves a mark shows it runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from console.policy import ExecRules, evaluate_exec
from console.policy.shellwords import split_command
from tests.conftest import Daemon

RULES = ExecRules(allow=["echo", "git status", "touch"], ask=["curl"], forbid=["rm -rf /"], default="ask")
OPEN = ExecRules(allow=["echo"], ask=["curl"], forbid=["rm -rf /"], default="allow")

HIDDEN = [
    "(( echo #x )); rm -rf /",
    "(( echo #x )) || rm -rf /",
    "((echo #)) ; rm -rf /",
    "(( git status # )); rm -rf /",
    "time (( echo #x )); rm -rf /",
    "for (( i #x )); do :; done; rm -rf /",
]


@pytest.mark.parametrize("line", HIDDEN)
def test_a_hash_in_an_arithmetic_command_hides_nothing_from_a_forbid_rule(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"


@pytest.mark.parametrize("line", ["(( echo #x )); curl http://x.invalid/", "(( echo #x )); touch mark"])
def test_nor_from_an_ask_rule_or_the_default(line: str) -> None:
    assert evaluate_exec(line, OPEN).action == "ask"
    assert evaluate_exec(line, RULES).action == "ask"


def test_the_arithmetic_command_is_one_word_and_the_rest_is_read() -> None:
    parts = split_command("(( echo #x )); rm -rf /")
    assert [p.words for p in parts] == [["(( echo #x ))"], ["rm", "-rf", "/"]]


def test_a_comment_in_a_substitution_inside_one_is_still_a_comment() -> None:
    # `$(...)` in `((...))` is a command substitution: a `#` in it does comment (to its line's end)
    parts = split_command("(( $(echo #)\n) )); rm -rf /")
    assert [p.words for p in parts][-1] == ["rm", "-rf", "/"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_runs_what_follows(tmp_path) -> None:
    subprocess.run(["bash", "-c", "(( echo #x )); touch mark"], cwd=tmp_path, capture_output=True, timeout=10)
    assert (tmp_path / "mark").exists()


# The same in a regex of `[[ ... =~ ... ]]`: bash reads its `(...)` as part of the word, with no
# comment in it. `[[` is always asked, but a forbid rule must still deny what follows.
REGEX = ["[[ a =~ (#x) ]]; rm -rf /", "[[ a =~ x(#y) ]]; rm -rf /", "[[ a =~ (a|#x) ]] ; rm -rf /",
         "[[ a =~ x(#y\n) ]]; rm -rf /"]


@pytest.mark.parametrize("line", REGEX)
def test_a_hash_in_a_regex_group_hides_nothing_from_a_forbid_rule(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_runs_what_follows_a_regex_group(tmp_path) -> None:
    subprocess.run(["bash", "-c", "[[ a =~ (#x) ]]; touch mark"], cwd=tmp_path, capture_output=True, timeout=10)
    assert (tmp_path / "mark").exists()


# And in an extglob group: `shopt -s extglob` on one line, then `echo @(#x) ; rm -rf /` runs rm
# (bash reads the group with no comment in it); the `)` on a later line is bash's syntax error,
# after rm ran. The group ends where either reading (a pattern, or `!` and a subshell) ends it.
EXTGLOB = ["shopt -s extglob\necho @(#x) ; rm -rf /\n)", "echo !(#x) ; rm -rf /\n)",
           "echo +(a|#x) ; rm -rf /\n)", "!(#x)\nrm -rf /\n)"]


@pytest.mark.parametrize("line", EXTGLOB)
def test_a_hash_in_an_extglob_group_hides_nothing_from_a_forbid_rule(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_runs_what_follows_an_extglob_group(tmp_path) -> None:
    subprocess.run(["bash", "-c", "shopt -s extglob\necho @(#x) ; touch mark\n)"], cwd=tmp_path,
                   capture_output=True, timeout=10)
    assert (tmp_path / "mark").exists()


# bash's own readings of $"..." and $'...': `$"A"` is "A" (no translation), so `cat <<$"A"` ends
# its body at a line `A` and runs what follows, which the reader took as more of the body; and
# `$'\x72m'` is rm, which a forbid rule did not see (the line was asked, not denied).
BASH_QUOTES = ['cat <<$"A"\nx\nA\nrm -rf /\n$A\n', '$"rm" -rf /', "$'\\x72m' -rf /", "$'\\162m' -rf /",
               "$'r\\u006d' -rf /", "$'rm\\0zz' -rf /", "eval $'rm\\x20-rf /'", "sh -c $'rm\\x20-rf\\x20/'"]


@pytest.mark.parametrize("line", BASH_QUOTES)
def test_bash_quoting_hides_nothing_from_a_forbid_rule(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("line", ['cat <<$"A"\nx\nA\ntouch mark\n$A\n', "$'\\x74ouch' mark", "$'touch\\0zz' mark"])
def test_bash_reads_them_so(tmp_path, line: str) -> None:
    subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, timeout=10)
    assert (tmp_path / "mark").exists()


# The dynamic loader is a wrapper on every Linux: `/lib64/ld-linux-x86-64.so.2 /bin/rm -rf /` is rm.
@pytest.mark.parametrize("line", ["/lib64/ld-linux-x86-64.so.2 /bin/rm -rf /",
                                  "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path /x rm -rf /",
                                  "/lib/ld-linux-aarch64.so.1 --argv0 x /bin/rm -rf /", "ld.so /bin/rm -rf /"])
def test_the_dynamic_loader_runs_what_it_names(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"
    assert evaluate_exec(line, OPEN).action == "deny"


def test_a_loader_is_never_allowed_by_the_rule_for_what_it_runs() -> None:
    assert evaluate_exec("/lib64/ld-linux-x86-64.so.2 /bin/echo hi", RULES).action == "ask"


# A `case` statement in a command substitution: its patterns' `)` close nothing, as bash reads
# it. The reader ended `$(case x in x)` there, and read `rm -rf /;; esac)` as the words of the
# command outside (`echo`): asked, never denied.
CASES = ["echo $(case x in x) rm -rf /;; esac)", "echo \"$(case x in x) echo '\"'; rm -rf /; esac)\" #'",
         "cat <(case x in x) rm -rf /;; esac)", "echo ${x:-$(case x in x) rm -rf /;; esac)}",
         "echo $(case x in (x|y) echo;; (z) rm -rf / ;; esac)",
         "echo $(if true; then case x in x) echo;; esac; fi; rm -rf /)"]


@pytest.mark.parametrize("line", CASES)
def test_a_case_pattern_in_a_substitution_hides_nothing_from_a_forbid_rule(line: str) -> None:
    assert evaluate_exec(line, RULES).action == "deny"


def test_an_array_is_no_substitution() -> None:
    # bash ends `a=(case in x` at the next `)`: what follows is read as commands
    assert evaluate_exec("a=(case in x\n)\nrm -rf /\nesac)", RULES).action == "deny"


@pytest.mark.parametrize("line", ["(( ls #x )); rm -rf ~", "[[ a =~ (#x) ]]; rm -rf ~",
                                  "$'\\x72m' -rf ~", "/lib64/ld-linux-x86-64.so.2 /bin/rm -rf ~"])
def test_the_daemons_answer_with_the_built_in_claude_profile_is_deny(daemon: Daemon, line: str) -> None:
    """What ph-ask and the hook get from a real daemon: before, the first line was allowed by
    the claude profile's rule "ls" and the others were asked; its forbid rule refuses them."""
    import json

    out = daemon.cli("policy", "check", "claude", "--json", "--", line)
    decided = json.loads(out.stdout)
    assert decided["decision"] == "deny" and "rm -rf ~" in decided["rule"], (line, out.stdout)
