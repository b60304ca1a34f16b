"""The one network decision: a profile's rules, then the live grants.

agent.sock (`ph-ask net`), the gate's asker, `policy check` and the console's test box all call
decide_network, so an agent asking ahead, a connection through the gate and a person checking
from the CLI get the same answer with the same provenance. Order:

    deny rule (host, or any address through any wrapper)   -> deny
    address not globally routable, not named by an allow IP rule -> deny (no grant opens it)
    allow rule                                            -> allow
    the profile's default, when it is allow or deny       -> that
    deny grant (host, or any address it would dial)       -> deny
    allow grant for the host:port (newest first)          -> allow
    otherwise                                             -> ask a person

Grants are consulted only where the rules would ask: a grant never opens what a rule closes.
A deny grant on an address or CIDR covers a name resolving there, as a deny rule does (review
s23: a person's deny on 127.0.0.77 let `db.corp.invalid`, resolving to it, through under an
allow grant for the name); the gate asks again with the addresses it is about to dial when a
yes came before the lookup (Gate's `veto`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from console.policy import Decision, Grant, GrantTable, Provenance
from console.policy.hosts import IPAddress, address_text
from console.policy.netrules import NetMatch, NetworkRules
from console.text import destination


def provenance_of(match: NetMatch) -> Provenance:
    """The provenance of a rules-only network verdict, in the one type every decision uses."""
    if match.basis == "default":
        return Provenance("default", rule_list=match.action, detail=match.reason)
    if match.basis == "not-routable":  # a built-in limit, no rule of the config's
        return Provenance("limit", rule_list="deny", detail=match.reason)
    return Provenance("rule", rule=match.rule, rule_list=match.action, source=match.source,
                      detail=match.reason)


def decide_network(
    rules: NetworkRules,
    host: str,
    port: int,
    addresses: Sequence[IPAddress] | None = None,
    *,
    grants: GrantTable | None = None,
    run_id: str | None = None,
    profile: str | None = None,
    now: float | None = None,
    consume: bool = True,
) -> Decision:
    """Decide a normalised host and port (and, once resolved, the addresses that would be dialled;
    None before any lookup). An "ask" carries the subject a person answers, "host:port"."""
    match = rules.decide(host, port, addresses)
    if match.action != "ask":
        return Decision(match.action, provenance_of(match))
    subject = destination(host, port)
    if grants is not None:
        now = time.time() if now is None else now
        dialled = [destination(address_text(a), port) for a in addresses or ()]
        grant = _deciding_grant(grants, subject, dialled, run_id, profile, now,
                                consume=consume, ports=rules.ports)
        if grant is not None:
            return Decision("allow" if grant.effect == "allow" else "deny", grant.provenance())
    return Decision("ask", provenance_of(match), (subject,))


def _deciding_grant(grants: GrantTable, subject: str, dialled: Sequence[str],
                    run_id: str | None, profile: str | None, now: float, *, consume: bool,
                    ports: Sequence[int]) -> Grant | None:
    """The grant that decides: a deny grant covering the host or any address to be dialled
    (strictest wins), else an allow grant covering the host:port; newest first in each."""
    for g in grants.live("network", run_id, profile, now):  # deny grants first
        covered = (subject, *dialled) if g.effect == "deny" else (subject,)
        if any(g.matches(s, ports) for s in covered):
            if consume:
                grants.consume(g)
            return g
    return None
