"""Session 19: every Claude Code tool call reaches the hook, with the real binary.

The hook's matcher listed the tools that act (`Bash|Edit|...|mcp__.*`); Claude Code 2.1.197
offers more (CronCreate, CronList, EnterWorktree, Workflow, ...), which went to its own
permissions only. Now the matcher is `*`: a tool that only reads goes on as before (no one is asked), any
other tool is asked in the inbox, whatever its name. Since s31 the pinned version is 2.1.332,
which defers most tools behind ToolSearch (a read-only tool that loads their definitions).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer, Script
from .real_harness import (
    CLAUDE,
    TASK,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
    run_agent,
)

pytestmark = needs_bwrap
claude, backend, model_server, daemon_env = agent_fixtures(CLAUDE)


@dataclass
class CallsOneTool(Script):
    """Asks for one call of `tool`, then ends the turn. Claude Code 2.1.332 defers most tools
    (CronList, TaskList: not in the request's tools until loaded): then ToolSearch loads it
    first, as a model does (`select:NAME`)."""

    tool: str = ""
    tool_input: dict | None = None

    def messages(self, srv: ModelServer, body: dict) -> tuple[list[dict], str, dict]:
        offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        srv.offered = getattr(srv, "offered", set()) | offered  # type: ignore[attr-defined]
        srv.messages = body.get("messages") or []  # type: ignore[attr-defined]
        called = [b.get("name") for m in body.get("messages") or [] if m.get("role") == "assistant"
                  and isinstance(m.get("content"), list) for b in m["content"]
                  if isinstance(b, dict) and b.get("type") == "tool_use"]
        name, tool_input = self.tool, self.tool_input or {}
        if self.tool in called or (self.tool not in offered and "ToolSearch" not in offered):
            return [{"type": "text", "text": self.final_text}], "end_turn", srv.anthropic_usage()
        if self.tool not in offered and "ToolSearch" not in called:
            name, tool_input = "ToolSearch", {"query": f"select:{self.tool}", "max_results": 1}
        block = {"type": "tool_use", "id": f"toolu_{srv.next_n():06d}", "name": name, "input": tool_input}
        return [block], "tool_use", srv.anthropic_usage()


def _run_calling(tool: str, tool_input: dict, claude: str, backend: str, model_server: ModelServer,
                 daemon: Daemon, workspace: Path):
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script = CallsOneTool(tool=tool, tool_input=tool_input)
    command = shlex.join([claude, "-p", TASK, "--output-format", "json"])
    done, _run_id, person = run_agent(daemon, "claude", ws, ["sh", "-c", command], False,
                                      model_hostport(model_server))
    offered = getattr(model_server, "offered", set())
    return done, person, offered


def test_a_tool_no_list_named_is_asked(backend: str, claude: str, model_server: ModelServer,
                                      daemon: Daemon, workspace: Path) -> None:
    done, person, offered = _run_calling("CronList", {}, claude, backend, model_server, daemon, workspace)
    assert {"CronList", "ToolSearch"} & offered, sorted(offered)  # offered, or deferred (2.1.332)
    asked = [(kind, subject) for kind, subject, _ in person.decided if subject.startswith("CronList")]
    assert asked == [("custom", "CronList {}")], (person.decided, done.stdout[-2000:])


def test_a_read_only_tool_goes_on_unasked(backend: str, claude: str, model_server: ModelServer,
                                         daemon: Daemon, workspace: Path) -> None:
    """ToolSearch (2.1.332: it loads a deferred tool's definition, and a model calls it before
    most tools) only reads; asked, every session began with a question (TaskList, the tool this
    test called before, is disabled in `-p` sessions of 2.1.332)."""
    done, person, offered = _run_calling("ToolSearch", {"query": "select:CronList"}, claude,
                                         backend, model_server, daemon, workspace)
    assert "ToolSearch" in offered, " ".join(sorted(offered))
    assert '"is_error":false' in done.stdout, done.stdout[-2000:]
    assert [d for d in person.decided if d[0] == "custom"] == [], person.decided
    results = _results_of(model_server, "ToolSearch")  # it ran: Claude Code answered its call
    assert results and not any(r.get("is_error") for r in results), results


def _results_of(model_server: ModelServer, tool: str) -> list[dict]:
    """The tool_result blocks Claude Code sent back for `tool`'s calls (the last request's)."""
    messages = getattr(model_server, "messages", [])
    blocks = [b for m in messages if isinstance(m.get("content"), list) for b in m["content"]
              if isinstance(b, dict)]
    ids = {b.get("id") for b in blocks if b.get("type") == "tool_use" and b.get("name") == tool}
    return [b for b in blocks if b.get("type") == "tool_result" and b.get("tool_use_id") in ids]
