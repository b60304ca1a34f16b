"""Exec and network evaluation for live runs: the profile's rules in force now, and the grants.

The agent socket's asks (`ph-ask exec`, `ph-ask net`) and each run's gate decide through here,
so an agent asking ahead gets the answer the gate would give.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from console.config.load import Profile
from console.daemon.live_config import LiveConfig
from console.gate.own import but_this_machine
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


class _RunTurn:
    """One run's turn to have a command decided off the loop, and how many asks hold or wait
    for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.asks = 0


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
        self._evaluating: dict[str, _RunTurn] = {}  # per run: one command off the loop at a time

    async def ask(self, kind: str, subject: str, run_id: str, profile: str) -> Decision:
        """agent.sock's decision (policy_eval), a command's off the loop: see _exec_off_loop."""
        if kind != "exec":
            return self.policy_eval(kind, subject, run_id, profile)
        return await self._exec_off_loop(subject, run_id, profile, use_once=True)

    async def now(self, kind: str, subject: str, run_id: str, profile: str) -> Decision:
        """policy_now (the inbox's look before it applies an allow), a command's off the loop."""
        if kind != "exec":
            return self.policy_now(kind, subject, run_id, profile)
        return await self._exec_off_loop(subject, run_id, profile, use_once=False)

    async def _exec_off_loop(self, command: str, run_id: str, profile: str, *,
                             use_once: bool) -> Decision:
        """A command's rules and grants, in a thread, on a copy of the grants the loop may change
        meanwhile, one at a time per run. A 4 KiB command of 2,000 parts is about 0.55 s of CPU
        under the built-in rules (more under a larger config): on the loop, one agent's burst of
        asks held every run, gate and console for as long (review s17)."""
        turn = self._evaluating.setdefault(run_id, _RunTurn())
        turn.asks += 1
        try:
            await turn.lock.acquire()
        except BaseException:
            self._leave(run_id, turn, holding=False)
            raise
        try:
            work = asyncio.ensure_future(asyncio.to_thread(
                evaluate_exec, command, self.exec_rules(profile), self.grants.trial(()),
                run_id=run_id, profile=profile, consume=False))
        except BaseException:
            self._leave(run_id, turn, holding=True)
            raise
        # The turn ends with the thread, not with this ask: a cancelled ask (its connection
        # closed) leaves its thread deciding, and the run's next command waits for it.
        work.add_done_callback(lambda done: self._decided(run_id, turn, done, use_once))
        return await asyncio.shield(work)

    def _decided(self, run_id: str, turn: _RunTurn, work: asyncio.Future[Decision],
                 use_once: bool) -> None:
        """A "once" grant is used up by what it decided, within the run's turn: the next ask's
        copy of the grants is taken without it."""
        try:
            if use_once and not work.cancelled() and work.exception() is None:
                prov = work.result().provenance
                if prov.kind == "grant" and prov.scope == "once" and prov.grant_id:
                    self.grants.revoke(prov.grant_id)
        finally:
            self._leave(run_id, turn, holding=True)

    def _leave(self, run_id: str, turn: _RunTurn, *, holding: bool) -> None:
        if holding:
            turn.lock.release()
        # Forgotten only when no ask holds or waits for it: a lock just released may not be
        # locked yet by the ask it woke, and a new lock then would decide two at once (each
        # on a copy holding the same "once" grant).
        turn.asks -= 1
        if turn.asks == 0:
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
        rules = network_rules(self.profile(profile_name))
        decision = decide_network(rules, target.host, target.port, None, grants=self.grants,
                                  run_id=run_id, profile=profile_name, consume=consume)
        return but_this_machine(decision, rules, target, [target.ip] if target.ip is not None else [])

    def connection(self, run_id: str, profile_name: str, host: str, port: int,
                   addresses: Sequence[IPAddress] | None, *, consume: bool = True) -> Decision:
        """A gate's connection, with the addresses it resolved (None before any lookup)."""
        return decide_network(network_rules(self.profile(profile_name)), host, port, addresses,
                              grants=self.grants, run_id=run_id, profile=profile_name,
                              consume=consume)
