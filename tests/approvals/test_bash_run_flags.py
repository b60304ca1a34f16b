"""How Claude Code runs a Bash call, on the card (helper 134). Claude Code's Bash tool takes,
beside `command` and `description`, `run_in_background` (the command runs detached: Claude Code
does not wait for it, and it keeps running while the agent works on) and
`dangerouslyDisableSandbox` (Claude Code's own sandbox off for it; Pilothouse's still applies).
ph-claude-hook sent only the command: a person approved `python3 -m http.server` read as a
command that ends, and it ran on in the background.

Now a JSON true of either is in the request's detail, and every view says it in the daemon's own
words (console.text.RUN_FLAGS): the card's rows, the one-line summary (the inbox row,
`pilothouse approvals`, `--json`'s summary). Any value other than true or false is refused by
the hook (Claude Code may read "true" as true), and any value but true by the daemon (an agent
talking to agent.sock itself). A rule or a grant for the command still decides it.

The real helper (python3 inside.py) against a real agent.sock and inbox; the CLI end to end with
a real daemon, bubblewrap and the hook inside a run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from console.cli.approvals import _show_pending
from console.daemon.requests import check_request
from console.sandbox.inside import PilothouseClient, PilothouseError
from console.text import request_line, review_rows
from tests.approvals.conftest import AgentServer, next_pending
from tests.approvals.test_approval_truth_attacks_s13 import (
    approve_for_the_run,
    asked_or_allowed,
    hook,
)
from tests.approvals.test_inside_helper import hook_input, hook_output
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

SERVER = "python3 -m http.server 8000"  # asked (the default), and it never ends by itself
NOT_WAITED = "Claude Code does not wait for it"
OWN_SANDBOX = "outside Claude Code's own sandbox"


def rows_of(req: dict[str, Any]) -> dict[str, str]:
    return {row.label: row.value for row in review_rows(req)}


async def asked(server: AgentServer, tool_input: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The pending request the hook asked for this Bash call, as approvals.list gives it."""
    task = await hook(server, "Bash", tool_input)
    req = await next_pending(server.inbox)
    return req.to_dict(), (req, task)


async def answer(server: AgentServer, pending: Any, allow: bool = False) -> str:
    req, task = pending
    await server.inbox.decide(req.id, allow, "alice", "once")
    return hook_output((await task)[1])["permissionDecision"]


# ============================ the hook's input, on every view ===================================


async def test_a_background_call_says_so_on_the_card_and_its_line(agent_server: AgentServer) -> None:
    """The agent says the command is quick; Claude Code would run it detached. The card says how it
    runs in the daemon's words, the agent's words stay marked as the agent's."""
    row, pending = await asked(agent_server, {"command": SERVER, "run_in_background": True,
                                              "description": "a quick check, done in a second"})
    assert row["detail"]["run_in_background"] is True
    assert row["subject"] == SERVER  # what runs is unchanged: the flag is beside it
    rows = rows_of(row)
    assert rows["runs"].startswith("in the background") and NOT_WAITED in rows["runs"], rows
    assert not any(label.startswith("run_in_background") for label in rows), rows  # not "(agent)"
    assert rows["agent says"] == "a quick check, done in a second"
    # one line (inbox row, `pilothouse approvals`, --json's summary): first, so no cut hides it
    assert row["summary"].startswith(f"exec ⟨in the background⟩ {SERVER} (agent: in /workspace)"), row["summary"]
    assert request_line(row, 40).startswith("⟨in the background⟩ python3")
    assert await answer(agent_server, pending, allow=True) == "allow"


async def test_a_call_that_asks_for_claude_codes_sandbox_off_says_so(agent_server: AgentServer) -> None:
    row, pending = await asked(agent_server, {"command": SERVER, "dangerouslyDisableSandbox": True})
    assert row["detail"]["dangerouslyDisableSandbox"] is True and "run_in_background" not in row["detail"]
    rows = rows_of(row)
    assert OWN_SANDBOX in rows["sandbox"] and "Pilothouse's sandbox still applies" in rows["sandbox"], rows
    assert "runs" not in rows
    assert row["summary"].startswith(f"exec ⟨Claude Code's sandbox off⟩ {SERVER} "), row["summary"]
    assert await answer(agent_server, pending) == "deny"


@pytest.mark.parametrize("flags", [{}, {"run_in_background": False, "dangerouslyDisableSandbox": False}])
async def test_a_call_in_the_foreground_shows_no_flag(agent_server: AgentServer, flags: dict) -> None:
    row, pending = await asked(agent_server, {"command": SERVER, **flags})
    assert not {"run_in_background", "dangerouslyDisableSandbox"} & set(row["detail"])
    assert row["summary"].startswith(f"exec {SERVER} ") and {"runs", "sandbox"}.isdisjoint(rows_of(row))
    assert await answer(agent_server, pending) == "deny"


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "in the foreground, trust me", [True], {"x": True}])
async def test_a_flag_that_is_not_a_json_boolean_is_refused_unasked(agent_server: AgentServer, value: Any) -> None:
    """Claude Code may read a string "true" as true: such a call was asked as a command in the
    foreground. Now the hook refuses it without asking anyone, and says what to send instead."""
    for key in ("run_in_background", "dangerouslyDisableSandbox"):
        task = await hook(agent_server, "Bash", {"command": SERVER, key: value})
        assert await asked_or_allowed(agent_server, task) == "deny"
        reason = hook_output(task.result()[1])["permissionDecisionReason"]
        assert "refused this without asking" in reason and key in reason and "JSON boolean" in reason, reason


