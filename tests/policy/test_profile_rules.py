"""A decision "for this profile" writes exactly what its preview lists, and a rule a stricter one
would override is named before anything is saved."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from console.config.load import load
from console.config.profile_rules import overridden_by, plan
from tests.conftest import Daemon, needs_bwrap


def test_an_allow_under_a_built_in_ask_is_named_as_overridden() -> None:
    demo = load(None).profile("demo")
    planned = plan("demo", "exec", ["pytest -q"], allow=True)
    assert [p.line() for p in planned] == ['+ demo exec allow "pytest -q"']
    prov = overridden_by(demo, "exec", "pytest -q", planned)
    assert prov is not None and prov.rule == "pytest" and prov.rule_list == "ask"
    assert "embedded defaults:" in (prov.source or "")
    assert overridden_by(demo, "exec", "make", plan("demo", "exec", ["make"], allow=True)) is None


def test_deny_for_the_profile_is_labelled_by_what_it_writes() -> None:
    assert [p.line() for p in plan("demo", "exec", ["make"], allow=False)] == ['+ demo exec forbid "make"']
    assert [p.line() for p in plan("demo", "network", ["127.0.0.9:443"], allow=False)] == [
        '+ demo network deny "127.0.0.9:443"']


def test_a_bad_pattern_is_refused_before_anything_is_planned() -> None:
    with pytest.raises(ValueError):
        plan("demo", "network", ["*.com"], allow=True)


def _pending(d: Daemon, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(d.cli("approvals", "--json").stdout)
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(d.log())


def _ask_in_background(d: Daemon, ws: Path, script: str) -> threading.Thread:
    t = threading.Thread(target=lambda: d.cli("run", "demo", "-w", str(ws), "--wait", "--", "sh", "-c",
                                                script, check=False))
    t.start()
    return t


@needs_bwrap
def test_preview_is_what_is_written_and_the_next_decision_agrees(daemon: Daemon, workspace: Path) -> None:
    config = Path(daemon.env["PILOTHOUSE_CONFIG"])
    t = _ask_in_background(daemon, workspace, "ph-ask net blocked.invalid:443; ph-ask net blocked.invalid:443; echo done")
    req = _pending(daemon)
    preview = json.loads(daemon.cli("deny", req["id"], "--scope", "profile", "--preview", "--json").stdout)
    assert preview["lines"] == ['+ demo network deny "blocked.invalid:443"'] and preview["overridden_by"] is None
    daemon.cli("deny", req["id"], "--scope", "profile", "--yes", "--json")
    t.join(timeout=60)
    text = config.read_text()
    assert 'deny = ["blocked.invalid:443"]' in text and '"blocked.invalid"' not in text
    changed = json.loads(daemon.cli("history", "--kind", "policy.changed", "--json").stdout)
    mine = [c for c in changed if c["data"].get("cause") == "profile-rule"]
    assert len(mine) == 1 and mine[0]["data"]["diff"] == preview["lines"]
    check = json.loads(daemon.cli("policy", "check", "demo", "--host", "blocked.invalid:443", "--json").stdout)
    assert check["decision"] == "deny" and check["rule"] == "blocked.invalid:443"


@needs_bwrap
def test_a_rule_that_would_not_take_effect_is_refused_with_the_rule_that_does(daemon: Daemon,
                                                                             workspace: Path) -> None:
    t = _ask_in_background(daemon, workspace, "ph-ask exec -- pytest -q; echo rc=$?")
    req = _pending(daemon)
    preview = json.loads(daemon.cli("approve", req["id"], "--scope", "profile", "--preview", "--json").stdout)
    assert preview["overridden_by"]["rule"] == "pytest" and preview["overridden_by"]["rule_list"] == "ask"
    refused = daemon.cli("approve", req["id"], "--scope", "profile", "--yes", check=False)
    assert refused.returncode != 0 and 'rule "pytest" (ask)' in refused.stderr
    assert "--scope run" in refused.stderr
    assert "pytest -q" not in Path(daemon.env["PILOTHOUSE_CONFIG"]).read_text() if Path(
        daemon.env["PILOTHOUSE_CONFIG"]).exists() else True
    daemon.cli("deny", req["id"])
    t.join(timeout=60)


@needs_bwrap
def test_a_lone_surrogate_from_the_agent_is_refused_at_the_socket(daemon: Daemon, workspace: Path) -> None:
    """An agent writing its own JSON on agent.sock may put a lone surrogate (\\udcff) in its
    command: valid JSON, but no UTF-8 text. It used to be queued, and then every
    `approvals.list` failed inside the daemon (the answer could not be encoded), so nobody
    could see or decide anything. It is refused as a bad message at the socket."""
    (workspace / "ask.py").write_text(
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect('/run/pilothouse/agent.sock')\n"
        "s.sendall(b'{\"v\":1,\"id\":1,\"op\":\"ask\",\"args\":{\"kind\":\"exec\",'\n"
        "          b'\"command\":\"make x\\\\udcffy\"}}\\n')\n"
        "s.settimeout(5)\n"
        "try:\n    print(s.recv(65536).decode())\nexcept TimeoutError:\n    print('no answer')\n")
    ran = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "python3", "ask.py",
                     check=False, timeout=60)
    listed = daemon.cli("approvals", "--json", check=False)
    assert listed.returncode == 0, listed.stderr
    assert "bad-message" in ran.stdout and "UTF-8" in ran.stdout, ran.stdout + ran.stderr
    assert json.loads(listed.stdout) == []
    asked = json.loads(daemon.cli("history", "--kind", "approval.requested", "--json").stdout)
    assert asked == []


HOSTILE_RULES = ['make a"b', 'make a\\b', "make x\r", "make a\u2028b", "make a\x00b", "make a'''b",
                 'make "]', "make a\x1b[2Jb", "make a\u202eb", "make " + "x" * 100_000, "make a\x7fb",
                 "make a\tb", "make \ufeffz", "make a\x85b", "make a\udcffb", "make ]]\r[x]"]


@pytest.mark.parametrize("rule", HOSTILE_RULES, ids=lambda r: ascii(r[:20]))
def test_agent_text_in_a_rule_is_written_as_exactly_that_rule_or_refused(tmp_path: Path, rule: str) -> None:
    """A rule's words are the agent's. Whatever they hold, the file either gets exactly that
    one rule (what the preview showed is what is written, and the loader reads the rule back
    as it was) or nothing and a PolicyEditError saying why; never another exception."""
    import tomllib

    from console.config.edit import PolicyEditError, apply, preview

    config = tmp_path / "config.toml"
    config.write_text('[profiles.shell.exec]\nallow = ["ls"]  # mine\n')
    before = config.read_bytes()
    try:
        shown = preview(config, "shell", "exec", "allow", rule)
    except PolicyEditError:
        assert config.read_bytes() == before
        with pytest.raises(PolicyEditError):
            apply(config, "shell", "exec", "allow", rule)
        assert config.read_bytes() == before
        return
    written = apply(config, "shell", "exec", "allow", rule)
    assert written.new_text == shown.new_text == config.read_text(encoding="utf-8", errors="strict")
    assert tomllib.loads(config.read_text())["profiles"]["shell"]["exec"]["allow"] == ["ls", rule]
    assert "# mine" in config.read_text()


def test_the_rules_of_one_decision_are_written_all_or_none(tmp_path: Path) -> None:
    """A decision that plans two rules (`a && b`) writes them in one write: when the second
    cannot be added, the first is not left in the file alone (it was, unrecorded, and the file
    watcher then put it in force as a change by the file's owner)."""
    from console.config.edit import PolicyEditError
    from console.config.profile_rules import PlannedRule
    from console.daemon.ops.approvals import write_rules

    config = tmp_path / "config.toml"
    config.write_text('[profiles.shell.exec]\nallow = ["ls"]\n')
    before = config.read_bytes()
    in_force = load(config).user_file_sha256
    with pytest.raises(PolicyEditError):
        write_rules(config, [PlannedRule("shell", "exec", "allow", "make test"),
                             PlannedRule("shell", "exec", "allow", 'make a"b')], in_force)
    assert config.read_bytes() == before
    write_rules(config, [PlannedRule("shell", "exec", "allow", "make test"),
                         PlannedRule("shell", "exec", "allow", "make lint")], in_force)
    assert load(config).profile("shell") is not None
    import tomllib
    assert tomllib.loads(config.read_text())["profiles"]["shell"]["exec"]["allow"] == [
        "ls", "make test", "make lint"]


@needs_bwrap
def test_an_agents_escape_sequences_stay_text_in_every_cli_view(daemon: Daemon, workspace: Path) -> None:
    """The agent's command holds OSC 52 (write the clipboard) and a bidi override. Listed,
    explained (policy why) and shadowed (policy shadow), it reaches the terminal as visible
    text: `policy shadow` printed the past subject raw."""
    t = _ask_in_background(daemon, workspace,
                           "ph-ask exec -- make \"$(printf 'x\\033]52;c;aGk=\\007\\342\\200\\256y')\"")
    req = _pending(daemon)
    daemon.cli("deny", req["id"])
    t.join(timeout=60)
    views = {
        "approvals": daemon.cli("history", "--kind", "approval.", "--limit", "5").stdout,
        "why": daemon.cli("policy", "why", req["id"]).stdout,
        "shadow": daemon.cli("policy", "shadow", "make").stdout,
    }
    assert "make" in views["shadow"], views
    for name, out in views.items():
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, (name, out)
