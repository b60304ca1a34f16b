"""Exec and network evaluation for live runs: the profile's rules in force now, and the grants.

The agent socket's asks (`ph-ask exec`, `ph-ask net`) and each run's gate decide through here,
so an agent asking ahead gets the answer the gate would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from console.config.load import Profile
from console.daemon.live_config import LiveConfig
from console.policy import Decision, ExecRules, GrantTable, Provenance, make_policy_eval
from console.policy.hosts import BadTarget, IPAddress, parse_connect_target
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network


def network_rules(profile: Profile) -> NetworkRules:
    net = profile.network
    return NetworkRules(
        allow=[(r.text, r.source) for r in net.allow],
        deny=[(r.text, r.source) for r in net.deny],
        default=net.default,  # type: ignore[arg-type]
        ports=net.ports,
    )


# (kind, subject, run_id, profile) -> the decision of rules and grants, for agent.sock
PolicyEval = Callable[[str, str, str, str], Decision]


class PolicyEvaluator:
    def __init__(self, config: LiveConfig, grants: GrantTable) -> None:
        self.config = config
        self.grants = grants
        self.policy_eval: PolicyEval = make_policy_eval(self.exec_rules, grants, self.network_ask)
        # The same decision as a look that uses nothing up: the inbox's check of the policy in
        # force before it applies an allow.
        self.policy_now: PolicyEval = make_policy_eval(
            self.exec_rules, grants, lambda subject, run_id, profile: self.network_ask(
                subject, run_id, profile, consume=False), consume=False)

    def profile(self, name: str) -> Profile:
        return self.config.cfg.profile(name)

    def exec_rules(self, profile_name: str) -> ExecRules:
        return ExecRules.from_config(self.profile(profile_name).exec)

    def network_ask(self, subject: str, run_id: str, profile_name: str, *,
                    consume: bool = True) -> Decision:
        """`ph-ask net HOST:PORT`: decide_network, the gate's own decision before any lookup."""
        try:
            target = parse_connect_target(subject)
        except BadTarget as exc:
            return Decision("deny", Provenance("error", detail=f"not a host:port ({exc})"))
        return decide_network(network_rules(self.profile(profile_name)), target.host,
                              target.port, None, grants=self.grants, run_id=run_id,
                              profile=profile_name, consume=consume)

    def connection(self, run_id: str, profile_name: str, host: str, port: int,
                   addresses: Sequence[IPAddress] | None) -> Decision:
        """A gate's connection, with the addresses it resolved (None before any lookup)."""
        return decide_network(network_rules(self.profile(profile_name)), host, port, addresses,
                              grants=self.grants, run_id=run_id, profile=profile_name)
