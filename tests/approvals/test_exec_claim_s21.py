"""Review s21: a command Codex starts runs only once the daemon allowed it.

Codex runs a call whenever its hook ends other than with exit 2, and a process of the run can
kill the hook. Codex's commands go through the run's bin/bash (console/agents/codex_bash.py),
which runs `ph-guard --claim CMD -- bash -c CMD`: agent.sock's claim lets CMD through at once
when the hook was answered allow for the same words, once per answer, and asks it as any
command otherwise. A real helper process against a real agent.sock and inbox.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.daemon.agent_socket import ExecTickets
from console.daemon.inbox import EVENT_POLICY

from .conftest import AgentServer, next_pending
from .test_inside_helper import decide_next, hook_input, hook_output, run_helper

ASKED = "touch proof"  # no rule: the default asks


async def guard(server: AgentServer, command: str, cwd: Path) -> tuple[int, str, str]:
    return await run_helper(server.path, "ph-guard", "--claim", command, "--", "sh", "-c",
                            command, cwd=str(cwd))


async def hook_allowed_by_a_person(server: AgentServer, command: str) -> None:
    hook = asyncio.create_task(run_helper(server.path, "ph-claude-hook",
                                          stdin=hook_input("Bash", {"command": command})))
    await decide_next(server, True)
    rc, out, _ = await hook
    assert rc == 0 and hook_output(out)["permissionDecision"] == "allow"


async def test_a_command_its_hook_was_allowed_for_runs_without_a_second_question(
        agent_server: AgentServer, tmp_path: Path) -> None:
    await hook_allowed_by_a_person(agent_server, ASKED)
    rc, _, err = await guard(agent_server, ASKED, tmp_path)
    assert rc == 0, err
    assert (tmp_path / "proof").exists()
    assert agent_server.inbox.pending() == []


async def test_a_command_whose_hook_never_answered_is_asked_and_a_no_stops_it(
        agent_server: AgentServer, tmp_path: Path) -> None:
    """The hook was killed: nothing to claim, so the person is asked, and sees the command."""
    running = asyncio.create_task(guard(agent_server, ASKED, tmp_path))
    req = await next_pending(agent_server.inbox)
    assert (req.kind, req.subject) == ("exec", ASKED)
    await agent_server.inbox.decide(req.id, False, "alice", "once")
    rc, _, err = await running
    assert rc == 1 and "denied: decided by alice" in err, err
    assert not (tmp_path / "proof").exists()


async def test_one_answer_lets_one_command_through(agent_server: AgentServer,
                                                   tmp_path: Path) -> None:
    await hook_allowed_by_a_person(agent_server, ASKED)
    assert (await guard(agent_server, ASKED, tmp_path))[0] == 0
    (tmp_path / "proof").unlink()
    again = asyncio.create_task(guard(agent_server, ASKED, tmp_path))
    req = await next_pending(agent_server.inbox)  # the same words again: asked again
    await agent_server.inbox.decide(req.id, False, "alice", "once")
    assert (await again)[0] == 1
    assert not (tmp_path / "proof").exists()


async def test_a_claim_is_decided_by_the_rules_as_an_ask_is(agent_server: AgentServer,
                                                             tmp_path: Path) -> None:
    rc, _, err = await guard(agent_server, "rm -rf /", tmp_path)
    assert rc == 1 and 'denied: rule "rm -rf /" (forbid)' in err
    rc, _, _ = await guard(agent_server, "true", tmp_path)
    assert rc == 0
    assert [e["action"] for e in agent_server.recorder.of(EVENT_POLICY)] == ["deny", "allow"]


async def test_a_denied_hook_leaves_nothing_to_claim(agent_server: AgentServer,
                                                     tmp_path: Path) -> None:
    hook = asyncio.create_task(run_helper(agent_server.path, "ph-claude-hook",
                                          stdin=hook_input("Bash", {"command": ASKED})))
    await decide_next(agent_server, False)
    assert hook_output((await hook)[1])["permissionDecision"] == "deny"
    again = asyncio.create_task(guard(agent_server, ASKED, tmp_path))
    req = await next_pending(agent_server.inbox)
    await agent_server.inbox.decide(req.id, False, "alice", "once")
    assert (await again)[0] == 1 and not (tmp_path / "proof").exists()


def test_an_answer_is_claimed_once_within_its_time_and_the_oldest_go_first() -> None:
    now = [0.0]
    tickets = ExecTickets(most=2, ttl=60.0, clock=lambda: now[0])
    tickets.grant("make")
    tickets.grant("make")
    assert tickets.take("make") and tickets.take("make") and not tickets.take("make")
    tickets.grant("late")
    now[0] = 61.0  # a call that never ran: its answer does not let a later one through
    assert not tickets.take("late")
    for subject in ("a", "b", "c"):
        tickets.grant(subject)
    assert not tickets.take("a")  # past the bound: asked again, never run unasked
    assert tickets.take("b") and tickets.take("c")
