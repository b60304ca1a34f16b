"""One run's gate, wired to the daemon: the profile's network rules, the inbox for what they
leave to a person, the recorder, the limits and the trace of metered inference calls.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from ipaddress import ip_address
from typing import Any

from console.config.bounds import fd_budget
from console.config.load import Profile
from console.daemon.evaluation import PolicyEvaluator, network_rules
from console.daemon.inbox import Inbox
from console.daemon.live_config import LiveConfig
from console.daemon.recording import Recording
from console.gate.common import Asker, GateLimits, NetAsk, Stands, Verdict, Veto
from console.gate.proxy import Gate
from console.gate.trace import TraceRecorder
from console.policy import Grant, Provenance
from console.policy.hosts import IPAddress
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network


def inference_endpoints(items: list[str]) -> list[tuple[str, int]]:
    """[gate] inference "host:port" entries, as the gate meters them."""
    out = []
    for item in items:
        host, _, port = item.rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


class GateWiring:
    def __init__(self, config: LiveConfig, evaluator: PolicyEvaluator, inbox: Inbox,
                 recording: Recording, trace: TraceRecorder) -> None:
        self.config = config
        self.evaluator = evaluator
        self.inbox = inbox
        self.recording = recording
        self.trace = trace
        self._following: weakref.WeakSet[Gate] = weakref.WeakSet()
        self._loop: asyncio.AbstractEventLoop | None = None
        evaluator.grants.watch(self._grants_changed)

    def gate_for(self, run_id: str, profile: Profile) -> Gate:
        cfg = self.config.cfg
        b = cfg.bounds
        return self.follow_grants(Gate(
            run_id, network_rules(profile), ask=self.asker(run_id, profile),
            record=self.recording.for_gate(run_id), profile=profile.name,
            meter=inference_endpoints(cfg.inference), trace=self.trace,
            limits=GateLimits(max_connections=b.gate_connections, max_header_bytes=b.head_bytes,
                              head_timeout=b.head_timeout,
                              lookups_per_second=b.lookups_per_second),
            on_refused=lambda: self.recording.refused(run_id, "gate"), budget=fd_budget(),
            veto=self.veto(run_id, profile.name), stands=self.stands(run_id, profile.name),
        ))

    def follow_grants(self, gate: Gate) -> Gate:
        """Have the gate look again at its open connections as soon as a grant is made or
        ends, and when a timed grant's time is up: a tunnel opened on a grant ends with it,
        not at the gate's next sweep up to a second later (Gate.recheck_asked)."""
        if self._loop is None:  # the first gate: timed grants made before it get their look
            self._loop = asyncio.get_running_loop()
            for grant in self.evaluator.grants.list():
                self._look_when_up(grant)
        self._following.add(gate)
        return gate

    def _grants_changed(self, made: Grant | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._recheck, made)  # the table may change in a thread

    def _recheck(self, made: Grant | None) -> None:
        for gate in list(self._following):
            gate.recheck_asked()
        if made is not None:
            self._look_when_up(made)

    def _look_when_up(self, grant: Grant) -> None:
        if grant.expires_at is not None and self._loop is not None:
            # Just after its end: a look a moment early would find it still standing.
            self._loop.call_later(max(0.0, grant.expires_at - time.time()) + 0.005,
                                  self._recheck, None)

    def apply_config(self, gate: Gate, profile_name: str) -> None:
        """Config changed: a live gate reads its profile's new rules on the next request, and
        its connections to what they now deny end."""
        gate.replace_rules(network_rules(self.evaluator.profile(profile_name)))

    def veto(self, run_id: str, profile_name: str) -> Veto:
        """The gate's look at the grants with the addresses it is about to dial: a person's
        deny grant on one of them (or on the name) refuses the connection, whatever yes or
        allow grant the name got before its lookup. Uses nothing up (a "once" grant stays)."""
        def veto(host: str, port: int, addresses: list[IPAddress]) -> Verdict | None:
            decided = self.evaluator.connection(run_id, profile_name, host, port, addresses,
                                                consume=False)
            if decided.action == "deny" and decided.provenance.kind == "grant":
                return Verdict(False, decided.provenance.to_dict())
            return None

        return veto

    def stands(self, run_id: str, profile_name: str) -> Stands:
        """Whether an open connection's yes (a person's, or a grant's: its provenance) still
        stands: not when the rules and grants now deny where it goes (a deny grant made since),
        nor when nothing allows it now and the yes was a grant's or made one that has ended
        (revoked, its time run out). A `once` yes stands. Uses nothing up."""
        def stands(rules: NetworkRules, host: str, port: int, address: IPAddress,
                   yes: dict[str, Any]) -> bool:
            decided = decide_network(rules, host, port, [address], grants=self.evaluator.grants,
                                     run_id=run_id, profile=profile_name, consume=False)
            if decided.action != "ask":
                return decided.action == "allow"
            return not yes.get("grant_id") or yes.get("scope") == "once"

        return stands

    def asker(self, run_id: str, profile: Profile) -> Asker:
        """The gate's question to the daemon for a destination its rules do not settle: the
        policy with the grants first, then a person through the inbox."""
        async def ask(request: NetAsk) -> Verdict:
            decided = self.evaluator.connection(
                run_id, profile.name, request.host, request.port,
                [ip_address(a) for a in request.addresses] if request.addresses else None)
            if decided.action != "ask":
                return Verdict(decided.allowed, decided.provenance.to_dict())
            subject = decided.asking[0]
            outcome = await self.inbox.submit(
                run_id, profile.name, "network", subject,
                detail={"host": request.host, "port": request.port,
                        "addresses": list(request.addresses), "method": request.method,
                        "target": request.target},
                rule_provenance=Provenance("default", rule_list=profile.network.default),
                grant_patterns=(subject,),  # exactly what the person saw: this host and port
            )
            prov = outcome.provenance.to_dict()
            prov["request_id"] = outcome.request_id
            return Verdict(outcome.allow, prov)

        return ask
