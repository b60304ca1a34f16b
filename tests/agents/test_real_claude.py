"""Claude Code, the real binary, through the built-in `claude` profile in bubblewrap: a real
daemon, the real gate, and the scripted model server on 127.0.0.1 as its Anthropic API.

The model asks for one Bash call (`echo hi > proof.txt`), then answers. A person approves or
denies it at the inbox; the proof file exists only after an approve, and a deny comes back to
Claude Code as a tool result that says who denied it and for how long.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .model_server import COMMAND, FINAL_TEXT, ModelServer
from .real_harness import (
    CLAUDE,
    ME,
    TASK,
    agent_fixtures,
    agent_workspace,
    assert_only_the_model_server,
    assert_tokens,
    hand_over,
    metered_history,
    model_hostport,
    run_agent,
    token_sums,
)

pytestmark = needs_bwrap
claude, backend, model_server, daemon_env = agent_fixtures(CLAUDE)


def claude_run(daemon: Daemon, ws: Path, srv: ModelServer, allow: bool, claude: str):
    command = [claude, "-p", TASK, "--output-format", "json"]
    return run_agent(daemon, "claude", ws, command, allow, model_hostport(srv))


def tool_results(srv: ModelServer) -> list[str]:
    """The text of every tool_result Claude Code sent back to the model."""
    out = []
    for req in srv.posts("/messages"):
        for m in (req.body or {}).get("messages") or []:
            for block in m.get("content") if isinstance(m.get("content"), list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    content = block.get("content")
                    if isinstance(content, list):
                        content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
                    out.append(str(content))
    return out


def assert_metered(hist: list[dict], srv: ModelServer) -> None:
    sent = [s.usage for s in srv.sent]
    assert sent, "the model server answered nothing"
    assert_tokens(hist, "completion_tokens", sum(u["output_tokens"] for u in sent))


def test_claude_approved_command_runs(backend: str, claude: str, model_server: ModelServer, daemon: Daemon,
                                      workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    done, run_id, person = claude_run(daemon, ws, model_server, True, claude)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert FINAL_TEXT in done.stdout
    assert person.asked("exec") == [COMMAND]
    assert (ws / "proof.txt").read_text() == "hi\n"
    hist = metered_history(daemon, run_id, len([s for s in model_server.sent if s.usage]))
    decided = [e for e in hist if e["kind"] == "approval.decided"]
    assert [(e["data"]["subject"], e["data"]["allow"], e["actor"]) for e in decided] == [(COMMAND, True, ME)]
    assert_only_the_model_server(hist, model_server, person)
    assert_metered(hist, model_server)


def test_claude_denied_command_is_blocked_and_says_by_whom(backend: str, claude: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    done, run_id, person = claude_run(daemon, ws, model_server, False, claude)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert person.asked("exec") == [COMMAND]
    assert not (ws / "proof.txt").exists()
    results = tool_results(model_server)
    assert len(results) == 1, results
    assert f"denied by {ME} (scope once)" in results[0], results
    hist = metered_history(daemon, run_id, len([s for s in model_server.sent if s.usage]))
    assert_only_the_model_server(hist, model_server, person)
    assert_metered(hist, model_server)


def test_claude_prompt_caching_is_metered(claude: str, model_server: ModelServer, daemon: Daemon,
                                          workspace: Path) -> None:
    """Prompt tokens = input + cache creation + cache read (issue 13, point 4)."""
    ws = agent_workspace(workspace)
    done, run_id, _ = claude_run(daemon, ws, model_server, True, claude)
    assert done.returncode == 0, done.stderr
    sent = [s.usage for s in model_server.sent]
    sums = token_sums(metered_history(daemon, run_id, len(model_server.sent)))
    prompt = sum(u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
                 for u in sent)
    assert sums.get("prompt_tokens") == prompt, (sums, sent)


def test_repository_cannot_switch_the_hook_off(backend: str, claude: str, model_server: ModelServer,
                                               daemon: Daemon, workspace: Path) -> None:
    """A repository's .claude/settings.json with disableAllHooks: the command is still asked
    (the hook lives in managed settings, the highest layer) and a deny still blocks it."""
    (workspace / ".claude").mkdir()
    (workspace / ".claude" / "settings.json").write_text(json.dumps({"disableAllHooks": True}))
    (workspace / ".claude" / "settings.local.json").write_text(json.dumps({"disableAllHooks": True}))
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    done, run_id, person = claude_run(daemon, ws, model_server, False, claude)
    assert person.asked("exec") == [COMMAND], (done.stdout, done.stderr)
    assert not (ws / "proof.txt").exists()
