"""`pilothouse policy check` gives the gate's decision: every input form the gate reads, bad input
as a `reject` with its reason (never an internal error), `--resolve` as the gate resolves, and
`--config FILE` evaluated from that file (not silently from the daemon's)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from console.cli.main import main
from console.gate import BadTarget, NetworkRules, parse_absolute_url, parse_connect_target
from console.policy import ExecRules
from tests.conftest import CORPUS
from tests.core.cli_invoke import invoke

NET = tomllib.loads((CORPUS / "network_cases.toml").read_text())
EXEC = tomllib.loads((CORPUS / "exec_cases.toml").read_text())


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


@pytest.fixture(scope="module")
def corpus_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both corpora's policies as one profile in a real config file."""
    n, e = NET["policy"], EXEC["policy"]
    path = tmp_path_factory.mktemp("cfg") / "corpus.toml"
    path.write_text(
        '[profiles.corpus]\ncommand = ["true"]\n\n[profiles.corpus.network]\n'
        f'default = "{n["default"]}"\nports = {n["ports"]}\nallow = {_toml_list(n["allow"])}\n'
        f'deny = {_toml_list(n["deny"])}\n\n[profiles.corpus.exec]\ndefault = "{e["default"]}"\n'
        f'allow = {_toml_list(e["allow"])}\nask = {_toml_list(e["ask"])}\n'
        f'forbid = {_toml_list(e["forbid"])}\n')
    return path


