"""`pilothouse policy shadow RULE`: what a proposed rule would have decided, riskiest first."""

from __future__ import annotations

import pytest

from console.policy.shadow import shadow

HISTORY = [
    {"kind": "exec", "subject": "git status", "decision": "allow"},
    {"kind": "exec", "subject": "git push origin main", "decision": "allow"},
    {"kind": "exec", "subject": "git push --force origin main", "decision": "deny"},
    {"kind": "exec", "subject": "git reset --hard HEAD~3", "decision": "timeout"},
    {"kind": "exec", "subject": "pytest -q && git push", "decision": "allow"},
    {"kind": "network", "subject": "pypi.org:443", "decision": "allow"},
    {"kind": "network", "subject": "files.pythonhosted.org:443", "decision": "deny"},
    {"kind": "network", "subject": "1.2.3.4:8443", "decision": {"action": "deny"}},
    {"kind": "network", "subject": "upload.pypi.org:443", "decision": "ask"},
]


def subjects(hits) -> list[str]:
    return [h.request["subject"] for h in hits]


def test_exec_rule_hits_riskiest_first() -> None:
    hits = shadow("git push", HISTORY)
    assert subjects(hits) == ["git push --force origin main", "pytest -q && git push", "git push origin main"]
    first = hits[0]
    assert first.would == "allow" and first.was == "deny" and first.changes
    assert first.reasons[0] == "would now allow what was denied" and "forced" in first.reasons
    assert "compound or substituted" in hits[1].reasons
    assert first.risk > hits[1].risk > hits[2].risk and not hits[2].changes


def test_destructive_verbs_outrank_the_rest() -> None:
    hits = shadow("git", HISTORY)
    assert subjects(hits)[:2] == ["git push --force origin main", "git reset --hard HEAD~3"]
    assert subjects(hits)[-1] == "git status" and hits[-1].risk == 0


def test_forbid_rules_see_through_wrappers() -> None:
    history = [{"kind": "exec", "subject": "sudo rm -rf build", "decision": "allow"},
               {"kind": "exec", "subject": "rm -rf dist", "decision": "allow"}]
    assert len(shadow("rm -rf", history, effect="forbid")) == 2
    assert subjects(shadow("rm -rf", history)) == ["rm -rf dist"]  # allow: literal words only


def test_network_rule_unknown_hosts_and_ip_literals_first() -> None:
    hits = shadow("**.pypi.org", HISTORY, kind="network")
    assert subjects(hits) == ["upload.pypi.org:443", "pypi.org:443"]
    assert hits[0].reasons[0] == "would now allow what was ask" and "host never allowed before" in hits[0].reasons
    hits = shadow("1.2.3.0/24:8443", HISTORY, kind="network")
    assert subjects(hits) == ["1.2.3.4:8443"]
    assert {"IP literal", "unusual port 8443", "would now allow what was denied"} <= set(hits[0].reasons)


def test_no_hits_and_bad_effect() -> None:
    assert shadow("cargo", HISTORY) == []
    with pytest.raises(ValueError, match="effect"):
        shadow("git", HISTORY, effect="maybe")
