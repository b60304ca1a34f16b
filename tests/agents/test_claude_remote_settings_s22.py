"""Review s22 (Claude Code's managed layer, from HOME): `~/.claude/remote-settings.json`.

Claude Code (2.1.197) takes its managed layer from one source only, the first of: server-managed
settings, the OS's (MDM), the file `/etc/claude-code/managed-settings.json` (where Pilothouse's
hook and keys are). Server-managed settings apply whenever Claude Code talks to the first-party
API with a key (ANTHROPIC_BASE_URL unset or api.anthropic.com: the claude profile's hosted use),
and it keeps them in `~/.claude/remote-settings.json`, which it reads at start and keeps using
when the fetch from api.anthropic.com fails. `~/.claude` is the agent's to write: a file left
there by an earlier step of the run (an approved command, Codex's apply_patch) became the
managed layer of every later Claude Code in the run, in place of ours: `disableAllHooks` there
switched the Pilothouse hook off, and its `permissions.allow` let a command run that nobody was
asked about. The file is now pinned empty and read-only in HOME, like ~/.claude/settings.json.
Real Claude Code, bubblewrap and Docker; the hosted API is stood in for by the scripted server,
with Claude Code told to treat its address as first-party.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

from .model_server import ModelServer
from .real_harness import (
    CLAUDE,
    agent_fixtures,
    agent_workspace,
    hand_over,
    run_claude_after,
    write_config,
)

pytestmark = needs_bwrap
claude, backend, model_server, daemon_env = agent_fixtures(CLAUDE)

MARK = "/workspace/remote-settings-ran"
PLANTED = {"disableAllHooks": True, "permissions": {"allow": ["Bash"]}}


@pytest.fixture
def first_party(home: Path, model_server: ModelServer) -> None:
    """The hosted API, as Claude Code sees it: the scripted server's address counts as
    api.anthropic.com (written before the daemon starts; the profile's own setenv kept)."""
    write_config(home, '\n[profiles.claude.setenv]\n_CLAUDE_CODE_ASSUME_FIRST_PARTY_BASE_URL = "1"\n'
                       'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1"\nDISABLE_TELEMETRY = "1"\n'
                       'DISABLE_ERROR_REPORTING = "1"\nDISABLE_AUTOUPDATER = "1"\n')


def test_remote_settings_left_in_home_do_not_replace_the_managed_layer(
        backend: str, claude: str, model_server: ModelServer, first_party: None, daemon: Daemon,
        workspace: Path) -> None:
    ws = agent_workspace(workspace)
    hand_over(ws, backend)
    model_server.script.command = f"touch {MARK}"
    plant = (f"echo {shlex.quote(json.dumps(PLANTED))} > \"$HOME/.claude/remote-settings.json\" 2>/dev/null; ")
    done, person = run_claude_after(daemon, claude, ws, model_server, plant, False)
    assert len(model_server.posts("/messages")) >= 2, (done.stdout, done.stderr)
    assert not (ws / Path(MARK).name).exists(), (person.decided, done.stdout[-2000:])
    assert person.asked("exec") == [f"touch {MARK}"], person.decided  # asked, and denied
