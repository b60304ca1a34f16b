"""aider, the real program, through the built-in `aider` profile in bubblewrap: a real daemon,
the real gate, and the scripted model server on 127.0.0.1 as its OpenAI-compatible API.

aider edits files from the model's answer (here the whole-file format) and commits them: in a
git repository, with no git identity of the person's in the sandbox and the repository's
.git/config read-only, it must still work without writing an identity into the repository.
It streams its answers: the profile asks for usage in the stream so that the gate meters them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer
from .real_harness import (
    TASK,
    RealAgent,
    agent_fixtures,
    agent_workspace,
    assert_tokens,
    hand_over,
    metered_history,
    model_hostport,
    network_hosts,
    run_agent,
)

pytestmark = needs_bwrap
EDIT = "proof.txt\n```\nhi\n```\n"  # aider's whole-file edit format
AIDER = RealAgent(
    "aider", "aider", final_text=EDIT,
    hosted=("**.openai.com", "**.anthropic.com", "**.githubusercontent.com", "**.github.com",
            "pypi.org", "openrouter.ai"),
    api_env=lambda srv: {"OPENAI_API_KEY": "sk-test-not-a-key", "OPENAI_API_BASE": f"{srv.url}/v1"},
)
aider, backend, model_server, daemon_env = agent_fixtures(AIDER)


def test_aider_edits_and_commits_in_a_git_repository(backend: str, aider: str, model_server: ModelServer,
                                                      daemon: Daemon, workspace: Path) -> None:
    # proof.txt is tracked: aider commits an edit to it only when its `git diff HEAD` works (a
    # pinned empty GIT_EXTERNAL_DIFF broke that, and every such edit stayed uncommitted: s42).
    (workspace / "proof.txt").write_text("before\n")
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    git_config_before = (ws / ".git" / "config").read_text()
    command = [aider, "--model", "openai/scripted-model-1", "--edit-format", "whole",
               "--yes-always", "--no-gitignore", "--message", TASK, "proof.txt"]
    done, run_id, person = run_agent(daemon, "aider", ws, command, True, model_hostport(model_server))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert (ws / "proof.txt").read_text() == "hi\n"
    # committed by aider, with the sandbox's identity; the repository's config untouched
    log = subprocess.run(["git", "-c", f"safe.directory={ws}", "-C", str(ws), "log", "--format=%an <%ae>|%s", "-1"],
                         capture_output=True, text=True, check=True).stdout
    assert "proof.txt" in log or "hi" in log.lower(), log
    git = ["git", "-c", f"safe.directory={ws}", "-C", str(ws)]
    last = subprocess.run([*git, "show", "--format=", "HEAD"], capture_output=True, text=True,
                          check=True).stdout
    assert "-before" in last and "+hi" in last, last
    status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status
    assert (ws / ".git" / "config").read_text() == git_config_before

    hist = metered_history(daemon, run_id, len([s for s in model_server.sent if s.usage]))
    assert network_hosts(hist) <= {model_hostport(model_server)}, network_hosts(hist)
    assert person.seen == []

    # Streamed, with usage asked for, and metered exactly.
    # (the main answer is streamed; the commit message is asked for without streaming)
    streamed = [p for p in model_server.posts("/chat/completions") if p.body.get("stream") is True]
    assert streamed, [p.body for p in model_server.posts("/chat/completions")]
    assert all((p.body.get("stream_options") or {}).get("include_usage") is True for p in streamed), \
        [p.body.get("stream_options") for p in streamed]
    sent = [s.usage for s in model_server.sent]
    assert_tokens(hist, "prompt_tokens", sum(u["prompt_tokens"] for u in sent if u))
    assert_tokens(hist, "completion_tokens", sum(u["completion_tokens"] for u in sent if u))
