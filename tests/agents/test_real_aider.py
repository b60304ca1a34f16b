"""aider, the real program, through the built-in `aider` profile in bubblewrap: a real daemon,
the real gate, and the scripted model server on 127.0.0.1 as its OpenAI-compatible API.

aider edits files from the model's answer (here the whole-file format) and commits them: in a
git repository, with no git identity of the person's in the sandbox and the repository's
.git/config read-only, it must still work without writing an identity into the repository.
It streams its answers: the profile asks for usage in the stream so that the gate meters them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer, Script
from .real_harness import (
    agent_binary,
    agent_workspace,
    assert_tokens,
    docker_backend,
    hand_over,
    metered_history,
    network_hosts,
    run_agent,
    version,
    write_config,
)

pytestmark = needs_bwrap
TASK = "Write the word hi into proof.txt"
EDIT = "proof.txt\n```\nhi\n```\n"  # aider's whole-file edit format


@pytest.fixture(scope="module")
def aider() -> str:
    path = agent_binary("aider")
    print(f"aider: {version(path)}")
    return path


@pytest.fixture(params=["bwrap", "docker"])
def backend(request: pytest.FixtureRequest, home: Path, aider: str) -> str:
    if request.param == "docker":
        docker_backend(home, "aider", "aider")
    return request.param


@pytest.fixture
def model_server(home: Path) -> Iterator[ModelServer]:
    with ModelServer(script=Script(final_text=EDIT)) as srv:
        write_config(home, f'[gate]\ninference = ["127.0.0.1:{srv.port}"]\n\n'
                           f'[profiles.aider.network]\nallow = ["127.0.0.1:{srv.port}"]\n'
                           # hosted APIs and downloads stay out of reach whatever happens
                           f'deny = ["**.openai.com", "**.anthropic.com", "**.githubusercontent.com", '
                           f'"**.github.com", "pypi.org", "openrouter.ai"]\n')
        yield srv


@pytest.fixture
def daemon_env(daemon_env: dict[str, str], model_server: ModelServer) -> dict[str, str]:
    return {**daemon_env, "OPENAI_API_KEY": "sk-test-not-a-key",
            "OPENAI_API_BASE": f"{model_server.url}/v1"}


def test_aider_edits_and_commits_in_a_git_repository(backend: str, aider: str, model_server: ModelServer,
                                                      daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    git_config_before = (ws / ".git" / "config").read_text()
    command = [aider, "--model", "openai/scripted-model-1", "--edit-format", "whole",
               "--yes-always", "--no-gitignore", "--message", TASK, "proof.txt"]
    done, run_id, person = run_agent(daemon, "aider", ws, command, True, f"127.0.0.1:{model_server.port}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{daemon.log()}"
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert (ws / "proof.txt").read_text() == "hi\n"
    # committed by aider, with the sandbox's identity; the repository's config untouched
    log = subprocess.run(["git", "-c", f"safe.directory={ws}", "-C", str(ws), "log", "--format=%an <%ae>|%s", "-1"],
                         capture_output=True, text=True, check=True).stdout
    assert "proof.txt" in log or "hi" in log.lower(), log
    assert (ws / ".git" / "config").read_text() == git_config_before

    hist = metered_history(daemon, run_id, len([s for s in model_server.sent if s.usage]))
    assert network_hosts(hist) <= {f"127.0.0.1:{model_server.port}"}, network_hosts(hist)
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
