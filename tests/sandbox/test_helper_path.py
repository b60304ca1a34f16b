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


async def test_a_python3_planted_earlier_on_path_never_runs_the_helper(sandbox):
    # Where the helper's wrapper must find python3 (a container: the sh wrapper), PATH alone
    # found it: with the project's virtualenv on PATH (a common profile setting), a python3
    # the repository carries, or the agent writes, answered every hook call itself.
    plant = ("mkdir -p .venv/bin && printf '#!/bin/sh\\necho PLANTED\\n' > .venv/bin/python3 "
             "&& chmod +x .venv/bin/python3; echo '{}' | ph-claude-hook")
    r = await sandbox.run(plant, env={"PATH": "/workspace/.venv/bin:/usr/bin:/bin"})
    assert "PLANTED" not in r.out, r.out
