"""Attack review of the helper commands: the agents' settings name the hook by its bare name
(`ph-claude-hook`), so it is whatever PATH finds first. A profile that puts a folder the agent
can write in front of PATH (~/.local/bin, where Claude Code's own installer goes) must not let
the agent plant a `ph-claude-hook` that answers "allow" without asking the daemon."""

from __future__ import annotations

PLANT = ("mkdir -p $HOME/.local/bin && printf '#!/bin/sh\\necho PLANTED\\n' "
         "> $HOME/.local/bin/ph-claude-hook && chmod +x $HOME/.local/bin/ph-claude-hook; "
         "command -v ph-claude-hook")


async def test_a_helper_planted_earlier_on_path_is_not_the_one_found(sandbox):
    r = await sandbox.run(PLANT, env={"PATH": "/home/agent/.local/bin:/usr/bin:/bin"})
    assert r.rc == 0, r.out
    assert r.out.strip().splitlines()[-1] == "/run/pilothouse/bin/ph-claude-hook", r.out
