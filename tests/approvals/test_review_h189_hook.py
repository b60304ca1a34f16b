"""Review h189 on the live path: ph-claude-hook (Claude Code's and Codex's Bash calls) against a
real agent.sock gives the forbid rule's deny for a command after a compound's head with no
separator (`if ((1)) then rm -rf /; fi`: bash runs rm), as `policy check` does
(tests/policy/test_review_h189.py). Before the fix the line was put to a person."""

from __future__ import annotations

import asyncio
import json

import pytest

from console.daemon.inbox import EVENT_POLICY

from .conftest import AgentServer, next_pending
from .test_inside_helper import hook_input, hook_output, run_helper


@pytest.mark.parametrize("codex", [False, True])
@pytest.mark.parametrize("line", ["if ((1)) then rm -rf /; fi", "while [[ -d . ]] do rm -rf /; done"])
async def test_the_hook_is_refused_by_the_forbid_rule(agent_server: AgentServer, line: str,
                                                        codex: bool) -> None:
    event = json.loads(hook_input("Bash", {"command": line}))
    if codex:  # Codex's PreToolUse input carries its own keys (turn_id)
        event.update(turn_id="t1", model="m", permission_mode="default", tool_use_id="u1")
    hook = asyncio.ensure_future(run_helper(agent_server.path, "ph-claude-hook",
                                            stdin=json.dumps(event).encode()))
    asked = asyncio.ensure_future(next_pending(agent_server.inbox))
    await asyncio.wait([hook, asked], return_when=asyncio.FIRST_COMPLETED)
    if asked.done():  # put to a person: answer it so the hook returns, and fail
        await agent_server.inbox.decide(asked.result().id, False, "alice", "once")
        await hook
        pytest.fail(f"{line!r} was asked, not refused by the forbid rule")
    asked.cancel()
    rc, out, _ = hook.result()
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny", spec
    assert spec["permissionDecisionReason"].startswith('Pilothouse: forbidden by rule "rm -rf /"'), spec
    assert [e["action"] for e in agent_server.recorder.of(EVENT_POLICY)] == ["deny"]
