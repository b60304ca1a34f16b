"""A person's decision "for this profile": the rules it writes, and whether they would work.

Preview and save use the same plan, so what is shown is what is written and nothing else. A rule
that a stricter one in the profile would override (an allow under a built-in ask or forbid, an
allow host under a deny) is named before anything is saved: writing it would change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from console.config.load import Profile
from console.policy import ExecRules, Provenance, grant_to_rule, new_grant, rule_list_for
from console.policy.hosts import BadTarget, parse_connect_target
from console.policy.netrules import NetworkRules
from console.policy.network import provenance_of


@dataclass(frozen=True)
class PlannedRule:
    profile: str
    section: str  # exec | network
    list_name: str  # allow | ask | forbid | deny: the list it is written to, the label shown
    rule: str

    def line(self) -> str:
        return f'+ {self.profile} {self.section} {self.list_name} "{self.rule}"'


def plan(profile: str, kind: str, patterns: Sequence[str], allow: bool) -> list[PlannedRule]:
    """Every rule a profile-scope decision writes, read by the grant grammar. ValueError for a
    pattern the config would refuse."""
    out: list[PlannedRule] = []
    for pattern in patterns:
        grant = new_grant(kind, pattern, "allow" if allow else "deny", "profile", run_id=None,
                          profile=profile, decided_by="plan")
        section, list_name = rule_list_for(grant)
        planned = PlannedRule(profile, section, list_name, grant_to_rule(grant))
        if planned not in out:
            out.append(planned)
    return out


def overridden_by(profile: Profile, kind: str, subject: str,
                  planned: Sequence[PlannedRule]) -> Provenance | None:
    """The stricter rule that would still decide `subject` once the planned allow rules are in
    the profile, or None when they take effect. Deny and forbid rules are never overridden."""
    adds = [p.rule for p in planned if p.list_name == "allow"]
    if not adds:
        return None
    if kind == "exec":
        e = profile.exec
        decision = ExecRules([*e.allow, *adds], e.ask, e.forbid, e.default).evaluate(subject)
        return None if decision.action == "allow" else decision.provenance
    if kind == "network":
        try:
            target = parse_connect_target(subject)
        except BadTarget:
            return None
        n = profile.network
        rules = NetworkRules([*((r.text, r.source) for r in n.allow), *adds],
                             [(r.text, r.source) for r in n.deny], n.default,  # type: ignore[arg-type]
                             n.ports)
        match = rules.decide(target.host, target.port, None)
        return None if match.action == "allow" else provenance_of(match)
    return None
