"""Review s21 (real Codex 0.171.0, both backends): a hook killed by the run's own processes.

Codex runs a call whenever its PreToolUse hook ends other than with exit 2, and `codex exec`
runs with approval "never" whatever the config says. A process of the run (same user, same
sandbox) that kills every hook made the model's next command run, nobody asked. Codex now runs
its commands through the run's bin/bash (console/agents/codex_bash.py): a command whose hook
never answered is asked when it starts, and the person sees it.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .hook_killer import with_hooks_killed
from .model_server import COMMAND, ModelServer
from .real_harness import (
    CODEX,
    TASK,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
    run_agent,
)

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)


def test_a_command_whose_hook_was_killed_is_asked_not_run(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    command = [codex, "exec", "-c", f'openai_base_url="{model_server.url}/v1"', "-c",
               'model="scripted-model-1"', TASK]
    done, _run_id, person = run_agent(daemon, "codex", ws, with_hooks_killed(command), False,
                                      model_hostport(model_server))
    assert not (ws / "proof.txt").exists(), f"the command ran, nobody was asked\n{done.stderr[-2000:]}"
    assert person.asked("exec") == [COMMAND], (person.seen, done.stderr[-2000:])

