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
    assert [p.line() for p in plan("demo", "network", ["1.1.1.1:443"], allow=False)] == [
        '+ demo network deny "1.1.1.1:443"']


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
    t = _ask_in_background(daemon, workspace, "ph-ask net 1.1.1.1:443; ph-ask net 1.1.1.1:443; echo done")
    req = _pending(daemon)
    preview = json.loads(daemon.cli("deny", req["id"], "--scope", "profile", "--preview", "--json").stdout)
    assert preview["lines"] == ['+ demo network deny "1.1.1.1:443"'] and preview["overridden_by"] is None
    daemon.cli("deny", req["id"], "--scope", "profile", "--yes", "--json")
    t.join(timeout=60)
    text = config.read_text()
    assert 'deny = ["1.1.1.1:443"]' in text and '"1.1.1.1"' not in text
    changed = json.loads(daemon.cli("history", "--kind", "policy.changed", "--json").stdout)
    mine = [c for c in changed if c["data"].get("cause") == "profile-rule"]
    assert len(mine) == 1 and mine[0]["data"]["diff"] == preview["lines"]
    check = json.loads(daemon.cli("policy", "check", "demo", "--host", "1.1.1.1:443", "--json").stdout)
    assert check["decision"] == "deny" and check["rule"] == "1.1.1.1:443"


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
