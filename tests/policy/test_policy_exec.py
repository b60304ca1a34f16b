"""Exec rules: the shared corpus, provenance, and the ways a command line tries to hide a part."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.policy import Decision, ExecRules, Provenance, RuleSource, evaluate_exec
from console.policy.parts import ParseError
from console.policy.shellwords import split_command

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "exec_cases.toml"


def corpus() -> tuple[dict, list[dict]]:
    with open(CORPUS, "rb") as f:
        data = tomllib.load(f)
    return data["policy"], data["case"]


POLICY, CASES = corpus()
CORPUS_RULES = ExecRules(POLICY["allow"], POLICY["ask"], POLICY["forbid"], POLICY["default"])


@pytest.mark.parametrize("case", CASES, ids=[c["command"] for c in CASES])
def test_exec_corpus(case: dict) -> None:
    got = CORPUS_RULES.evaluate(case["command"])
    assert got.action == case["expect"], case.get("why", "")


def test_provenance_names_rule_file_and_line() -> None:
    rules = ExecRules(
        allow=[RuleSource("git status", "~/.config/pilothouse/config.toml", 12)],
        ask=[RuleSource("git push", "~/.config/pilothouse/config.toml", 14)],
        forbid=["rm -rf /"],
    )
    d = rules.evaluate("git push origin main")
    assert d == Decision("ask", Provenance(
        "rule", rule="git push", rule_list="ask", source="~/.config/pilothouse/config.toml:14"),
        ("git push origin main",))
    assert d.provenance.describe() == 'rule "git push" (ask) at ~/.config/pilothouse/config.toml:14'
    assert rules.evaluate("rm -rf /").provenance.describe() == 'rule "rm -rf /" (forbid)'
    assert rules.evaluate("ls").provenance.describe() == 'no rule matched: the default "ask"'
    wire = d.provenance.to_dict()
    assert wire["text"] == d.provenance.describe() and Provenance.from_dict(wire) == d.provenance


def test_rules_from_config_objects() -> None:
    @dataclass(frozen=True)
    class Rule:  # the shape of console.config.load.Rule
        text: str
        file: str = ""
        line: int | None = None

    @dataclass
    class ExecConfig:
        default: str = "deny"
        allow: list = None  # type: ignore[assignment]
        ask: list = None  # type: ignore[assignment]
        forbid: list = None  # type: ignore[assignment]

    cfg = ExecConfig(allow=[Rule("pytest", "p.toml", 3)], ask=[], forbid=[Rule("dd", "")])
    rules = ExecRules.from_config(cfg)
    assert rules.evaluate("pytest -q").provenance.source == "p.toml:3"
    assert rules.evaluate("dd if=x").provenance.source is None
    assert rules.evaluate("ls").action == "deny"


@pytest.mark.parametrize(("text", "words"), [
    ("", "this one is empty"),
    ("git status && rm", "one plain command"),
    ("echo $(id)", "one plain command"),
    ("echo $'x'", "one plain command"),
    ("'unbalanced", "cannot read"),
])
def test_bad_rules_are_refused_with_their_source(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as err:
        ExecRules(allow=[RuleSource(text, "c.toml", 7)])
    assert "c.toml:7" in str(err.value)
    with pytest.raises(ValueError, match="allow, ask or deny"):
        ExecRules(default="maybe")


RULES = ExecRules(allow=["git status", "echo", "pytest", "ls"], ask=["git push"], forbid=["rm -rf /"])


@pytest.mark.parametrize("command", [
    "FOO=1 rm -rf /", "/bin/rm -rf /", "sudo -E rm -rf /", "env -i nice -n 5 rm -rf /",
    "git status $(rm -rf /)", 'echo "`rm -rf /`"', "git status\nrm -rf /", "git status & rm -rf /",
    "git status &>x rm -rf /", "bash -c 'rm -rf /'", "sh -ec 'true; rm -rf /'", "eval rm -rf /",
    "{ rm -rf /; }", "(rm -rf /)", "git diff <(rm -rf /)", "echo ${x:-$(rm -rf /)}",
    "if true; then rm -rf /; fi", "ls | xargs rm -rf /", "echo $'a\\' b' ; rm -rf / ; echo $'c\\' d'",
    "2>/dev/null rm -rf /", "git status || rm -rf /",
])
def test_forbidden_parts_cannot_hide(command: str) -> None:
    assert RULES.evaluate(command).action == "deny"


@pytest.mark.parametrize("command", [
    "git status `whoami`", "echo $(id)", "echo $'\\x41'", "git status 'unbalanced", 'echo "open',
    "echo $(", "env git push", "git push$(true)", "LD_PRELOAD=/x.so git status", "time git push",
])
def test_what_rules_cannot_read_is_asked_never_allowed(command: str) -> None:
    assert RULES.evaluate(command).action == "ask"


def test_unreadable_commands_follow_a_deny_default() -> None:
    strict = ExecRules(allow=["echo"], default="deny")
    d = strict.evaluate("echo 'oops")
    assert d.action == "deny" and d.provenance.kind == "error"
    assert "cannot be read" in d.provenance.describe()


@pytest.mark.parametrize(("command", "action"), [
    ("git status 2>&1 | pytest -q", "allow"), ("pytest > log.txt", "ask"),
    ("pytest -k 'a;b && c'", "allow"), ("git status # ; rm -rf /", "allow"),
    ('echo "a | b" && ls -la', "allow"), ("git status\\\n --short", "allow"),
    ("ls; git push", "ask"), ("   ", "ask"),
])
def test_ordinary_command_lines(command: str, action: str) -> None:
    assert RULES.evaluate(command).action == action


def test_asking_lists_the_parts_a_person_must_answer() -> None:
    d = RULES.evaluate("pytest -q && git push origin 'my branch' | tee out")
    assert d.action == "ask"
    assert d.asking == ("git push origin 'my branch'", "tee out")


def test_splitting() -> None:
    parts = split_command("a 'b c' \"d $(e f)\" && g|h ; i 2>&1 >out")
    assert [p.words for p in parts] == [["a", "b c", "d $(e f)"], ["g"], ["h"], ["i", "2>&1", ">", "out"]]
    assert parts[0].opaque and parts[0].inner == ["e f"]
    with pytest.raises(ParseError):
        split_command("echo 'x")


WORD = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(WORD, max_size=6), st.sampled_from([";", "&&", "||", "|", "&", "\n"]))
def test_a_forbidden_tail_is_never_allowed(words: list[str], sep: str) -> None:
    command = " ".join(words) + f" {sep} rm -rf /"
    assert evaluate_exec(command, RULES).action != "allow"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gets_a_decision(command: str) -> None:
    assert RULES.evaluate(command).action in ("allow", "ask", "deny")


UNQUOTED = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="'\"\\#`$"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(UNQUOTED, max_size=4), UNQUOTED)
def test_an_unquoted_substitution_is_never_allowed_by_rules(words: list[str], inner: str) -> None:
    for sub in (f"$({inner})", f"`{inner}`", f"${{x:-$({inner})}}"):
        assert RULES.evaluate(" ".join(["echo", *words, sub])).action != "allow"
