"""What an agent reads when ph-claude-hook answers: the verdict first, then who or what gave it
(issue 13: a denied tool call said "decided by root (scope once)" and never "denied")."""

from __future__ import annotations

import pytest

from console.policy import Provenance
from console.sandbox.inside import verdict_text


@pytest.mark.parametrize(("allowed", "prov", "text"), [
    (False, Provenance("person", person="alice", scope="once"), "denied by alice (scope once)"),
    (True, Provenance("person", person="bob", scope="run", grant_id="g1"), "approved by bob (scope run)"),
    (False, Provenance("rule", rule="rm -rf /", rule_list="forbid", source="config.toml:12"),
     'forbidden by rule "rm -rf /" (config.toml:12)'),
    (True, Provenance("rule", rule="ls", rule_list="allow", source="profiles.toml:60"),
     'approved by rule "ls" (profiles.toml:60)'),
    (False, Provenance("grant", grant_id="g7", scope="profile", person="carol"),
     "denied by carol (grant g7, scope profile)"),
    (False, Provenance("timeout", detail="no answer within 120s; denied"), "denied: no answer within 120s"),
    (False, Provenance("default", rule_list="deny"), 'denied: no rule matched: the default "deny"'),
])
def test_verdict_says_the_verdict_and_who(allowed: bool, prov: Provenance, text: str) -> None:
    assert verdict_text(allowed, prov.to_dict(), prov.describe()) == text


def test_a_missing_provenance_still_says_denied() -> None:
    assert verdict_text(False, {}, "") == "denied"
    assert verdict_text(False, {}, "the daemon refused") == "denied: the daemon refused"