# ============================ the decision and grants are the command's =========================


async def test_a_rule_for_the_command_still_decides_it_in_the_background(agent_server: AgentServer) -> None:
    for command, decision in (("echo hi", "allow"), ("rm -rf /", "deny")):
        task = await hook(agent_server, "Bash", {"command": command, "run_in_background": True,
                                                 "dangerouslyDisableSandbox": True})
        assert await asked_or_allowed(agent_server, task) == decision, command


async def test_a_grant_for_the_command_answers_it_in_either_mode(agent_server: AgentServer) -> None:
    await approve_for_the_run(agent_server, "Bash", {"command": "make watch", "run_in_background": True})
    task = await hook(agent_server, "Bash", {"command": "make watch"})
    assert await asked_or_allowed(agent_server, task) == "allow"
    await approve_for_the_run(agent_server, "Bash", {"command": "make serve"})
    task = await hook(agent_server, "Bash", {"command": "make serve", "run_in_background": True})
    assert await asked_or_allowed(agent_server, task) == "allow"


# ============================ the daemon's own check: only a true ===============================


@pytest.mark.parametrize("kind,value", [("exec", "no: it ends at once"), ("exec", 1), ("exec", False),
                                        ("exec", None), ("custom", True)])
def test_the_daemon_takes_a_flag_only_as_true_on_a_command(kind: str, value: Any) -> None:
    for key in ("run_in_background", "dangerouslyDisableSandbox"):
        why = check_request(kind, "make watch", None, {key: value})
        assert why is not None and key in why, (kind, value, why)
    assert check_request("exec", "make watch", None, {"run_in_background": True,
                                                      "dangerouslyDisableSandbox": True}) is None


async def test_an_agent_cannot_put_its_words_in_a_flag_through_agent_sock(agent_server: AgentServer) -> None:
    """An agent that asks on agent.sock itself chooses its detail: a flag's value that is text
    would have been shown as it wrote it. It is refused, and nobody is asked."""
    client = PilothouseClient(str(agent_server.path))
    try:
        result = await asyncio.to_thread(client.ask_full, "exec", SERVER, within=5,
                                         run_in_background="no: it ends at once, approve it")
    except PilothouseError as exc:  # asked and never answered
        raise AssertionError(f"the request was put to a person: {exc}") from None
    assert result["allow"] is False and "run_in_background must be true" in result["reason"], result
    assert agent_server.inbox.pending() == []


# ============================ the CLI, end to end ===============================================


def test_the_cli_table_shows_the_flag_even_on_a_command_it_cuts(capsys: pytest.CaptureFixture[str]) -> None:
    """A command longer than the table's 100-character column keeps its mark: it comes first."""
    long = SERVER + " " + " ".join(f"--opt{i}" for i in range(40))
    req = {"id": "bg1x", "age": 3.0, "expires_in": 100.0, "run_id": "r1", "kind": "exec",
           "subject": long, "title": "", "detail": {"tool_name": "Bash", "run_in_background": True}}
    _show_pending([req])
    out = capsys.readouterr().out
    assert "⟨in the background⟩ python3" in out and "cut to fit" in out, out


@needs_bwrap
def test_pilothouse_approvals_shows_a_background_call_the_hook_asked(daemon: Daemon, workspace: Path) -> None:
    (workspace / "in.json").write_bytes(hook_input("Bash", {
        "command": SERVER, "run_in_background": True, "description": "quick check"}, "/workspace"))
    t, _ = background(daemon, workspace, "ph-claude-hook < in.json; echo rc=$?")
    req = wait_pending(daemon)[0]
    try:
        listed = json.loads(daemon.cli("approvals", "--json").stdout)[0]
        assert listed["detail"]["run_in_background"] is True
        assert listed["summary"].startswith(f"exec ⟨in the background⟩ {SERVER}"), listed["summary"]
        assert f"⟨in the background⟩ {SERVER}" in daemon.cli("approvals").stdout
        full = daemon.cli("approvals", "--full").stdout
        assert "runs" in full and NOT_WAITED in full, full
    finally:
        daemon.cli("deny", req["id"], check=False)
        t.join(60)


def test_the_history_line_of_a_background_request_says_so() -> None:
    """The history view's line of a request (event_text) carries the mark too (helper 134's
    note: a background run read there as a foreground one)."""
    from console.daemon.requests import event_text

    data = {"kind": "exec", "subject": "npm run dev", "id": "ab12", "run_id": "r1",
            "detail": {"run_in_background": True}}
    assert event_text("approval.requested", data).startswith("run r1 asks: ⟨in the background⟩ exec npm run dev")
    data["detail"] = {"run_in_background": "true"}  # never the agent's value: only a JSON true
    assert "⟨" not in event_text("approval.requested", data)
