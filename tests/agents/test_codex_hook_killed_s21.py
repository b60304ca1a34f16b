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

from .hook_killer import assert_codex_asks_with_hooks_killed
from .model_server import ModelServer
from .real_harness import (
    CODEX,
    agent_fixtures,
    agent_workspace,
    hand_over,
)

pytestmark = needs_bwrap
codex, backend, model_server, daemon_env = agent_fixtures(CODEX)


def test_a_command_whose_hook_was_killed_is_asked_not_run(
        backend: str, codex: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    assert_codex_asks_with_hooks_killed(codex, model_server, daemon, ws)

