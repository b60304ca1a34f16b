"""agent.sock over a real unix socket: static policy first, the inbox for the rest, and no way
for an agent to decide anything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from console.daemon.inbox import EVENT_CANCELLED, EVENT_POLICY, EVENT_REFUSED, EVENT_REFUSED_OP
from console.wire import AGENT_MAX_LINE, encode, request

from .conftest import WAIT, AgentServer, next_pending


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: Path) -> Conn:
        return cls(*await asyncio.open_unix_connection(str(path), limit=4 * AGENT_MAX_LINE))

    async def send(self, msg: dict[str, Any] | bytes) -> None:
        self.writer.write(msg if isinstance(msg, bytes) else encode(msg))
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), WAIT)
        assert line, "connection closed"
        return json.loads(line)

    async def call(self, op: str, args: dict[str, Any], req_id: int = 1) -> dict[str, Any]:
        await self.send(request(req_id, op, args))
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def ask(path: Path, **args: Any) -> dict[str, Any]:
    conn = await Conn.open(path)
    try:
        return await conn.call("ask", args)
    finally:
        await conn.close()


async def test_static_allow_and_deny_are_answered_and_recorded(agent_server: AgentServer) -> None:
    reply = await ask(agent_server.path, kind="exec", command="git status --short", cwd="/workspace")
    assert reply["ok"] and reply["result"]["allow"] is True
    assert reply["result"]["reason"] == 'rule "git status" (allow)'
    reply = await ask(agent_server.path, kind="exec", subject="echo hi; rm -rf /")
    assert reply["result"]["allow"] is False and reply["result"]["decision"] == "deny"
    assert reply["result"]["provenance"]["kind"] == "rule"
    assert reply["result"]["provenance"]["rule_list"] == "forbid"
    policy = agent_server.recorder.of(EVENT_POLICY)
    assert [p["action"] for p in policy] == ["allow", "deny"]
    assert policy[0]["run_id"] == "r1" and policy[0]["detail"]["cwd"] == "/workspace"
    assert agent_server.inbox.pending() == []


async def test_ask_waits_for_a_person_and_run_comes_from_the_socket(agent_server: AgentServer) -> None:
    inbox = agent_server.inbox
    task = asyncio.create_task(ask(agent_server.path, kind="exec", subject="git push origin main",
                                   title="push", run_id="r-other", detail={"run_id": "r-other"}))
    req = await next_pending(inbox)
    assert req.run_id == "r1" and req.profile == "demo"  # never from the payload
    assert req.rule_provenance is not None and req.rule_provenance.rule == "git push"
    assert req.title == "push"
    await inbox.decide(req.id, True, "alice", "run")
    reply = await task
    assert reply["result"] == {
        "allow": True, "decision": "allow", "request_id": req.id,
        "reason": reply["result"]["reason"], "provenance": reply["result"]["provenance"]}
    assert reply["result"]["reason"].startswith("decided by alice (scope run, grant g")

    # the run grant now answers the same command without a person
    again = await ask(agent_server.path, kind="exec", subject="git push origin main")
    assert again["result"]["allow"] is True and again["result"]["request_id"] is None
    assert again["result"]["provenance"]["kind"] == "grant"
    assert again["result"]["reason"].endswith("(scope run) by alice")


async def test_status_shows_only_this_runs_requests(agent_server: AgentServer) -> None:
    inbox = agent_server.inbox
    task = asyncio.create_task(ask(agent_server.path, kind="network", subject="pypi.org:443"))
    req = await next_pending(inbox)
    conn = await Conn.open(agent_server.path)
    status = await conn.call("status", {"request_id": req.id})
    assert status["result"]["state"] == "pending" and status["result"]["kind"] == "network"
    await inbox.decide(req.id, False, "bob")
    await task
    status = await conn.call("status", {"request_id": req.id}, 2)
    assert status["result"]["state"] == "denied" and status["result"]["reason"].startswith("decided by bob")

    other = asyncio.create_task(inbox.submit("r2", "demo", "exec", "ls"))
    theirs = await next_pending(inbox, "r2")
    status = await conn.call("status", {"request_id": theirs.id}, 3)
    assert status["ok"] is False and status["error"]["code"] == "unknown-request"
    await conn.close()
    await inbox.cancel_run("r2")
    await other


@pytest.mark.parametrize("op", ["approve", "deny", "decide", "approvals.decide", "run.stop", "x" * 300])
async def test_decision_ops_are_refused_and_recorded(agent_server: AgentServer, op: str) -> None:
    inbox = agent_server.inbox
    task = asyncio.create_task(ask(agent_server.path, kind="exec", subject="ls"))
    req = await next_pending(inbox)
    conn = await Conn.open(agent_server.path)
    reply = await conn.call(op, {"request_id": req.id, "allow": True, "scope": "global"})
    assert reply["ok"] is False and reply["error"]["code"] == "refused-op"
    assert "only a person at the console decides" in reply["error"]["message"]
    (refused,) = agent_server.recorder.of(EVENT_REFUSED_OP)
    assert refused["run_id"] == "r1" and refused["op"].startswith(op[:40])
    assert inbox.pending() == [req] and inbox.grants.list() == []  # nothing decided
    await conn.close()
    await inbox.decide(req.id, False, "alice")
    await task


async def test_too_long_line_is_an_error_and_closes(agent_server: AgentServer) -> None:
    conn = await Conn.open(agent_server.path)
    await conn.send(b'{"v":1,"id":1,"op":"ask","args":{"subject":"' + b"a" * (AGENT_MAX_LINE + 10) + b'"}}\n')
    reply = await conn.recv()
    assert reply["ok"] is False and "longer than" in reply["error"]["message"]
    assert await asyncio.wait_for(conn.reader.read(), WAIT) == b""  # closed by the daemon
    await conn.close()


async def test_oversize_fields_are_refused_with_a_reason(agent_server: AgentServer) -> None:
    reply = await ask(agent_server.path, kind="exec", subject="echo " + "a" * 5000)
    assert reply["result"]["allow"] is False and "longer than 4096 bytes" in reply["result"]["reason"]
    reply = await ask(agent_server.path, kind="custom", subject="x", title="t" * 201)
    assert "at most 200 characters" in reply["result"]["reason"]
    reply = await ask(agent_server.path, kind="custom", subject="x", detail={"b": "z" * 17000})
    assert "at most 16384" in reply["result"]["reason"]
    assert len(agent_server.recorder.of(EVENT_REFUSED)) == 3


async def test_bad_messages_get_errors_and_the_connection_goes_on(agent_server: AgentServer) -> None:
    conn = await Conn.open(agent_server.path)
    await conn.send(b"not json\n")
    assert (await conn.recv())["error"]["code"] == "bad-message"
    await conn.send(b'{"v": 99, "id": 1, "op": "ask"}\n')
    assert "unsupported protocol version" in (await conn.recv())["error"]["message"]
    reply = await conn.call("ask", {"kind": "exec", "subject": "git status"})
    assert reply["result"]["allow"] is True
    await conn.close()


async def test_closing_the_connection_cancels_its_requests(agent_server: AgentServer) -> None:
    conn = await Conn.open(agent_server.path)
    await conn.send(request(1, "ask", {"kind": "exec", "subject": "make deploy"}))
    req = await next_pending(agent_server.inbox)
    await conn.close()

    async def closed() -> None:
        while agent_server.inbox.pending():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(closed(), WAIT)
    assert req.state == "cancelled"
    assert agent_server.recorder.of(EVENT_CANCELLED)[0]["id"] == req.id


async def test_overlapping_requests_on_one_connection(agent_server: AgentServer) -> None:
    conn = await Conn.open(agent_server.path)
    await conn.send(request(1, "ask", {"kind": "exec", "subject": "make one"}))
    await next_pending(agent_server.inbox)
    await conn.send(request(2, "ask", {"kind": "exec", "subject": "git status"}))
    fast = await conn.recv()  # answered while request 1 still waits for a person
    assert fast["id"] == 2 and fast["result"]["allow"] is True
    await agent_server.inbox.decide(agent_server.inbox.pending()[0].id, True, "alice")
    slow = await conn.recv()
    assert slow["id"] == 1 and slow["result"]["allow"] is True
    await conn.close()
