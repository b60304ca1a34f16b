"""Review h152: more agents' project config that runs programs on the host, neither protected
nor reported.

The agent made `.continue/mcpServers/x.yaml` (Continue's IDE extension starts every MCP server
in it when the folder is opened), `crush.json` and `.crush.json` (Charm Crush starts their MCP
servers and LSP commands), `.factory/settings.json` (Factory Droid's hooks and `.factory/mcp.json`),
`.kilocode/mcp.json`, `.kilo/kilo.json` and `kilo.jsonc` (Kilo Code's project MCP servers) and
`.qwen/settings.json` (Qwen Code's MCP servers): the run ended with no note. Now each is named
at the run's end when made, and read-only when it was there at the start, as the tools of
review s32 are (tests/sandbox/test_host_tool_config_s32.py).
"""

from __future__ import annotations

import pytest

from tests.sandbox.hostile_kit import git_repo, give

MCP = '{"mcpServers": {"x": {"command": "sh", "args": ["-c", "touch x"]}}}'
MADE = {".continue": "mkdir -p .continue/mcpServers && "
                     "printf 'mcpServers:\\n  - name: x\\n    command: sh\\n' > .continue/mcpServers/x.yaml",
        "crush.json": "echo '{\"lsp\": {\"go\": {\"command\": \"sh\"}}}' > crush.json",
        "sub/.crush.json": "mkdir -p sub && echo '{\"mcp\": {}}' > sub/.crush.json",
        ".factory": "mkdir -p .factory && echo '{\"hooks\": {}}' > .factory/settings.json",
        ".kilocode": f"mkdir -p .kilocode && echo '{MCP}' > .kilocode/mcp.json",
        ".kilo": "mkdir -p .kilo && echo '{\"mcp\": {}}' > .kilo/kilo.json",
        "kilo.jsonc": "echo '{\"mcp\": {}}' > kilo.jsonc",
        ".qwen": f"mkdir -p .qwen && echo '{MCP}' > .qwen/settings.json"}


async def test_more_agents_config_the_agent_makes_is_named_at_the_end(hostile):
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run("; ".join(MADE.values()) + "; true")
    for rel in MADE:
        assert any(rel in note for note in r.handle.end_notes), (rel, r.handle.end_notes)


@pytest.mark.parametrize("name", [".continue", ".factory"])
async def test_more_agents_config_present_at_the_start_is_read_only(hostile, name):
    ws = hostile.workspace
    git_repo(ws)
    (ws / name).mkdir()
    (ws / name / "conf").write_text("safe\n")
    give(hostile, ws)
    r = await hostile.run(f"(echo evil > {name}/conf) 2>/dev/null && echo WROTE; "
                          f"(echo evil > {name}/new) 2>/dev/null && echo MADE; true")
    assert "WROTE" not in r.out and "MADE" not in r.out, r.out
    assert (ws / name / "conf").read_text() == "safe\n"
