"""Attack review s19b (HOME): files in the sandbox's writable HOME that the agents' shells read
without being asked, with the real Claude Code binary (bubblewrap and Docker).

Before its first Bash command, Claude Code makes a shell snapshot (aliases, functions, options)
by sourcing the shell's config file: ~/.bashrc for bash, ~/.zshrc for zsh. HOME is a writable
tmpfs, so one write there earlier in the run (an approved Write, a command the person allowed,
Codex's apply_patch) ran that file's code around the next `ls`, which the rules allow: nobody
was asked. Those files are now pinned empty and read-only like the login files. The same goes
for the session scripts Claude Code runs before each Bash command (~/.claude/session-env), which
the hook now refuses to run a command behind.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer
from .real_harness import CLAUDE, agent_fixtures, agent_workspace, hand_over, run_claude_after

pytestmark = needs_bwrap
claude, backend, model_server, daemon_env = agent_fixtures(CLAUDE)

MARK = "/workspace/rc-ran"  # what the planted file leaves behind when it runs


@pytest.mark.parametrize("rc_file", [".bashrc"])
def test_a_shell_rc_file_in_home_runs_nothing_around_an_allowed_command(
        rc_file: str, backend: str, claude: str, model_server: ModelServer, daemon: Daemon,
        workspace: Path) -> None:
    """The run's command leaves ~/RC_FILE behind, as an earlier step of the run could (where
    it cannot, the file is read-only: the write fails and Claude Code starts all the same); the
    model then runs `ls`, allowed by the profile's rules."""
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script.command = "ls"
    plant = f'echo {shlex.quote(f"touch {MARK}")} > "$HOME/{rc_file}" 2>/dev/null; '
    done, person = run_claude_after(daemon, claude, ws, model_server, plant, False)
    assert len(model_server.posts("/messages")) >= 2, (done.stdout, done.stderr)
    assert '"is_error":false' in done.stdout, done.stdout[-2000:]
    assert person.asked("exec") == [], person.decided  # `ls`: allowed by rule, nobody asked
    assert not (ws / Path(MARK).name).exists(), (rc_file, person.decided, done.stdout[-2000:])


SESSION = "5e55a0e0-0000-4000-8000-000000000001"


def test_a_session_env_file_in_home_runs_nothing_around_an_allowed_command(
        backend: str, claude: str, model_server: ModelServer, daemon: Daemon, workspace: Path) -> None:
    """Claude Code prepends ~/.claude/session-env/SESSION/sessionstart-hook-N.sh to every Bash
    command of that session (what SessionStart hooks leave through CLAUDE_ENV_FILE), and
    ~/.claude is the agent's to write. An earlier step of the run leaves one for the session a
    later Claude Code resumes (here: with --session-id). The folder cannot be read-only (Claude
    Code makes the session's own folder in it before every Bash command), so the hook refuses
    a Bash command of a session that has such a script, saying which."""
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script.command = "ls"
    folder = f"$HOME/.claude/session-env/{SESSION}"
    plant = (f'mkdir -p "{folder}" 2>/dev/null; '
             f'echo {shlex.quote(f"touch {MARK}")} > "{folder}/sessionstart-hook-1.sh" 2>/dev/null; ')
    done, person = run_claude_after(daemon, claude, ws, model_server, plant, False,
                                    args=("--session-id", SESSION))
    assert len(model_server.posts("/messages")) >= 2, (done.stdout, done.stderr)
    assert '"is_error":false' in done.stdout, done.stdout[-2000:]
    assert person.asked("exec") == [], person.decided
    assert not (ws / Path(MARK).name).exists(), (person.decided, done.stdout[-2000:])
    result = str(model_server.posts("/messages")[-1].body["messages"][-1])
    assert f"{SESSION}/sessionstart-hook-1.sh first, unasked" in result, result[:2000]
