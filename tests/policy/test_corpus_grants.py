"""The network corpus through decide_network with grants (issue 12, point 9): a grant a person
made for a destination decides only what rules left to ask, exactly as the gate would; rules'
allow and deny, and addresses that are not globally routable, are never overridden by one."""

from __future__ import annotations

import pytest

from console.policy import GrantTable, new_grant
from console.policy.hosts import BadTarget, parse_absolute_url, parse_connect_target
from console.policy.network import decide_network
from tests.gate.test_gate_corpus import CASES, expected, rules


def _target(case: dict):  # type: ignore[no-untyped-def]
    if "connect" in case:
        return parse_connect_target(case["connect"])
    return parse_absolute_url(case["url"])[0]


@pytest.mark.parametrize("case", [c for c in CASES if not c.get("resolve")],
                         ids=lambda c: c.get("connect") or c.get("url"))  # fmt: skip
@pytest.mark.parametrize("effect", ["allow", "deny"])
def test_a_grant_decides_only_what_the_rules_leave_to_ask(case: dict, effect: str) -> None:
    try:
        target = _target(case)
    except BadTarget:
        assert "reject" in expected(case), case["why"]
        return
    addresses = [target.ip] if target.ip is not None else None
    before = decide_network(rules(), target.host, target.port, addresses)
    assert before.action in expected(case), case["why"]
    subject = (f"[{target.host}]:{target.port}" if ":" in target.host
               else f"{target.host}:{target.port}")  # fmt: skip
    grants = GrantTable()
    grants.add(new_grant("network", subject, effect, "run", run_id="r1", profile="p",
                         decided_by="tester"))  # fmt: skip
    after = decide_network(rules(), target.host, target.port, addresses, grants=grants,
                           run_id="r1", profile="p")  # fmt: skip
    if before.action == "ask":
        assert after.action == effect, (case["why"], after)
        assert after.provenance.kind == "grant", after.provenance
    else:
        assert after.action == before.action, (case["why"], after)


# --- the corpus through shadow: a proposed rule shadows exactly what the engine would decide ---

from console.policy.netrules import NetworkRules  # noqa: E402
from console.policy.shadow import shadow  # noqa: E402
from tests.gate.support import FAKE_GLOBAL  # noqa: E402
from tests.gate.test_gate_corpus import POLICY  # noqa: E402


@pytest.mark.parametrize("effect", ["allow", "deny"])
@pytest.mark.parametrize("rule", POLICY["allow"] + POLICY["deny"])
def test_shadow_covers_what_the_engine_would_decide(rule: str, effect: str) -> None:
    ports = POLICY["ports"]
    for case in CASES:
        try:
            target = _target(case)
        except BadTarget:
            continue
        subject = (f"[{target.host}]:{target.port}" if ":" in target.host
                   else f"{target.host}:{target.port}")  # fmt: skip
        engine = NetworkRules([rule] if effect == "allow" else [], [rule] if effect == "deny" else [],
                              "ask", ports)  # fmt: skip
        addresses = [target.ip] if target.ip is not None else [FAKE_GLOBAL]
        decided = engine.decide(target.host, target.port, addresses).action == effect
        bare = NetworkRules([], [], "ask", ports).decide(target.host, target.port, addresses)
        if bare.action != "ask" or (target.ip is not None and effect == "allow" and not decided):
            continue  # the address decides (not globally routable), whatever the rule
        hits = shadow(rule, [{"kind": "network", "subject": subject, "decision": "ask"}],
                      kind="network", effect=effect, ports=ports)
        assert bool(hits) == decided, (rule, effect, subject, case.get("why"))
