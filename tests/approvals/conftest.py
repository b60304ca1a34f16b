"""Shared parts for inbox, agent.sock and helper tests: a recorder standing in for the store's
commit, a real agent.sock server on a real unix socket, and a way to wait for prompts."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.daemon.agent_socket import start_agent_server
from console.daemon.inbox import Inbox
from console.daemon.requests import Request
from console.policy import ExecRules, GrantTable, make_policy_eval

WAIT = 10.0  # generous: only a bound on a hang, never a measurement


class Recorder:
    """The `record` callback: keeps events, can be told to fail, and notes which requests were
    visible at the moment each event was recorded."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.fail: set[str] = set()
        self.inbox: Inbox | None = None
        self.visible_at_record: list[list[str]] = []

    async def __call__(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # a real commit yields to the loop
        if kind in self.fail or "*" in self.fail:
            raise RuntimeError("disk full")
        if self.inbox is not None:
            self.visible_at_record.append([r.id for r in self.inbox.pending()])
        self.events.append((kind, data))
        return {"id": len(self.events)}

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == kind]


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


async def next_pending(inbox: Inbox, run_id: str | None = None, timeout: float = WAIT) -> Request:
    """The oldest pending request (of a run), waiting for one to appear."""
    async def wait() -> Request:
        while True:
            reqs = inbox.pending(run_id)
            if reqs:
                return reqs[0]
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(wait(), timeout)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # unix socket paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="ph-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


RULES = ExecRules(
    allow=["git status", "echo", "sh -c", "true"],
    ask=["git push"],
    forbid=["rm -rf /"],
    default="ask",
)


class AgentServer:
    def __init__(self, path: Path, inbox: Inbox, recorder: Recorder, grants: GrantTable) -> None:
        self.path, self.inbox, self.recorder, self.grants = path, inbox, recorder, grants


@pytest.fixture
async def agent_server(sock_dir: Path, recorder: Recorder) -> AsyncIterator[AgentServer]:
    """A run "r1" (profile "demo") with its agent.sock served by handle_agent_connection."""
    grants = GrantTable()
    inbox = Inbox(recorder, timeout_s=WAIT, grants=grants)
    recorder.inbox = inbox
    policy_eval = make_policy_eval(lambda profile: RULES, grants)
    path = sock_dir / "agent.sock"
    server = await start_agent_server(path, "r1", "demo", inbox, policy_eval)
    try:
        yield AgentServer(path, inbox, recorder, grants)
    finally:
        server.close()
        await server.wait_closed()
