"""A `.env` at the top of the workspace is read by tools on the host as they start: docker
compose takes COMPOSE_FILE (which compose file runs: a privileged service that mounts `/`) and
every variable its file uses from it, direnv's `dotenv` exports it into the person's shell, aider
takes its AIDER_ options. It stays writable (agents edit it for the application), so any change
the agent makes to it is reported at the run's end; before s16 only AIDER_ lines were. Both
backends, a root daemon and an ordinary-user daemon (the `hostile` fixture)."""

from __future__ import annotations

import pytest

from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import mentions

# aider takes every option from AIDER_ lines (aider.chat/docs/config/dotenv.html): AIDER_LINT_CMD
# (auto-lint is on by default) or AIDER_TEST_CMD with AIDER_AUTO_TEST run a command after each
# edit, with no prompt (session 12's finding; the same settings .aider.conf.yml is read-only for).
LINES = {"compose": "COMPOSE_FILE=ci/evil.yml\\n",
         "aider": "AIDER_AUTO_TEST=true\\nAIDER_TEST_CMD=sh -c id\\nAIDER_LINT_CMD=python: sh -c id\\n"}


@pytest.mark.parametrize("line", list(LINES))
@pytest.mark.parametrize("present", [False, True])
async def test_a_dot_env_the_agent_changes_is_reported(hostile, present, line):
    ws = hostile.workspace
    git_repo(ws)
    if present:
        (ws / ".env").write_text("DATABASE_URL=sqlite:///dev.db\n")
    give(hostile, ws)
    before = (ws / ".env").read_text() if present else None
    r = await hostile.run(f"(printf '{LINES[line]}' >> .env) 2>/dev/null && echo WROTE; true")
    assert (ws / ".env").is_file() and (ws / ".env").read_text() != before, r.out
    assert mentions(r.handle.end_notes, ".env"), (r.out, r.handle.end_notes)
    note = next(n for n in r.handle.end_notes if ".env" in n)
    assert "docker compose" in note and "read it first" in note, note


async def test_a_dot_env_left_alone_is_not_reported(hostile):
    ws = hostile.workspace
    git_repo(ws)
    (ws / ".env").write_text("DATABASE_URL=sqlite:///dev.db\n")
    give(hostile, ws)
    r = await hostile.run("cat .env >/dev/null; echo READ")
    assert "READ" in r.out
    assert not mentions(r.handle.end_notes, ".env"), r.handle.end_notes
