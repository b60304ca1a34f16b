"""Review s22 (HOME, Claude Code's session scripts): the s19b fix let through a session script
whose size says 0 and whose reading gives text.

Claude Code reads every ~/.claude/session-env/SESSION/{setup,sessionstart,cwdchanged,
filechanged}-hook-N.sh and runs what they hold in front of each Bash command of the session;
`ph-claude-hook` refuses a Bash command of a session that has such a script, but it judged a
script by its size. A FIFO there (or a link to one) with a writer behind it, which an earlier
step of the run left running, has size 0 and reads as a command: the hook saw nothing, Claude Code ran the text around `ls` (which
the rules allow), and nobody was asked. The hook now refuses any such name that is not an
empty regular file. Real Claude Code, bubblewrap and Docker.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer
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

MARK = "/workspace/session-env-ran"
SESSION = "5e55a0e0-0000-4000-8000-000000000022"
FOLDER = f"$HOME/.claude/session-env/{SESSION}"
SCRIPT = f"{FOLDER}/sessionstart-hook-1.sh"
# What an earlier step of the run leaves behind: a process that stays, and the script.
PLANTS = {
    # A link to a FIFO elsewhere, with a writer behind it: followed, it is a FIFO of size 0.
    "link-to-fifo": (f'mkfifo /tmp/ph-s22-fifo; ln -s /tmp/ph-s22-fifo "{SCRIPT}"; '
                     f'(while :; do echo {shlex.quote(f"touch {MARK}")} > /tmp/ph-s22-fifo; done) '
                     ">/dev/null 2>&1 & "),
    # A FIFO: each reader gets the line from the writer behind it.
    "fifo": (f'mkfifo "{SCRIPT}"; '
             f'(while :; do echo {shlex.quote(f"touch {MARK}")} > "{SCRIPT}"; done) >/dev/null 2>&1 & '),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_session_script_that_reads_as_text_runs_nothing_around_an_allowed_command(
        plant: str, backend: str, claude: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script.command = "ls"
    command = (f'mkdir -p "{FOLDER}"; {PLANTS[plant]}'
               + shlex.join([claude, "-p", TASK, "--session-id", SESSION, "--output-format", "json"])
               + "; rc=$?; kill %1 2>/dev/null; exit $rc")
    done, _run_id, person = run_agent(daemon, "claude", ws, ["bash", "-c", command], False,
                                      model_hostport(model_server))
    assert len(model_server.posts("/messages")) >= 2, (done.stdout, done.stderr)
    assert person.asked("exec") == [], person.decided  # `ls`: allowed by rule, nobody asked
    assert not (ws / Path(MARK).name).exists(), (plant, person.decided, done.stdout[-2000:])
    result = str(model_server.posts("/messages")[-1].body["messages"][-1])
    assert f"{SESSION}/sessionstart-hook-1.sh first, unasked" in result, result[:2000]