def check(config: Path, *args: str, home: Path | None = None) -> dict:
    env = {"PILOTHOUSE_HOME": str(home or config.parent / "no-daemon-here")}
    result = invoke(main, ["--config", str(config), "policy", "check", "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def gate_decision(case: dict) -> str:
    """What the gate decides before any person answers (its own parsers and rules)."""
    n = NET["policy"]
    rules = NetworkRules(n["allow"], n["deny"], n["default"], n["ports"])
    try:
        target = (parse_connect_target(case["connect"]) if "connect" in case
                  else parse_absolute_url(case["url"])[0])
    except BadTarget:
        return "reject"
    if target.ip is not None:
        addresses = [target.ip]
    elif case.get("resolve"):
        import asyncio

        from console.gate import system_resolver

        addresses = asyncio.run(system_resolver(target.host, target.port))
    else:
        addresses = None
    return rules.decide(target.host, target.port, addresses).action


@pytest.mark.parametrize("case", NET["case"], ids=lambda c: (c.get("connect") or c["url"]).encode(
    "unicode_escape").decode())
def test_network_corpus_through_policy_check_is_the_gates_decision(case: dict, corpus_config: Path) -> None:
    subject = case.get("connect") or case["url"]
    got = check(corpus_config, "corpus", "--exact", "--host", subject,
                *(["--resolve"] if case.get("resolve") else []))
    assert got["decision"] == gate_decision(case)
    assert got["decision"] in case["expect"].split("|"), case["why"]
    assert {"decision", "rule", "source", "reason"} <= set(got)


@pytest.mark.parametrize("case", EXEC["case"], ids=lambda c: c["command"])
def test_exec_corpus_through_policy_check(case: dict, corpus_config: Path) -> None:
    got = check(corpus_config, "corpus", "--", case["command"])
    p = EXEC["policy"]
    assert got["decision"] == case["expect"] == ExecRules(
        p["allow"], p["ask"], p["forbid"], p["default"]).evaluate(case["command"]).action


@pytest.mark.parametrize(("subject", "decision", "shown"), [
    ("[::1]:443", "deny", "[::1]:443"), ("http://[::1]:8080/", "deny", "[::1]:8080"),
    ("http://example.com/path?q=1", "allow", "example.com:80"),
    ("EXAMPLE.com.:443", "allow", "example.com:443"),
    ("evil.com:22", "deny", "evil.com:22"), ("127.0.0.1:8000", "allow", "127.0.0.1:8000"),
])
def test_every_form_the_gate_reads(subject: str, decision: str, shown: str, corpus_config: Path) -> None:
    got = check(corpus_config, "corpus", "--host", subject)
    assert got["decision"] == decision and shown in got["subject"]


@pytest.mark.parametrize("subject", ["a b", "[::1", "::1", "host:99999", "http://x.invalid\\@y/", "127.1:443",
                                     "ftp://example.com/", "", "exa\x00mple.com", "[fe80::1%eth0]:443"])
def test_bad_input_is_a_reject_with_a_reason(subject: str, corpus_config: Path) -> None:
    got = check(corpus_config, "corpus", "--host", subject)
    assert got["decision"] == "reject" and got["reason"]


def test_a_bare_host_is_read_as_443_and_says_so(corpus_config: Path) -> None:
    got = check(corpus_config, "corpus", "--host", "EXAMPLE.com")
    assert got["decision"] == "allow" and got["subject"] == "example.com:443"
    assert "checked as EXAMPLE.com:443" in got["note"]
    assert check(corpus_config, "corpus", "--host", "[::1]")["decision"] == "deny"
    strict = check(corpus_config, "corpus", "--exact", "--host", "example.com")
    assert strict["decision"] == "reject" and "port" in strict["reason"]


def test_resolve_shows_the_address_and_the_gates_verdict(corpus_config: Path) -> None:
    got = check(corpus_config, "corpus", "--host", "localhost:443", "--resolve")
    assert got["decision"] == "deny"
    assert got["addresses"] and all(a in ("127.0.0.1", "::1") for a in got["addresses"])
    # localhost is loopback by definition: the gate never looks it up, nor does the check
    assert check(corpus_config, "corpus", "--host", "localhost:443")["decision"] == "deny"
    plain = check(corpus_config, "corpus", "--host", "unknown.invalid:443")
    assert plain["decision"] == "ask" and "not resolved" in plain["note"]


def test_config_file_is_evaluated_not_the_daemons(daemon, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('[profiles.p]\ncommand = ["true"]\nnetwork = { deny = ["x.invalid"] }\n')
    Path(daemon.env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.p]\ncommand = ["true"]\nnetwork = { allow = ["x.invalid"] }\n')
    daemon.cli("reload", check=False)
    out = daemon.cli("--config", str(mine), "policy", "check", "p", "--host", "x.invalid:443", "--json")
    got = json.loads(out.stdout)
    assert got["decision"] == "deny" and got["config"] == str(mine)
    assert "the running daemon uses another file" in got["note"] and str(mine) in got["note"]
    assert daemon.env["PILOTHOUSE_CONFIG"] in got["note"]


def test_the_daemon_answers_every_form_without_an_internal_error(daemon) -> None:
    for subject in ("[::1]:443", "http://x.invalid/", "a b", "[::1"):
        out = daemon.cli("policy", "check", "demo", "--host", subject, "--json")
        assert json.loads(out.stdout)["decision"] in ("allow", "ask", "deny", "reject")


def test_any_command_warns_when_the_daemon_runs_another_file(daemon, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('[profiles.p]\ncommand = ["true"]\n')
    out = daemon.cli("--config", str(mine), "profiles", "--json")
    assert "not what the running daemon uses" in out.stderr and str(mine) in out.stderr
    json.loads(out.stdout)  # stdout stays clean JSON
    theirs = Path(daemon.env["PILOTHOUSE_CONFIG"])
    if not theirs.exists():  # a --config naming no file is refused (s26); the daemon's is none
        theirs.write_text("")
    same = daemon.cli("--config", str(theirs), "profiles", "--json")
    assert "warning" not in same.stderr


def test_a_command_too_long_for_an_agent_is_rejected_as_the_agent_would_be(
        daemon, corpus_config: Path) -> None:
    """An agent's ask over SUBJECT_MAX_BYTES is refused before any rule reads it (agent.sock);
    `policy check` says so on both paths, and the daemon does not read a teammate's megabyte
    of shell on its event loop."""
    from console.policy import SUBJECT_MAX_BYTES

    command = "echo " + "x" * SUBJECT_MAX_BYTES
    got = check(corpus_config, "demo", "--", command)
    assert got["decision"] == "reject" and f"longer than {SUBJECT_MAX_BYTES} bytes" in got["reason"]
    out = daemon.cli("policy", "check", "demo", "--json", "--", command)
    got = json.loads(out.stdout)
    assert got["decision"] == "reject" and f"longer than {SUBJECT_MAX_BYTES} bytes" in got["reason"]
