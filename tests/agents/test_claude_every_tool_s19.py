"""Session 19: every Claude Code tool call reaches the hook, with the real binary.

The hook's matcher listed the tools that act (`Bash|Edit|...|mcp__.*`); Claude Code 2.1.197
offers more (CronCreate, CronList, EnterWorktree, Workflow, ...), which went to its own
permissions only. Now the matcher is `*`: a tool that only reads goes on as before (no one is asked), any
other tool is asked in the inbox, whatever its name.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer, Script, anthropic_has_result
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
    """Asks for one call of `tool` (when Claude Code offers it), then ends the turn."""

    tool: str = ""
    tool_input: dict | None = None

    def messages(self, srv: ModelServer, body: dict) -> tuple[list[dict], str, dict]:
        offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        srv.offered = offered  # type: ignore[attr-defined]
        if self.tool in offered and not anthropic_has_result(body.get("messages") or []):
            block = {"type": "tool_use", "id": f"toolu_{srv.next_n():06d}", "name": self.tool,
                     "input": self.tool_input or {}}
            return [block], "tool_use", srv.anthropic_usage()
        return [{"type": "text", "text": self.final_text}], "end_turn", srv.anthropic_usage()


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
    assert "CronList" in offered, sorted(offered)
    asked = [(kind, subject) for kind, subject, _ in person.decided if subject.startswith("CronList")]
    assert asked == [("custom", "CronList {}")], (person.decided, done.stdout[-2000:])


def test_a_read_only_tool_goes_on_unasked(backend: str, claude: str, model_server: ModelServer,
                                         daemon: Daemon, workspace: Path) -> None:
    done, person, offered = _run_calling("TaskList", {}, claude, backend, model_server, daemon,
                                         workspace)
    assert "TaskList" in offered, " ".join(sorted(offered))
    assert '"is_error":false' in done.stdout, done.stdout[-2000:]
    assert [d for d in person.decided if d[0] == "custom"] == [], person.decided
