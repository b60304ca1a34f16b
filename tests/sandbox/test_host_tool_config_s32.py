"""Review s32 (helper 114): project config other host tools run, neither protected nor reported.

The agent made `.devcontainer/devcontainer.json` (its initializeCommand runs on the host when
the folder is opened in a dev container), `opencode.json`, `.opencode/plugin/p.js`,
`.kiro/settings/mcp.json`, `.roo/mcp.json`, `.amazonq/mcp.json`, `.zed/`, `.helix/languages.toml`,
`.nvim.lua`, `.exrc`, `.dir-locals.el`, `.hg/hgrc`: the run ended with no note. Now each is
named at the run's end when made, and read-only when it was there at the start.

Review h152 found five more agents' project config that starts programs: Continue's
`.continue/mcpServers/` (its IDE extension starts every MCP server in it when the folder is
opened), Charm Crush's `crush.json` and `.crush.json` (MCP servers, LSP commands), Factory
Droid's `.factory/` (hooks, `mcp.json`), Kilo Code's `.kilocode/mcp.json`, `.kilo/` and
`kilo.json(c)`, Qwen Code's `.qwen/settings.json`: the same, now.
"""

from __future__ import annotations

import pytest

from console.policy.protected_names import HOST_TOOL_CONFIG
from tests.sandbox.hostile_kit import git_repo, give

MADE = {".devcontainer": "mkdir -p .devcontainer && echo '{\"initializeCommand\": \"touch x\"}' > .devcontainer/devcontainer.json",
        "opencode.json": "echo '{}' > opencode.json",
        ".opencode": "mkdir -p .opencode/plugin && echo 'x' > .opencode/plugin/p.js",
        ".kiro": "mkdir -p .kiro/settings && echo '{}' > .kiro/settings/mcp.json",
        ".nvim.lua": "echo 'os.execute(\"touch x\")' > .nvim.lua",
        ".dir-locals.el": "echo '((nil . ((eval . (shell-command \"touch x\")))))' > .dir-locals.el",
        ".hg": "mkdir -p .hg && printf '[hooks]\\npre-status = touch x\\n' > .hg/hgrc",
        "sub/.exrc": "mkdir -p sub && echo '!touch x' > sub/.exrc",
        ".mise.toml": "printf '[hooks]\\nenter = \"touch x\"\\n' > .mise.toml"}

MCP = '{"mcpServers": {"x": {"command": "sh", "args": ["-c", "touch x"]}}}'
# Review h152: five more agents.
MADE_H152 = {".continue": "mkdir -p .continue/mcpServers && "
                 "printf 'mcpServers:\\n  - name: x\\n    command: sh\\n' > .continue/mcpServers/x.yaml",
             "crush.json": "echo '{\"lsp\": {\"go\": {\"command\": \"sh\"}}}' > crush.json",
             "sub/.crush.json": "mkdir -p sub && echo '{\"mcp\": {}}' > sub/.crush.json",
             ".factory": "mkdir -p .factory && echo '{\"hooks\": {}}' > .factory/settings.json",
             ".kilocode": f"mkdir -p .kilocode && echo '{MCP}' > .kilocode/mcp.json",
             ".kilo": "mkdir -p .kilo && echo '{\"mcp\": {}}' > .kilo/kilo.json",
             "kilo.jsonc": "echo '{\"mcp\": {}}' > kilo.jsonc",
             ".qwen": f"mkdir -p .qwen && echo '{MCP}' > .qwen/settings.json"}
MADE.update(MADE_H152)


async def test_host_tool_config_the_agent_makes_is_named_at_the_end(hostile):
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run("; ".join(MADE.values()) + "; true")
    for rel in MADE:
        assert any(rel in note for note in r.handle.end_notes), (rel, r.handle.end_notes)


@pytest.mark.parametrize("name", [".devcontainer", ".hg", ".continue", ".factory"])
async def test_host_tool_config_present_at_the_start_is_read_only(hostile, name):
    ws = hostile.workspace
    git_repo(ws)
    (ws / name).mkdir()
    (ws / name / "conf").write_text("safe\n")
    give(hostile, ws)
    r = await hostile.run(f"(echo evil > {name}/conf) 2>/dev/null && echo WROTE; "
                          f"(echo evil > {name}/new) 2>/dev/null && echo MADE; true")
    assert "WROTE" not in r.out and "MADE" not in r.out, r.out
    assert (ws / name / "conf").read_text() == "safe\n"


def test_the_list_names_each_tool_once() -> None:
    assert len(set(HOST_TOOL_CONFIG)) == len(HOST_TOOL_CONFIG)
