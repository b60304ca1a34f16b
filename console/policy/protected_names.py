"""The names of files and folders in a workspace that run code on the host or steer an agent:
one list for the sandbox's start (console/sandbox/protect.py and nested.py make them read-only
where they stand, and report them when made) and for the policy's folder grants (grants.py: a
pattern ending in `*` covers nothing through one of them, review h195).
"""

from __future__ import annotations

GIT_FOLDER = ".git"
OWN = (".pilothouse.toml",)
AGENT_CONFIG_DIRS = (".claude", ".codex", ".vscode", ".idea", ".cursor", ".gemini")
AGENT_CONFIG_FILES = (".mcp.json", ".envrc")
# Found anywhere below the top too: protected when there at the start, reported when made.
NESTED_AGENT_CONFIG = (".claude", ".codex", ".mcp.json", ".cursor", ".gemini")
# aider reads these from the git root at every start (`lint-cmd` with `auto-lint` runs a
# command with no prompt; the model settings override the metering ones). Read-only when there
# at the start; absent, they are reported when made (like a nested repository): aider fails on
# a folder where it expects its config, and an empty file mask would show in `git status`.
AGENT_CONFIG_YAML = (".aider.conf.yml", ".aider.model.settings.yml")
# Other tools' project config that runs programs on the host when the person opens the folder
# (a dev container's initializeCommand, other agents' MCP servers and plugins, editors' project
# files, mise's hooks and tasks, Mercurial's and jj's repository config): read-only when there
# at the start, reported when made, at the top too (review s32). No placeholder: too many.
# Review h152 added agents whose project config starts programs: Continue (.continue/mcpServers),
# Charm Crush (MCP servers and LSP commands), Factory Droid (hooks, MCP), Kilo Code and Qwen Code.
HOST_TOOL_CONFIG = (".devcontainer", ".devcontainer.json", "opencode.json", ".opencode",
                    ".kiro", ".roo", ".amazonq", ".windsurf", ".zed", ".helix", ".nvim.lua",
                    ".lazy.lua", ".exrc", ".nvimrc", ".dir-locals.el", ".dir-locals-2.el",
                    "mise.toml", ".mise.toml", "mise.local.toml", ".mise.local.toml", ".hg", ".jj",
                    ".continue", "crush.json", ".crush.json", ".factory", ".kilocode", ".kilo",
                    "kilo.json", "kilo.jsonc", ".qwen")
HUSKY = ".husky"  # husky 9's hooks folder (protect.py pins it where git's config names it)

# Every name above, case-folded: a folder's grant covers no path through one (grants.py).
PROTECTED_NAMES = frozenset(name.casefold() for name in (
    GIT_FOLDER, HUSKY, *OWN, *AGENT_CONFIG_DIRS, *AGENT_CONFIG_FILES, *NESTED_AGENT_CONFIG,
    *AGENT_CONFIG_YAML, *HOST_TOOL_CONFIG))
