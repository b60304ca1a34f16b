"""Exec rules with shell semantics: what a shell will really do decides, not the first words.

Each case here is a finding of issue 12: an allow rule that let a redirection, an executing or
writing option ride along; a forbid rule that a reordered flag or a wrapper slipped past; a grant
that covered added words; a rule the config loader accepted that evaluation could not read.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.config.load import ConfigError, load_explicit
from console.policy import ExecRules, GrantTable, evaluate_exec, new_grant
from console.policy.shellwords import split_command

READ_ONLY = ExecRules(allow=["grep", "rg", "git diff", "git status", "sort", "find", "cat", "ls"],
                      ask=["git push"], forbid=["rm -rf /", "git push --force", "chmod -R 777 /"])


@pytest.mark.parametrize("command", [
    "grep x f > ~/.profile", "grep x f >> ~/.bashrc", "grep x f 2> ~/.profile",
    "grep x f &> out", "grep x f >| out", "cat <> f", "grep x f 1>out", "ls >& out",
    "rg --pre ./evil.sh x .", "rg --pre=./evil.sh x .", "rg -i --pre ./evil.sh x .",
    "git diff --output=/some/file", "git diff --output /some/file", "git diff --outp=/some/file",
    "git diff --ext-diff", "sort -o /etc/passwd f", "sort -uo out f", "sort --output=out f",
    "find . -exec sh -c id \\;", "find . -delete", "find . -fprint out", "find . -execdir id +",
    "grep x f > /dev/null > out", "sort --o=/etc/passwd f", "git diff --out=/x",
])
def test_allow_never_carries_a_write_or_an_executing_option(command: str) -> None:
    assert READ_ONLY.evaluate(command).action == "ask", command


def test_the_reason_names_the_allow_rule_and_what_it_does_not_cover() -> None:
    d = READ_ONLY.evaluate("grep x f > ~/.profile")
    assert 'allow rule "grep" does not cover' in d.provenance.describe()
    assert "writes ~/.profile" in d.provenance.describe()
    assert "has --pre" in READ_ONLY.evaluate("rg --pre ./evil.sh x .").provenance.describe()


@pytest.mark.parametrize("command", [
    "grep x f", "grep x f 2>/dev/null", "grep x f > /dev/null", "grep x f 2>&1 | sort",
    "grep x < f", "rg -n x .", "git diff --stat", "sort -u f", "find . -name '*.py'",
    "cat <<EOF", "grep -o x f",
])
def test_read_only_commands_stay_allowed(command: str) -> None:
    assert READ_ONLY.evaluate(command).action == "allow", command


def test_a_rule_that_names_the_option_allows_it() -> None:
    rules = ExecRules(allow=["sort -o sorted.txt", "make > build.log"])
    assert rules.evaluate("sort -o sorted.txt f").action == "allow"
    assert rules.evaluate("make > build.log").action == "allow"
    assert rules.evaluate("make > other.log").action == "ask"
    assert rules.evaluate("sort -o other.txt f").action == "ask"


def test_a_redirection_is_seen_as_a_redirection() -> None:
    from console.policy.parts import write_targets

    (part,) = split_command("grep x f 2>/dev/null > ~/.profile")
    assert write_targets(part) == ["~/.profile"]
    (part,) = split_command("grep '>' f")
    assert write_targets(part) == []


@pytest.mark.parametrize("command", [
    "rm -rf /", "rm -fr /", "rm -r -f /", "rm -f -r /", "rm --recursive --force /", "rm -Rf /",
    "rm --force --recursive -- /", "rm -rfv /", "rm -rf /tmp /", "rm -rf //", "/bin/rm -r -f /",
    "sudo -u root rm -fr /", "sudo -- rm -rf /", "env -u HOME rm -rf /", "env -C /tmp rm -rf /",
    "nice -n 5 rm -rf /", "timeout -s KILL 5 rm -rf /", "timeout 5 rm -fr /",
    "xargs -I {} rm -rf /", "xargs -n 1 rm -r -f /", "find . -exec rm -rf / \\;",
    "find . -exec rm -r -f / +", "bash -c 'rm -fr /'", "sh -c 'rm --recursive --force /'",
    "bash -lc 'rm -fr /'", "env -S 'rm -rf /'", "stdbuf -o L rm -rf /", "ionice -c 3 rm -rf /",
    "git push --force", "git push -f origin main", "git push origin +main",
    "git push origin main --force", "git -c user.name=x push --force",
    "git -C /repo push -f", "git --git-dir=.git push origin +HEAD:main",
    "chmod 777 -R /", "chmod --recursive 777 /",
])
def test_forbid_matches_any_order_form_or_wrapper(command: str) -> None:
    assert READ_ONLY.evaluate(command).action == "deny", command


@pytest.mark.parametrize("command", [
    "rm -rf /tmp/scratch", "rm -r /", "git push origin main", "git push --force-with-lease",
])
def test_forbid_does_not_reach_what_it_does_not_say(command: str) -> None:
    assert READ_ONLY.evaluate(command).action == "ask", command


def test_a_grant_for_a_command_covers_that_command_not_added_words() -> None:
    table = GrantTable()
    table.add(new_grant("exec", "git push origin main", "allow", "run", run_id="r1",
                        profile="demo", decided_by="alice"))

    def decide(cmd: str) -> str:
        return evaluate_exec(cmd, READ_ONLY, table, run_id="r1", profile="demo").action

    assert decide("git push origin main") == "allow"
    assert decide("git push origin main --force") == "deny"  # forbid, whatever the grant
    assert decide("git push origin main --tags") == "ask"
    assert decide("git push origin main > /tmp/x") == "ask"
    wide = GrantTable()
    wide.add(new_grant("exec", "make", "allow", "run", run_id="r1", profile="demo",
                       decided_by="alice", exact=False))
    assert evaluate_exec("make all", READ_ONLY, wide, run_id="r1", profile="demo").action == "allow"


def test_a_wide_grant_still_carries_no_write_or_executing_option() -> None:
    table = GrantTable()
    table.add(new_grant("exec", "rg", "allow", "run", run_id="r1", profile="demo",
                        decided_by="alice", exact=False))
    assert evaluate_exec("rg x .", READ_ONLY, table, run_id="r1", profile="demo").action == "allow"
    assert evaluate_exec("rg --pre ./evil x .", READ_ONLY, table, run_id="r1",
                         profile="demo").action == "ask"


def test_config_refuses_a_rule_the_evaluator_cannot_read(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\n'
                    'allow = [\n  "ls",\n  "git status; rm -rf /",\n]\n')
    with pytest.raises(ConfigError) as err:
        load_explicit(path)
    assert err.value.file == str(path) and err.value.line == 7
    assert "one plain command" in err.value.reason


def test_rules_are_compiled_once_when_the_config_loads(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.p]\ncommand = ["true"]\nexec = { allow = ["ls"] }\n')
    profile = load_explicit(path).profile("p")
    assert ExecRules.from_config(profile.exec) is ExecRules.from_config(profile.exec)


# --- properties --------------------------------------------------------------------------------

FLAG_FORMS = st.sampled_from([
    ["-rf"], ["-fr"], ["-r", "-f"], ["-f", "-r"], ["--recursive", "--force"], ["-R", "-f"],
    ["--force", "-r"], ["-rfv"], ["-v", "-r", "-f"],
])
WRAPPERS = st.sampled_from([
    [], ["sudo"], ["sudo", "-u", "root"], ["env", "A=1"], ["env", "-u", "X"], ["nice", "-n", "5"],
    ["timeout", "10"], ["timeout", "-s", "KILL", "10"], ["xargs"], ["xargs", "-I", "{}"],
    ["nohup"], ["command"], ["/usr/bin/env"], ["stdbuf", "-oL"], ["time"],
])


@settings(max_examples=300, deadline=None)
@given(st.lists(WRAPPERS, max_size=3), FLAG_FORMS, st.booleans(),
       st.sampled_from(["rm", "/bin/rm", "/usr/bin/rm"]))
def test_a_forbidden_command_is_never_allowed_in_any_form(wrappers, flags, dashdash, rm) -> None:
    words = [*(w for wrapper in wrappers for w in wrapper), rm, *flags,
             *(["--"] if dashdash else []), "/"]
    import shlex

    line = shlex.join(words)
    rules = ExecRules(allow=["rm", "sudo", "env", "xargs", "nice", "timeout", "nohup", "command",
                             "stdbuf", "time", "bash"], forbid=["rm -rf /"])
    assert rules.evaluate(line).action == "deny", line
    assert rules.evaluate(f"bash -c {shlex.quote(line)}").action == "deny", line


TARGET = st.text(alphabet="abcdefghij./~_-", min_size=1, max_size=12).filter(
    lambda t: t not in ("-", "/dev/null") and not t.startswith("-"))
REDIRECT = st.sampled_from([">", ">>", "2>", "&>", ">|", "1>", "2>>", "<>", ">&"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["x", "-n", "f", "-i", "."]), max_size=4), REDIRECT, TARGET,
       st.booleans())
def test_a_redirection_never_rides_on_an_allow_rule(args, op, target, spaced) -> None:
    rules = ExecRules(allow=["grep", "cat"])
    redirect = f"{op} {target}" if spaced else f"{op}{target}"
    assert rules.evaluate(" ".join(["grep", *args, redirect])).action != "allow"


@pytest.mark.parametrize("command", ["A=1 sudo rm x", "sudo -u root id", "nice sudo ls",
                                     "env -i sudo ls", "timeout 5 sudo -n true"])
def test_a_forbidden_wrapper_is_caught_behind_assignments_and_other_wrappers(command: str) -> None:
    assert ExecRules(forbid=["sudo"]).evaluate(command).action == "deny", command


@pytest.mark.parametrize("profile", ["demo", "claude", "codex", "aider"])
@pytest.mark.parametrize("command", [
    "git log --output=/tmp/x", "git show --ext-diff HEAD", "git diff --output /tmp/x",
    "grep x f > ~/.bashrc", "rg --pre sh x .", "cat f > g", "tail -f log >> ~/.profile",
    "git log -p | sh", "ls $(touch /tmp/x)", "head -n1 f; rm -rf ~", "git -c core.pager=sh log",
])
def test_built_in_read_only_lists_allow_no_write_or_execution(profile: str, command: str) -> None:
    from console.config.load import load

    rules = ExecRules.from_config(load(None).profile(profile).exec)
    assert rules.evaluate(command).action != "allow", (profile, command)


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_rule_is_said_to_be_empty(tmp_path, text: str) -> None:
    """h192: `policy shadow ""` (and an empty rule in a config) was refused for holding
    `;, &&, ||, |, $(...)`, which it does not."""
    path = tmp_path / "config.toml"
    path.write_text(f'[profiles.p]\ncommand = ["true"]\n\n[profiles.p.exec]\nallow = ["{text}"]\n')
    with pytest.raises(ConfigError) as err:
        load_explicit(path)
    assert "this one is empty" in err.value.reason, err.value.reason
