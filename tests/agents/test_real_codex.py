"""Codex CLI, the real binary, through the built-in `codex` profile in bubblewrap: a real daemon,
the real gate, and the scripted model server on 127.0.0.1 as its Responses API.

No hook flags on the command line: the profile's read-only ~/.codex/config.toml carries the
PreToolUse hook and the trust state Codex needs to run it, so each shell command is asked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from console.agents import CODEX_CONFIG, CODEX_HOOK_HASH
from tests.conftest import Daemon, needs_bwrap

from .model_server import COMMAND, FINAL_TEXT, ModelServer
from .real_harness import (
    CODEX,
    ME,
    TASK,
    agent_fixtures,
    agent_workspace,
    assert_only_the_model_server,
    assert_tokens,
    hand_over,
    metered_history,
    model_hostport,
    network_hosts,
    run_agent,
)

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)


def codex_command(codex: str, srv: ModelServer) -> list[str]:
    # The model server's address and a model name Codex has no metadata for (so it offers its
    # plain shell tool); nothing about hooks or trust.
    return [codex, "exec", "-c", f'openai_base_url="{srv.url}/v1"', "-c", 'model="scripted-model-1"', TASK]


def codex_run(daemon: Daemon, ws: Path, srv: ModelServer, allow: bool, codex: str):
    return run_agent(daemon, "codex", ws, codex_command(codex, srv), allow, model_hostport(srv))


def function_outputs(srv: ModelServer) -> list[str]:
    out = []
    for req in srv.posts("/responses"):
        for item in (req.body or {}).get("input") or []:
            if isinstance(item, dict) and str(item.get("type", "")).endswith("call_output"):
                out.append(json.dumps(item.get("output")))
    return out


def assert_clean(hist: list[dict], srv: ModelServer, person) -> None:
    assert_only_the_model_server(hist, srv, person)
    sent = [s.usage for s in srv.sent if s.usage]
    assert_tokens(hist, "completion_tokens", sum(u["output_tokens"] for u in sent))
    assert_tokens(hist, "prompt_tokens", sum(u["input_tokens"] for u in sent))


def test_codex_approved_command_runs(backend: str, codex: str, model_server: ModelServer, daemon: Daemon,
                                     workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    done, run_id, person = codex_run(daemon, ws, model_server, True, codex)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert FINAL_TEXT in done.stdout
    assert person.asked("exec") == [COMMAND], (person.seen, done.stderr)
    assert (ws / "proof.txt").read_text() == "hi\n"
    # Codex 0.171 takes no "allow" from a hook ("unsupported permissionDecision:allow") and
    # showed the hook Failed on every approved command; it is told nothing then (s41).
    assert "PreToolUse Failed" not in done.stdout + done.stderr, done.stdout + done.stderr
    hist = metered_history(daemon, run_id, len([s for s in model_server.sent if s.usage]))
    decided = [e for e in hist if e["kind"] == "approval.decided"]
    assert [(e["data"]["subject"], e["data"]["allow"], e["actor"]) for e in decided] == [(COMMAND, True, ME)]
    assert_clean(hist, model_server, person)
    # Told 426 (model_server.py), Codex asked for the WebSocket once and then posted: every
    # Codex test's run is ~1 s, not ~7 s of WebSocket retries.
    asked_ws = [r.path for r in model_server.requests if r.method == "GET" and r.path.endswith("/responses")]
    assert len(asked_ws) <= 1, asked_ws


def test_codex_denied_command_is_blocked_and_says_by_whom(backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    done, run_id, person = codex_run(daemon, ws, model_server, False, codex)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert person.asked("exec") == [COMMAND], (person.seen, done.stderr)
    assert not (ws / "proof.txt").exists()
    outputs = function_outputs(model_server)
    assert len(outputs) == 1 and f"denied by {ME} (scope once)" in outputs[0], outputs
    assert_clean(metered_history(daemon, run_id, len(model_server.sent)), model_server, person)


def test_codex_code_mode_commands_are_asked(codex: str, model_server: ModelServer, daemon: Daemon,
                                            workspace: Path) -> None:
    """Codex's default model runs commands from JavaScript (code mode, tools.exec_command):
    those reach the hook as Bash too, so a deny still blocks them."""
    ws = agent_workspace(workspace)
    command = [codex, "exec", "-c", f'openai_base_url="{model_server.url}/v1"', TASK]
    done, run_id, person = run_agent(daemon, "codex", ws, command, False, model_hostport(model_server))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert any(it.get("type") == "custom_tool_call" for s in model_server.posts("/responses")
               for it in (s.body or {}).get("input") or [] if isinstance(it, dict)), "no code-mode call was made"
    assert person.asked("exec") == [COMMAND], [(r["kind"], r["subject"]) for r in person.seen]
    assert not (ws / "proof.txt").exists()
    assert network_hosts(metered_history(daemon, run_id, 0)) <= {model_hostport(model_server)}


def test_codex_trusts_the_shipped_hook(codex: str, tmp_path: Path) -> None:
    """The trust hash shipped in the profile's config is the one this Codex computes for the
    hook (asked of `codex app-server`, which runs no model and no command)."""
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(CODEX_CONFIG)
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}}},
             {"jsonrpc": "2.0", "method": "initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "hooks/list", "params": {"cwds": [str(tmp_path)]}}]
    proc = subprocess.Popen([codex, "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env={"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert proc.stdin and proc.stdout
    proc.stdin.write("".join(json.dumps(x) + "\n" for x in lines))
    proc.stdin.flush()
    try:
        for raw in proc.stdout:
            msg = json.loads(raw)
            if msg.get("id") == 2:
                break
    finally:
        proc.kill()
        proc.wait()
    hooks = msg["result"]["data"][0]["hooks"]
    assert [h["currentHash"] for h in hooks] == [CODEX_HOOK_HASH], (
        "this Codex hashes the shipped hook differently: update CODEX_HOOK_HASH in "
        f"console/agents/__init__.py to what it reports: {hooks}")
