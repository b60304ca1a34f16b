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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from console.config.load import Profile
from console.daemon.agent_socket import start_agent_server
from console.daemon.evaluation import PolicyEvaluator
from console.daemon.gate_wiring import GateWiring
from console.daemon.inbox import Inbox
from console.daemon.live_config import LiveConfig
from console.daemon.recording import Recording
from console.daemon.runs import Run
from console.gate.deciding import TokenBucket
from console.gate.proxy import Gate
from console.paths import Paths
from console.policy import GrantTable
from console.sandbox.base import SandboxHandle
from console.sandbox.bridge import open_bridge_listener

log = logging.getLogger("pilothouse.channels")

RunEnded = Callable[[str], Awaitable[None]]


@dataclass
class Channels:
    gate: Gate
    profile: str
    servers: list[asyncio.AbstractServer] = field(default_factory=list)


class RunChannels:
    def __init__(self, paths: Paths, config: LiveConfig, gates: GateWiring, inbox: Inbox,
                 evaluator: PolicyEvaluator, grants: GrantTable, recording: Recording,
                 on_run_end: RunEnded | None = None) -> None:
        self.paths = paths
        self.config = config
        self.gates = gates
        self.inbox = inbox
        self.evaluator = evaluator
        self.grants = grants
        self.recording = recording
        self.on_run_end = on_run_end  # e.g. the GPU service closes the run's energy account
        self.open: dict[str, Channels] = {}

    async def prepare(self, run: Run, handle: SandboxHandle | None, profile: Profile) -> None:
        run_dir = self.paths.run_dir(run.id)
        gate = self.gates.gate_for(run.id, profile)
        self.recording.start()
        channels = Channels(gate, profile.name)
        self.open[run.id] = channels
        agent_sock = run_dir / "agent.sock"
        gate_sock = run_dir / "gate.sock"
        bounds = self.config.cfg.bounds  # the ask rate as it is at the run's start
        # 0666 inside a run folder whose parent (runs/) is 0700: the sandbox's uid (which may
        # be mapped or non-root in Docker) can connect, other host users cannot reach it.
        channels.servers.append(await start_agent_server(
            agent_sock, run.id, profile.name, self.inbox, self.evaluator.ask, mode=0o666,
            floods=self.recording,
            max_connections=lambda: self.config.cfg.bounds.agent_connections,
            on_refused=lambda: self.recording.refused(run.id, "agent.sock"),
            asks=TokenBucket(bounds.asks_per_second, burst=bounds.ask_burst)))
        channels.servers.append(await gate.serve_unix(str(gate_sock)))
        os.chmod(gate_sock, 0o666)
        if handle is not None and handle.netns_pid:
            listener = await open_bridge_listener(handle.netns_pid)
            channels.servers.append(await gate.serve_socket(listener))

    async def teardown(self, run: Run, handle: SandboxHandle | None, profile: Profile) -> None:
        channels = self.open.pop(run.id, None)
        await self.inbox.cancel_run(run.id)
        self.grants.end_run(run.id)
        if self.on_run_end is not None:
            await self.on_run_end(run.id)
        if channels is None:
            return
        for server in channels.servers:
            server.close()
        await channels.gate.close()
        await self.gates.trace.drain(run.id)  # the run's trace rows, stored before its end seals them
        self.recording.run_ended(run.id)

    def apply_config(self) -> None:
        """Config changed: live gates read their profile's new rules on the next request, and
        pending requests the new rules deny are closed as denied."""
        for channels in self.open.values():
            with contextlib.suppress(Exception):  # a profile gone from the file keeps its rules
                self.gates.apply_config(channels.gate, channels.profile)
        asyncio.ensure_future(self.inbox.close_forbidden()).add_done_callback(_log_failure)

    async def close(self) -> None:
        for run_id in list(self.open):
            channels = self.open.pop(run_id)
            for server in channels.servers:
                server.close()
            await channels.gate.close()
        await self.recording.close()


def _log_failure(task: asyncio.Future[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("closing the requests a reload denies failed: %s", task.exception())
