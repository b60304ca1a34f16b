"""Review s16 (agent surface): what an agent inside the sandbox sends to agent.sock, through the
helper (ph-claude-hook) or on its own, and what a person then sees. Each test asserts the
secure behaviour and failed before its fix (/work/notes/review-s16-agent-before.txt).

- A tool call whose input is past the hook's detail budget is sent as a preview of its JSON
  text, cut at the budget, and the card shows the first 2,000 characters of that preview. The
  input's keys came in the tool's own order, so a flag after the long text (Edit's
  `replace_all`, NotebookEdit's `edit_mode`) was cut off: the card showed an edit of one
  occurrence, or a cell replaced, for a call that replaces every occurrence, or deletes it.
- The budget was measured on the preview before it became a JSON string inside the request:
  every quote and backslash of the tool's input is escaped once more there, so a Write of
  ordinary code past the budget came to more than the daemon's 16 KiB and was refused before
  any person saw it.
- An ask past the run's rate, an op agent.sock refuses, and a status of an unknown id are
  answered without being decided, at no rate: each is meant to cost the loop next to nothing.
  Each ran console.text.printable over the whole of the agent's text (up to a 64 KiB line)
  before cutting it to 40-400 characters: about 5 ms of the loop a line against 0.06 ms to
  parse it, so one run streaming such lines held the daemon's loop, which the ask rate is
  there to prevent.

Since review s31 a call the hook had to cut is refused without asking anyone (a person would
approve what the preview does not show: requests.unseen_whole); the tests of the first two
points now check that the refusal is that one, never the detail bound's.

Real parts: the real helper (python3 inside.py) against a real agent.sock served by the real
handler and inbox. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from console.daemon.agent_socket import start_agent_server
from console.daemon.inbox import EVENT_REFUSED, Inbox
from console.gate.deciding import TokenBucket
from console.policy import GrantTable, make_policy_eval
from tests.approvals.conftest import RULES, WAIT, AgentServer, Recorder
from tests.approvals.test_inside_helper import hook_input, hook_output, run_helper

UNSEEN = "larger than a person can be shown whole"


async def refused_unasked(server: AgentServer, tool: str, tool_input: dict[str, Any]) -> str:
    """The hook's reason when the call is answered deny with no person asked."""
    rc, out, _ = await asyncio.wait_for(run_helper(server.path, "ph-claude-hook",
                                                   stdin=hook_input(tool, tool_input)), WAIT)
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny" and not server.inbox.pending(), spec
    return spec["permissionDecisionReason"]


# ============================ a flag behind a long input ========================================


async def test_replace_all_behind_a_long_new_string_is_never_asked_unseen(
        agent_server: AgentServer) -> None:
    """Edit {old_string: "verify=True", new_string: 13 KB, replace_all: true}: the preview
    ended inside new_string, and the card said neither replace_all nor every occurrence."""
    reason = await refused_unasked(agent_server, "Edit", {
        "file_path": "/workspace/shop/http.py", "old_string": "verify=True",
        "new_string": "verify=False  # see the notes below\n" * 400, "replace_all": True})
    assert UNSEEN in reason, reason  # since s31: no card at all for what it cannot show whole


async def test_a_notebook_cell_deleted_behind_a_long_source_is_never_asked_unseen(
        agent_server: AgentServer) -> None:
    """NotebookEdit {cell_id, new_source: 13 KB, cell_type, edit_mode: "delete"}: the card
    showed a cell's new source, cut, and nothing of edit_mode."""
    reason = await refused_unasked(agent_server, "NotebookEdit", {
        "notebook_path": "/workspace/analysis.ipynb", "cell_id": "setup-cell",
        "new_source": "print('the quarterly figures')\n" * 450, "cell_type": "code",
        "edit_mode": "delete"})
    assert UNSEEN in reason, reason


# ============================ a long write is refused for what it is ============================


async def test_a_long_write_of_code_with_quotes_is_refused_as_too_large_to_show(
        agent_server: AgentServer) -> None:
    """A 13 KB Write of Python with string literals: refused "detail is 16507 bytes as JSON;
    at most 16384", a bound the agent cannot act on. Since s31 it is refused as too large to
    show whole, saying how to make the change instead."""
    content = 'print("step", i, "of", n, "\\\\ done")\n' * 350
    reason = await refused_unasked(agent_server, "Write", {"file_path": "/workspace/steps.py",
                                                           "content": content})
    assert UNSEEN in reason and "at most 16384" not in reason, reason
    refused = agent_server.recorder.of(EVENT_REFUSED)
    assert [d["subject"] for d in refused] == ["Write /workspace/steps.py"], refused


# ============================ answers without a decision stay cheap =============================


class CharsLooked:
    """Counts str.isprintable calls on this thread: how many characters of the agent's text
    the daemon's loop went through one by one (no clock involved)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "isprintable":
            self.count += 1


async def test_answers_given_without_deciding_look_at_a_bounded_part_of_the_line(
        sock_dir: Path) -> None:
    """Three 60 KB lines a run may send at any rate: an ask past its rate, an op agent.sock
    refuses, a status of an unknown id. Each is answered at once; each went through all 60,000
    characters of the agent's text to keep 40-400 of them."""
    recorder = Recorder()
    grants = GrantTable()
    inbox = Inbox(recorder, timeout_s=WAIT, grants=grants)
    asks = TokenBucket(1e-9, 1)
    assert asks.take()  # the run's one ask is spent: every later one is past the rate
    path = sock_dir / "agent.sock"
    server = await start_agent_server(path, "r1", "demo", inbox,
                                      make_policy_eval(lambda profile: RULES, grants), asks=asks)
    big = "x" * 60_000
    lines = [{"v": 1, "id": 1, "op": "ask", "args": {"kind": "exec", "subject": big}},
             {"v": 1, "id": 2, "op": "approve", "args": {"id": big}},
             {"v": 1, "id": 3, "op": "status", "args": {"request_id": big}}]
    looked = CharsLooked()
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
        sys.setprofile(looked)
        try:
            answers = []
            for msg in lines:
                writer.write((json.dumps(msg) + "\n").encode())
                await writer.drain()
                answers.append(json.loads(await asyncio.wait_for(reader.readline(), WAIT)))
        finally:
            sys.setprofile(None)
        writer.write_eof()  # end of stream: the handler closes its side, then the test's
        await asyncio.wait_for(reader.read(), WAIT)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert answers[0]["ok"] and answers[0]["result"]["allow"] is False, answers[0]
    assert [a["ok"] for a in answers[1:]] == [False, False], answers
    assert looked.count < 3 * 1000, f"{looked.count} characters looked at one by one"
