"""Review s18: Claude Code reads the workspace's `.claude/settings.json` and
`settings.local.json` as its project layer. Read-only was not enough: a repository's `env`,
hooks and helper commands ran its code around what the rules allow
(tests/agents/test_agent_config_attacks_s18.py, with the real binary). Inside every sandbox each
file is a copy holding only the keys that change how Claude Code answers; the file on the host
is untouched, and the run's notes say what was left out.
"""

from __future__ import annotations

import json
import os

from tests.sandbox.hostile_kit import give
from tests.sandbox.test_workspace_attacks_2 import run_or_refused

REPOSITORY_SETTINGS = {
    "permissions": {"deny": ["Read(./secrets/**)"]},
    "model": "a-model",
    "env": {"PATH": "/workspace/bin:/usr/bin:/bin", "BASH_ENV": "/workspace/x.sh"},
    "hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": "id"}]}]},
    "apiKeyHelper": "/workspace/key.sh",
}


async def test_claude_reads_only_the_kept_keys_of_the_project_settings(hostile):
    ws = hostile.workspace
    (ws / ".claude").mkdir()
    for name in ("settings.json", "settings.local.json"):
        (ws / ".claude" / name).write_text(json.dumps(REPOSITORY_SETTINGS))
    give(hostile, ws)
    r = await hostile.run("cat .claude/settings.json; echo; cat .claude/settings.local.json")
    seen = [json.loads(part) for part in r.out.strip().split("\n\n") if part.strip()]
    kept = {"permissions": REPOSITORY_SETTINGS["permissions"], "model": "a-model"}
    assert seen == [kept, kept], r.out
    assert json.loads((ws / ".claude" / "settings.json").read_text()) == REPOSITORY_SETTINGS
    notes = " ".join(r.handle.notes)
    assert "apiKeyHelper, env, hooks" in notes, notes


async def test_project_settings_that_are_a_link_keep_nothing(hostile):
    """Claude Code follows the link to the file it names (read-only too): inside it reads an
    empty object, or a person's daemon, which cannot cover a link, refuses the run and says so."""
    ws = hostile.workspace
    (ws / "config").mkdir()
    (ws / "config" / "claude.json").write_text(json.dumps(REPOSITORY_SETTINGS))
    (ws / ".claude").mkdir()
    os.symlink("../config/claude.json", ws / ".claude" / "settings.json")
    give(hostile, ws)
    r = await run_or_refused(hostile, "cat .claude/settings.json")
    if r is None:
        return
    assert json.loads(r.out) == {}, r.out


async def test_a_folder_with_no_project_settings_gets_none(hostile):
    """An absent settings file stays absent (the folder is read-only): nothing is made on the
    host, and Claude Code inside finds none."""
    ws = hostile.workspace
    (ws / ".claude").mkdir()
    (ws / ".claude" / "commands").mkdir()
    give(hostile, ws)
    r = await hostile.run("ls -A .claude; test -e .claude/settings.json && echo THERE; true")
    assert "THERE" not in r.out and "commands" in r.out, r.out
    assert sorted(os.listdir(ws / ".claude")) == ["commands"]
