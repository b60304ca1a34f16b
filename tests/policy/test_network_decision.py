"""One network decision: rules, then grants, in one function that agent.sock, the gate's asker,
`policy check` and shadow all call; grant patterns read exactly like config rules."""

from __future__ import annotations

import pytest

from console.policy import Action, Decision, GrantTable, Provenance, new_grant, strictest
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network
from console.policy.shadow import shadow

T0 = 1_700_000_000.0


def grant(pattern: str, effect: str = "allow", scope: str = "run") -> object:
    return new_grant("network", pattern, effect, scope, run_id="r1", profile="demo",
                     decided_by="alice", now=T0)


@pytest.mark.parametrize("pattern", ["*.com", "*", "**", "a*.b.com", "", "exa mple.com",
                                     "10.0.0.1/8"])
def test_grant_patterns_are_refused_like_config_rules(pattern: str) -> None:
    with pytest.raises(ValueError):
        grant(pattern)


def test_an_idn_deny_grant_matches_the_normalised_name() -> None:
    table = GrantTable()
    g = table.add(grant("BÜCHER.example", effect="deny"))
    assert table.match("network", "xn--bcher-kva.example:443", "r1", "demo", T0) is g
    rules = NetworkRules(default="ask")
    d = decide_network(rules, "xn--bcher-kva.example", 443, None, grants=table, run_id="r1",
                       profile="demo", now=T0)
    assert d.action == "deny" and d.provenance.grant_id == g.id


def test_grants_use_the_profiles_ports_not_80_and_443() -> None:
    table = GrantTable()
    table.add(grant("pypi.org"))
    rules = NetworkRules(default="ask", ports=[443, 8443])

    def action(port: int) -> str:
        return decide_network(rules, "pypi.org", port, None, grants=table, run_id="r1",
                              profile="demo", now=T0).action

    assert action(8443) == "allow"
    assert action(80) == "ask"


def test_rules_come_before_grants_and_deny_grants_before_allow_grants() -> None:
    table = GrantTable()
    table.add(grant("**.example.net"))
    deny = table.add(grant("bad.example.net", effect="deny"))
    rules = NetworkRules(allow=["ok.example.org"], deny=[("**.tracker.example", "c.toml:3")],
                         default="ask")

    def decide(host: str, port: int = 443, addresses=None) -> Decision:
        return decide_network(rules, host, port, addresses, grants=table, run_id="r1",
                              profile="demo", now=T0)

    assert decide("a.example.net").action == "allow"
    assert decide("bad.example.net").provenance.grant_id == deny.id
    d = decide("x.tracker.example")
    assert d.action == "deny" and d.provenance == Provenance(
        "rule", rule="**.tracker.example", rule_list="deny", source="c.toml:3",
        detail="denied by rule **.tracker.example (c.toml:3)")
    assert decide("elsewhere.invalid").action == "ask"
    import ipaddress

    private = decide("a.example.net", addresses=[ipaddress.ip_address("10.0.0.1")])
    assert private.action == "deny" and private.provenance.kind == "limit"  # no grant opens it
    assert private.provenance.describe().startswith("a.example.net resolves to 10.0.0.1")


def test_decisions_are_ordered() -> None:
    assert Action("allow") < Action("ask") < Action("deny")
    assert strictest("allow", "deny", "ask") == "deny" and max(Action) is Action.DENY
    assert Decision("ask", Provenance("default")).action == "ask"


def test_shadow_uses_the_profiles_ports() -> None:
    past = [{"kind": "network", "subject": "example.com:8443", "decision": "ask"},
            {"kind": "network", "subject": "example.com:22", "decision": "ask"}]
    hits = shadow("example.com", past, kind="network", effect="allow", ports=[443, 8443])
    assert [h.request["subject"] for h in hits] == ["example.com:8443"]
    with pytest.raises(ValueError):
        shadow("*.com", past, kind="network")



async def test_a_person_cannot_grant_a_pattern_the_config_would_refuse() -> None:
    from console.daemon.inbox import Inbox
    from console.protocol import Failure
    from tests.approvals.conftest import Recorder, next_pending

    inbox = Inbox(record=Recorder(), timeout_s=30, grants=GrantTable())
    import asyncio

    task = asyncio.create_task(inbox.submit("r1", "demo", "network", "api.example.com:443",
                                            grant_patterns=["api.example.com:443"]))
    req = await next_pending(inbox)
    with pytest.raises(Failure) as err:
        await inbox.decide(req.id, True, "alice", "run", pattern="*.com")
    assert err.value.code == "bad-pattern" and "single label" in err.value.message
    assert inbox.pending() == [req]
    await inbox.decide(req.id, False, "alice")
    assert not (await task).allow
