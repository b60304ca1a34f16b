"""The in-sandbox helper as a real subprocess (python3 inside.py ...) against a real agent.sock
served by handle_agent_connection and the inbox."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from console.daemon.inbox import EVENT_POLICY
from console.sandbox import inside

from .conftest import WAIT, AgentServer, next_pending

INSIDE = Path(inside.__file__).resolve()


def interpreters() -> list[str]:
    """python3 as found, plus an old one (the helper must run on 3.8+) when this machine has it."""
    found = [shutil.which("python3") or sys.executable]
    old = shutil.which("python3.8")
    if old and subprocess.run([old, "-c", "pass"], capture_output=True).returncode == 0:
        found.append(old)
    return found


PYTHONS = interpreters()


async def run_helper(sock: Path | str, *args: str, stdin: bytes = b"", python: str = PYTHONS[0],
                     script: Path = INSIDE, cwd: str | None = None,
                     path: str | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "PILOTHOUSE_AGENT_SOCK": str(sock), **({"PATH": path} if path else {})}
    cmd = [python, str(script)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, *args, env=env, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), WAIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def decide_next(server: AgentServer, allow: bool, actor: str = "alice", scope: str = "once"):
    req = await next_pending(server.inbox)
    await server.inbox.decide(req.id, allow, actor, scope)
    return req


@pytest.mark.parametrize("python", PYTHONS)
async def test_ph_ask_exec_static_decisions(agent_server: AgentServer, python: str) -> None:
    rc, _, err = await run_helper(agent_server.path, "ph-ask", "exec", "--", "git", "status", python=python)
    assert rc == 0 and 'approved: rule "git status" (allow)' in err
    rc, _, err = await run_helper(agent_server.path, "ph-ask", "exec", "--", "rm -rf /", python=python)
    assert rc == 1 and 'denied: rule "rm -rf /" (forbid)' in err
    assert [e["action"] for e in agent_server.recorder.of(EVENT_POLICY)] == ["allow", "deny"]


async def test_ph_ask_waits_for_a_person(agent_server: AgentServer, tmp_path: Path) -> None:
    helper = asyncio.create_task(run_helper(agent_server.path, "ph-ask", "exec", "--", "git", "push",
                                            cwd=str(tmp_path)))
    req = await decide_next(agent_server, True)
    assert req.subject == "git push" and req.detail["cwd"] == str(tmp_path)
    rc, _, err = await helper
    assert rc == 0 and "approved: decided by alice (scope once)" in err

    helper = asyncio.create_task(run_helper(agent_server.path, "ph-ask", "net", "pypi.org:443"))
    req = await decide_next(agent_server, False, "bob")
    assert (req.kind, req.subject) == ("network", "pypi.org:443")
    rc, _, err = await helper
    assert rc == 1 and "denied: decided by bob" in err


async def test_ph_ask_custom_and_dispatch_by_link_name(agent_server: AgentServer, sock_dir: Path) -> None:
    link = sock_dir / "ph-ask"  # argv[0] is the link's name: no "ph-ask" argument needed
    link.symlink_to(INSIDE)
    helper = asyncio.create_task(run_helper(
        agent_server.path, "custom", "--title", "Deploy to staging", "--detail", "tag v1.2",
        script=link))
    req = await decide_next(agent_server, True)
    assert (req.kind, req.title, req.detail["text"]) == ("custom", "Deploy to staging", "tag v1.2")
    rc, _, _ = await helper
    assert rc == 0


async def test_ph_guard_passes_the_exit_code_through(agent_server: AgentServer, tmp_path: Path) -> None:
    rc, out, _ = await run_helper(agent_server.path, "ph-guard", "--", "sh", "-c", "echo ran; exit 7")
    assert rc == 7 and out == "ran\n"
    marker = tmp_path / "ran"
    helper = asyncio.create_task(run_helper(
        agent_server.path, "ph-guard", "--", "touch", str(marker)))
    await decide_next(agent_server, False)
    rc, _, err = await helper
    assert rc == 1 and "denied: decided by alice" in err and not marker.exists()
    rc, _, err = await run_helper(agent_server.path, "ph-guard", "--", "sh", "-c", "rm -rf /")
    assert rc == 1 and "forbid" in err


def hook_input(tool: str, tool_input: dict, cwd: str = "/workspace") -> bytes:
    return json.dumps({"session_id": "s1", "transcript_path": "/t", "cwd": cwd,
                       "hook_event_name": "PreToolUse", "tool_name": tool,
                       "tool_input": tool_input}).encode()


def hook_output(out: str) -> dict:
    data = json.loads(out)
    assert set(data) == {"hookSpecificOutput"}
    spec = data["hookSpecificOutput"]
    assert set(spec) == {"hookEventName", "permissionDecision", "permissionDecisionReason"}
    assert spec["hookEventName"] == "PreToolUse"
    return spec


@pytest.mark.parametrize("python", PYTHONS)
async def test_claude_hook_bash_allow_and_deny(agent_server: AgentServer, python: str) -> None:
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", python=python,
                                  stdin=hook_input("Bash", {"command": "git status"}))
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "allow"
    assert spec["permissionDecisionReason"].startswith('Pilothouse: approved by rule "git status"')
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", python=python,
                                  stdin=hook_input("Bash", {"command": "cd / && rm -rf /"}))
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny"
    assert spec["permissionDecisionReason"].startswith('Pilothouse: forbidden by rule "rm -rf /"')


async def test_codex_is_told_nothing_on_an_allow_and_a_deny_on_a_deny(
        agent_server: AgentServer) -> None:
    """Codex's input carries turn_id (its own extension); Codex 0.171 takes no "allow" from a
    PreToolUse hook (it says the hook Failed, and runs the call): silence is its allow."""
    def codex_input(command: str) -> bytes:
        event = {**json.loads(hook_input("Bash", {"command": command})), "turn_id": "t1",
                 "model": "m", "permission_mode": "default", "tool_use_id": "u1"}
        return json.dumps(event).encode()

    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook",
                                  stdin=codex_input("git status"))
    assert (rc, out) == (0, "")
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook",
                                  stdin=codex_input("cd / && rm -rf /"))
    assert rc == 0 and hook_output(out)["permissionDecision"] == "deny"


async def test_claude_hook_edit_becomes_a_custom_request(agent_server: AgentServer) -> None:
    stdin = hook_input("Edit", {"file_path": "/workspace/src/app.py", "old_string": "a",
                                "new_string": "b" * 5_000})
    helper = asyncio.create_task(run_helper(agent_server.path, "ph-claude-hook", stdin=stdin))
    req = await decide_next(agent_server, False)
    # asked as the file it edits, exactly (no title: the subject says it all)
    assert (req.kind, req.title, req.subject) == ("custom", "", "Edit /workspace/src/app.py")
    assert req.detail["tool_name"] == "Edit" and req.detail["tool_input"]["new_string"] == "b" * 5_000
    # (an input too large to show whole is refused unasked: test_unseen_input_s31.py)
    rc, out, _ = await helper
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny"
    assert spec["permissionDecisionReason"] == "Pilothouse: denied by alice (scope once)"


async def test_claude_hook_fails_closed(agent_server: AgentServer, sock_dir: Path) -> None:
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", stdin=b"{not json")
    assert rc == 0 and hook_output(out)["permissionDecision"] == "deny"
    rc, out, _ = await run_helper(sock_dir / "nothing.sock", "ph-claude-hook",
                                  stdin=hook_input("Bash", {"command": "ls"}))
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny"
    assert "cannot reach the Pilothouse agent socket" in spec["permissionDecisionReason"]


async def test_unreachable_socket_is_exit_2_with_a_hint(sock_dir: Path) -> None:
    missing = sock_dir / "agent.sock"
    for args in (("ph-ask", "exec", "--", "ls"), ("ph-guard", "--", "true")):
        rc, _, err = await run_helper(missing, *args)
        assert rc == 2
        assert f"cannot reach the Pilothouse agent socket at {missing}" in err
        assert "is this running inside a Pilothouse sandbox?" in err


async def test_usage_errors_are_exit_2(agent_server: AgentServer) -> None:
    for args in ((), ("ph-ask",), ("ph-ask", "teleport"), ("ph-ask", "custom"), ("ph-nothing",)):
        rc, _, err = await run_helper(agent_server.path, *args)
        assert rc == 2 and err


async def test_importable_client(agent_server: AgentServer) -> None:
    client = inside.PilothouseClient(str(agent_server.path))
    allowed, reason = await asyncio.to_thread(client.ask, "exec", "echo hi", cwd="/workspace")
    assert allowed and reason == 'rule "echo" (allow)'
    with pytest.raises(inside.PilothouseError, match="cannot reach"):
        inside.PilothouseClient(str(agent_server.path) + ".missing").ask("exec", "ls")


async def test_claude_hook_refuses_a_bash_command_a_session_script_would_run_around(
        agent_server: AgentServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code runs ~/.claude/session-env/SESSION/sessionstart-hook-N.sh (and setup-,
    cwdchanged-, filechanged-) before each Bash command of that session; HOME is the agent's to
    write, so a script there would run around `git status`, allowed by rule (review s19b)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    folder = tmp_path / ".claude" / "session-env" / "s-1"
    folder.mkdir(parents=True)
    (folder / "cwdchanged-hook-0.sh").write_text("")  # empty, as Claude Code clears them: nothing runs
    stdin = json.dumps({"tool_name": "Bash", "tool_input": {"command": "git status"},
                        "session_id": "s-1"}).encode()
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", stdin=stdin)
    assert rc == 0 and hook_output(out)["permissionDecision"] == "allow"
    (folder / "sessionstart-hook-1.sh").write_text("touch /workspace/ran\n")
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", stdin=stdin)
    spec = hook_output(out)
    assert rc == 0 and spec["permissionDecision"] == "deny"
    assert f"{folder}/sessionstart-hook-1.sh first, unasked: remove it" in spec["permissionDecisionReason"]
    other = stdin.replace(b'"s-1"', b'"../s-1"')  # not a session's name: no folder looked in
    rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", stdin=other)
    assert rc == 0 and hook_output(out)["permissionDecision"] == "allow"


async def test_claude_hook_lets_read_only_tools_through_and_asks_every_other_one(
        agent_server: AgentServer) -> None:
    """Every tool call reaches the hook (matcher "*"): a read-only one gets no answer (Claude
    Code's own permissions decide, as for a tool no matcher named), and any other one is asked,
    a tool newer than any list too (session 19: Claude Code 2.1.197's Workflow, CronCreate,
    ... were in no matcher)."""
    from console.agents import CLAUDE_MANAGED_SETTINGS

    assert [m["matcher"] for m in CLAUDE_MANAGED_SETTINGS["hooks"]["PreToolUse"]] == ["*"]
    for tool in ("Read", "Grep", "TodoWrite", "BashOutput"):
        stdin = hook_input(tool, {"file_path": "/workspace/x"})
        rc, out, _ = await run_helper(agent_server.path, "ph-claude-hook", stdin=stdin)
        assert (rc, out.strip()) == (0, ""), (tool, out)
    assert agent_server.inbox.pending("r1") == []
    stdin = hook_input("CronCreate", {"cron": "* * * * *", "prompt": "run make deploy"})
    helper = asyncio.create_task(run_helper(agent_server.path, "ph-claude-hook", stdin=stdin))
    req = await decide_next(agent_server, False)
    assert (req.kind, req.subject) == ("custom", 'CronCreate {"cron": "* * * * *", "prompt": "run make deploy"}')
    rc, out, _ = await helper
    assert rc == 0 and hook_output(out)["permissionDecision"] == "deny"


# A first word bash reads as an assignment or a keyword (review s38): ph-guard asked about
# `a=b ls`, a line that runs ls, and then ran the program named `a=b`.
FIRST_WORDS = ["a=b", "x+=1", "A_1=:x", "if", "time", "while"]


@pytest.mark.parametrize("first", FIRST_WORDS)
def test_a_joined_line_runs_the_words_given_as_bash_reads_it(tmp_path: Path, first: str) -> None:
    (tmp_path / first).write_text("#!/bin/sh\necho \"ran $0 $*\"\n")
    (tmp_path / first).chmod(0o755)
    line = inside.join([first, "arg"])
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=WAIT,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert out.stdout == f"ran {tmp_path / first} arg\n", (line, out.stdout, out.stderr)


async def test_ph_guard_asks_about_the_program_it_runs(agent_server: AgentServer, tmp_path: Path) -> None:
    prog = tmp_path / "a=b"
    prog.write_text("#!/bin/sh\necho \"ran $0 $*\"\n")
    prog.chmod(0o755)
    env_path = f"{tmp_path}:{os.environ['PATH']}"
    helper = asyncio.create_task(run_helper(agent_server.path, "ph-guard", "--", "a=b", "ls",
                                            path=env_path))
    req = await decide_next(agent_server, True)
    rc, out, _ = await helper
    assert req.subject == "'a=b' ls", req.subject  # was `a=b ls`: ls, given a variable
    assert rc == 0 and out == f"ran {prog} ls\n"
