"""A run's ways out, set up before its command runs and torn down when it ends.

Per run: agent.sock (asks, served by agent_socket with the shared inbox), gate.sock (the run's
Gate) and the bridge on 127.0.0.1:3128 inside the sandbox's network namespace, which hands each
connection straight to the same Gate. The run is known from which socket or bridge a connection
came in on, never from what it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from console.config.bounds import Bounds, fd_budget
from console.config.load import Profile
from console.daemon.agent_socket import start_agent_server
from console.daemon.floods import FloodControl
from console.daemon.inbox import Inbox, Request
from console.gate.common import GateLimits, NetAsk, Verdict
from console.gate.proxy import Gate
from console.policy import Decision, ExecRules, GrantTable, Provenance, make_policy_eval
from console.policy.hosts import BadTarget, parse_connect_target
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network
from console.sandbox.base import SandboxHandle
from console.sandbox.bridge import open_bridge_listener

if TYPE_CHECKING:
    from console.daemon.core import Services
    from console.daemon.runs import Run

log = logging.getLogger("pilothouse.run_sockets")

# Events the gate reports that must be durable before the connection proceeds.
SECURITY_NET_EVENTS = frozenset({"net.decision", "net.sni_mismatch"})
# Gate events a flood could repeat: aggregated per (run, kind, subject, decision) per second.
FLOOD_NET_EVENTS = frozenset({"net.decision", "net.rejected", "net.error"})


@dataclass
class RunChannels:
    gate: Gate
    servers: list[Any] = field(default_factory=list)


def network_rules(profile: Profile) -> NetworkRules:
    net = profile.network
    return NetworkRules(
        allow=[(r.text, r.source) for r in net.allow],
        deny=[(r.text, r.source) for r in net.deny],
        default=net.default,  # type: ignore[arg-type]
        ports=net.ports,
    )


def _inference_endpoints(items: list[str]) -> list[tuple[str, int]]:
    out = []
    for item in items:
        host, _, port = item.rpartition(":")
        if host and port.isdigit():
            out.append((host.strip("[]"), int(port)))
    return out


class RunSockets:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.grants = GrantTable()
        cfg = services.daemon.cfg
        self.inbox = Inbox(
            record=self._record_approval,
            notify=self._notify,
            timeout_s=cfg.approval_timeout,
            grants=self.grants,
            on_change=self._publish,
            timeout_for=lambda name: self.profile(name).approval_timeout,
        )
        self.channels: dict[str, RunChannels] = {}
        self.policy_eval = make_policy_eval(self._exec_rules, self.grants, self._network_eval)
        self.floods = FloodControl(self._emit_summary, lambda: self.bounds.events_per_second)

    @property
    def bounds(self) -> Bounds:
        return self.services.daemon.cfg.bounds

    def _emit_summary(self, kind: str, run_id: str | None, text: str,
                      data: dict[str, Any]) -> None:
        self.services.writer.record(kind, run_id=run_id, text=text, data=data, actor="daemon")

    def _admit(self, run_id: str, kind: str, subject: str, decision: str,
               data: dict[str, Any]) -> bool:
        self.floods.start()
        return self.floods.admit(run_id, kind, subject, decision, data)

    # --- policy --------------------------------------------------------------------------------

    def profile(self, name: str) -> Profile:
        return self.services.daemon.cfg.profile(name)

    def _exec_rules(self, profile_name: str) -> ExecRules:
        return ExecRules.from_config(self.profile(profile_name).exec)

    def _network_eval(self, subject: str, run_id: str, profile_name: str) -> Decision:
        """`ph-ask net HOST:PORT`: decide_network, the gate's own decision before any lookup,
        so an agent asking ahead gets the gate's answer."""
        try:
            target = parse_connect_target(subject)
        except BadTarget as exc:
            return Decision("deny", Provenance("error", detail=f"not a host:port ({exc})"))
        return decide_network(network_rules(self.profile(profile_name)), target.host,
                              target.port, None, grants=self.grants, run_id=run_id,
                              profile=profile_name)

    # --- recording -----------------------------------------------------------------------------

    async def _record_approval(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        text = data.get("text") or data.get("summary") or data.get("subject") or ""
        actor = data.get("decided_by") or data.get("actor")
        return await self.services.writer.acommit(
            kind, run_id=data.get("run_id"), actor=actor, text=str(text)[:500], data=data
        )

    def _publish(self, event: dict[str, Any]) -> None:
        self.services.bus.publish(event)

    def _notify(self, request: Request) -> None:
        """Run the configured notify_command for a new pending request. The request's text
        goes on stdin, never in argv: arguments are visible to every user in ps."""
        command = self.services.daemon.cfg.notify_command
        if not command:
            return
        body = f"Pilothouse: run {request.run_id} asks: {request.summary()}\n"
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PILOTHOUSE_REQUEST_ID": request.id,
                     "PILOTHOUSE_RUN_ID": request.run_id, "PILOTHOUSE_KIND": request.kind},
            )
        except OSError as exc:
            log.warning("notify_command %s failed: %s", shlex.join(command), exc)
            return

        def feed() -> None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.communicate(body.encode(), timeout=30)

        asyncio.get_running_loop().run_in_executor(None, feed)

    def _gate_recorder(self, run: Run) -> Any:
        async def record(kind: str, data: dict[str, Any]) -> None:
            text = f"{data.get('action') or ''} {data.get('host', '')}:{data.get('port', '')}".strip()
            if kind in FLOOD_NET_EVENTS and not data.get("asked"):
                subject = f"{data.get('host') or data.get('target', '')}:{data.get('port', '')}"
                decision = str(data.get("action") or data.get("status") or data.get("stage"))
                if not self._admit(run.id, kind, subject, decision, data):
                    return  # counted into this second's summary row
            event = {"kind": kind, "run_id": run.id, "ts": time.time(), **data}
            if kind in SECURITY_NET_EVENTS:
                # Raises on failure: the gate then refuses the connection (fail closed).
                await self.services.writer.acommit(kind, run_id=run.id, text=text, data=data,
                                                   actor=_actor(data))
            else:
                self.services.writer.record(kind, run_id=run.id, text=text, data=data)
            self.services.bus.publish(event)

        return record

    def _gate_asker(self, run: Run, profile: Profile) -> Any:
        async def ask(request: NetAsk) -> Verdict:
            decided = decide_network(
                network_rules(self.profile(profile.name)), request.host, request.port,
                [ip_address(a) for a in request.addresses] if request.addresses else None,
                grants=self.grants, run_id=run.id, profile=profile.name)
            if decided.action != "ask":
                return Verdict(decided.allowed, decided.provenance.to_dict())
            subject = decided.asking[0]
            outcome = await self.inbox.submit(
                run.id, profile.name, "network", subject,
                detail={"host": request.host, "port": request.port,
                        "addresses": list(request.addresses), "method": request.method,
                        "target": request.target},
                rule_provenance=Provenance("default", rule_list=profile.network.default),
                title=f"connect to {subject}",
                grant_patterns=(subject,),  # exactly what the person saw: this host and port
            )
            prov = outcome.provenance.to_dict()
            prov["request_id"] = outcome.request_id
            return Verdict(outcome.allow, prov)

        return ask

    # --- lifecycle -----------------------------------------------------------------------------

    async def prepare(self, run: Run, handle: SandboxHandle | None, profile: Profile) -> None:
        run_dir = self.services.paths.run_dir(run.id)
        cfg = self.services.daemon.cfg
        b = cfg.bounds
        gate = Gate(
            run.id, network_rules(profile), ask=self._gate_asker(run, profile),
            record=self._gate_recorder(run), profile=profile.name,
            meter=_inference_endpoints(cfg.inference), trace=self.services.trace,
            limits=GateLimits(max_connections=b.gate_connections, max_header_bytes=b.head_bytes,
                              head_timeout=b.head_timeout,
                              lookups_per_second=b.lookups_per_second),
            on_refused=lambda: self.floods.refused(run.id, "gate"), budget=fd_budget(),
        )
        self.floods.start()
        channels = RunChannels(gate)
        self.channels[run.id] = channels
        agent_sock = run_dir / "agent.sock"
        gate_sock = run_dir / "gate.sock"
        # 0666 inside a run folder whose parent (runs/) is 0700: the sandbox's uid (which may
        # be mapped or non-root in Docker) can connect, other host users cannot reach it.
        channels.servers.append(await start_agent_server(
            agent_sock, run.id, profile.name, self.inbox, self.policy_eval, mode=0o666,
            admit=self._admit, max_connections=lambda: self.bounds.agent_connections,
            on_refused=lambda: self.floods.refused(run.id, "agent.sock")))
        channels.servers.append(await gate.serve_unix(str(gate_sock)))
        os.chmod(gate_sock, 0o666)
        if handle is not None and handle.netns_pid:
            listener = await open_bridge_listener(handle.netns_pid)
            channels.servers.append(await gate.serve_socket(listener))

    async def teardown(self, run: Run, handle: SandboxHandle | None, profile: Profile) -> None:
        channels = self.channels.pop(run.id, None)
        await self.inbox.cancel_run(run.id)
        self.grants.end_run(run.id)
        if self.services.gpu is not None:
            await self.services.gpu.finish_run(run.id)
        if channels is None:
            return
        for server in channels.servers:
            server.close()
        await channels.gate.close()
        self.floods.flush(run.id)

    def reload(self, profile_name: str | None = None) -> None:
        """Config changed: live gates read their profile's new rules on the next request."""
        for run_id, channels in self.channels.items():
            run = self.services.runs.runs.get(run_id) if self.services.runs else None
            if run is None or (profile_name and run.profile != profile_name):
                continue
            with contextlib.suppress(Exception):
                channels.gate.rules = network_rules(self.profile(run.profile))

    async def close(self) -> None:
        for run_id in list(self.channels):
            channels = self.channels.pop(run_id)
            for server in channels.servers:
                server.close()
            await channels.gate.close()
        await self.floods.stop()


def _actor(data: dict[str, Any]) -> str | None:
    prov = data.get("provenance") or {}
    return prov.get("person") if isinstance(prov, dict) else None
