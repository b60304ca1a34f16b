"""A hook killed by the run's own processes, with the real Claude Code (both backends).

docs/threat-model.md says Claude Code, its hook killed, falls back on its own permissions,
which Pilothouse keeps closed, so the call is refused, not run; and that newer Claude Code
(2.1.295 and later) blocks the call itself (`onFailure: "block"` on the managed hook). Until
now that was said from a try by hand: here a process of the run kills every ph-claude-hook
while the scripted model asks for `echo hi > proof.txt`, and the person (who would deny it, if
asked) never lets it through. The command must not run, and Claude Code must have tried.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Daemon, needs_bwrap

from .hook_killer import with_hooks_killed
from .model_server import COMMAND, ModelServer
from .real_harness import (
    CLAUDE,
    TASK,
    agent_fixtures,
    agent_workspace,
    hand_over,
    model_hostport,
    run_agent,
)
from .test_real_claude import tool_results

pytestmark = needs_bwrap
claude, backend, model_server, daemon_env = agent_fixtures(CLAUDE)


def test_a_bash_call_whose_hook_was_killed_does_not_run(
        backend: str, claude: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    command = [claude, "-p", TASK, "--output-format", "json"]
    done, _run_id, person = run_agent(daemon, "claude", ws, with_hooks_killed(command), False,
                                      model_hostport(model_server))
    results = tool_results(model_server)
    assert results, f"Claude Code never tried the command\n{done.stdout}\n{done.stderr[-2000:]}"
    assert not (ws / "proof.txt").exists(), (
        f"the command ran with its hook killed: {results}\n{done.stderr[-2000:]}")
    assert person.asked("exec") in ([], [COMMAND]), person.seen  # killed before or after asking
