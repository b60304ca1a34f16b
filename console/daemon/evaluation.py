"""Exec and network evaluation for live runs: the profile's rules in force now, and the grants.

The agent socket's asks (`ph-ask exec`, `ph-ask net`) and each run's gate decide through here,
so an agent asking ahead gets the answer the gate would give.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from console.config.load import Profile
from console.daemon.live_config import LiveConfig
from console.policy import (
    Decision,
    ExecRules,
    GrantTable,
    Provenance,
    evaluate_exec,
    make_policy_eval,
)
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
        self._evaluating: dict[str, asyncio.Lock] = {}  # per run: one command off the loop at a time

    async def ask(self, kind: str, subject: str, run_id: str, profile: str) -> Decision:
        """agent.sock's decision (policy_eval), a command's off the loop: see _exec_off_loop."""
        if kind != "exec":
            return self.policy_eval(kind, subject, run_id, profile)
        decision = await self._exec_off_loop(subject, run_id, profile)
        prov = decision.provenance
        if prov.kind == "grant" and prov.scope == "once" and prov.grant_id:
            self.grants.revoke(prov.grant_id)  # a "once" grant is used up by what it decided
        return decision

    async def now(self, kind: str, subject: str, run_id: str, profile: str) -> Decision:
        """policy_now (the inbox's look before it applies an allow), a command's off the loop."""
        if kind != "exec":
            return self.policy_now(kind, subject, run_id, profile)
        return await self._exec_off_loop(subject, run_id, profile)

    async def _exec_off_loop(self, command: str, run_id: str, profile: str) -> Decision:
        """A command's rules and grants, in a thread, on a copy of the grants the loop may change
        meanwhile, one at a time per run. A 4 KiB command of 2,000 parts is about 0.55 s of CPU
        under the built-in rules (more under a larger config): on the loop, one agent's burst of
        asks held every run, gate and console for as long (review s17)."""
        lock = self._evaluating.setdefault(run_id, asyncio.Lock())
        try:
            async with lock:
                return await asyncio.to_thread(
                    evaluate_exec, command, self.exec_rules(profile), self.grants.trial(()),
                    run_id=run_id, profile=profile, consume=False)
        finally:
            if not lock.locked() and self._evaluating.get(run_id) is lock:
                del self._evaluating[run_id]

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
