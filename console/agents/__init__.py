"""Built-in agents: the profiles (profiles.toml), the demo agent (demo.py) and the files a run
folder needs so they work inside a sandbox.

The run manager calls `install_run_files(run_dir)` when it prepares a run folder, and binds what
`home_mounts(run_dir)` returns read-only into the sandbox's HOME. Nothing here imports the rest
of Pilothouse but the config's constants: the sandbox package imports this module, not the
other way round.

Why HOME files and not command-line flags: `pilothouse run claude -- claude -p "..."` replaces the
profile's command, so flags written in the profile would be lost. A read-only settings file at
the path the agent reads anyway (~/.claude/settings.json, ~/.codex/config.toml) applies to every
command in the run and cannot be edited by the agent; the rest of HOME stays a writable tmpfs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from console.agents.aider_env import AIDER_ENV_FILE, AIDER_ENV_PATH, aider_env_text
from console.agents.codex_bash import (
    CLAIMED,
    REAL_SH,
    SH_GUARD,
    codex_bash,
    codex_sh,
    guarded_passwd,
)
from console.agents.codex_home import (
    CODEX_DIR,
    CODEX_STATE_KEYS,
    codex_state_folders,
    codex_state_links,
    make_codex_home,
    mount_point,
)
from console.config.schema import AGENT_HOOK_TIMEOUT, INSIDE_RUN_DIR
from console.paths import INSIDE_HOME

DEMO_SCRIPT = Path(__file__).with_name("demo.py")
DEMO_PROJECT = DEMO_SCRIPT.with_name("demo_project.py")  # imported by demo.py from beside it
DEMO_COMMAND = "ph-demo-agent"

# Claude Code: every tool call goes through ph-claude-hook (PreToolUse), which lets the ones
# that only read (Read, Glob, Grep, ...: inside.py UNROUTED_TOOLS) go on to Claude Code's own
# permissions, as an unmatched tool would, and asks the inbox for every other one: a tool of a
# newer Claude Code too (2.1.197 added Workflow, CronCreate, EnterWorktree, ..., which a list of
# the tools that act did not name; and `Bash|Write|...` as a regex also matched BashOutput and
# TodoWrite). The hook's timeout (seconds) is longer than any approval_timeout (the config
# refuses one past APPROVAL_TIMEOUT_MAX), so Claude waits for the person, not the clock.
CLAUDE_HOOK_MATCHER = "*"
# By its full path, never its bare name: a PATH from any settings layer's "env" (or a folder
# the agent put first on it) would otherwise choose which ph-claude-hook answers.
HOOK_PATH = f"{INSIDE_RUN_DIR}/bin/ph-claude-hook"
HOST_PASSWD = Path("/etc/passwd")
RUN_PASSWD = "passwd"  # in the run folder: the host's accounts, login shells guarded
CLAUDE_SETTINGS: dict = {
    "hooks": {
        "PreToolUse": [
            {
                "matcher": CLAUDE_HOOK_MATCHER,
                # onFailure: a hook that dies, times out or cannot start blocks the call
                # (Claude Code 2.1.295 and later; older ones ignore the key and fall back on
                # their own permissions, which the run keeps closed: docs/threat-model.md).
                "hooks": [{"type": "command", "command": HOOK_PATH,
                           "timeout": AGENT_HOOK_TIMEOUT, "onFailure": "block"}],
            }
        ]
    },
    # Claude Code's own bubblewrap sandbox stays off: it cannot nest inside ours, and ours
    # (with the gate) is the boundary that matters.
    "sandbox": {"enabled": False},
}

# Codex CLI: its own sandbox off (ours is on; its Landlock/bubblewrap one cannot nest), and no
# approval prompts of its own (a run has no terminal to answer them in). Its shell commands and
# its patches go to the inbox through the same PreToolUse hook as Claude Code's (Codex sends the
# Claude Code hook shape, tool_name "Bash", or "apply_patch" with the patch text: one request per
# file it writes, console/sandbox/inside_writes.py). Codex runs a hook only once a person has trusted it: the trust
# state it would write after that review ([hooks.state], the hook's key and content hash) is
# shipped with the hook, in the same read-only file, so nothing in the workspace can change
# either. The hash is what `codex app-server` reports as currentHash for exactly this hook
# (tests/agents/test_real_codex.py checks it against the installed binary; a Codex that hashes
# differently would not run the hook, and that test says so).
# Analytics and plugin/app fetches are off: they would put ab.chatgpt.com and github.com in
# front of the person on every run. No shell snapshot and no login shell: Codex sourced its
# snapshot (~/.codex/shell_snapshots, writable like the rest of ~/.codex) before every command,
# so one apply_patch (not asked then) there ran code around each later command, allowed ones too
# (review s19); a login shell would source HOME's login files instead.
# No terminal for commands (unified_exec_tty = false): Codex's write_stdin types into a running
# session and reaches no hook, so an allowed `sh` or `python3` in a terminal ran whatever the
# model typed into it later, unasked (review s20). Without a terminal a session's stdin is
# closed and write_stdin can only read its output. (`unified_exec = false` is ignored by Codex
# 0.171, and shell_tool = false would leave the model no shell at all.)
CODEX_HOOK_COMMAND = HOOK_PATH
CODEX_HOOK_TIMEOUT = AGENT_HOOK_TIMEOUT  # seconds, longer than any approval_timeout
CODEX_HOOK_KEY = "/home/agent/.codex/config.toml:pre_tool_use:0:0"
CODEX_HOOK_HASH = "sha256:e6bbf57f99e8779e56e683b0956878710b9da7fceb6874f7198e3b460a8ef0a7"
CODEX_CONFIG = f"""\
# Written by Pilothouse for runs in its sandbox (read-only here).
sandbox_mode = "danger-full-access"   # the Pilothouse sandbox and gate are the boundary
approval_policy = "never"             # nobody could answer Codex's own prompts in a run
check_for_update_on_startup = false
allow_login_shell = false             # commands run `bash -c`: no login files sourced first
{CODEX_STATE_KEYS.rstrip()}

[analytics]
enabled = false

[features]
plugins = false
apps = false
shell_snapshot = false                # the snapshot, sourced before every command, was the agent's to rewrite
unified_exec_tty = false              # no terminal, so no open stdin for write_stdin (not asked) to type into

[[hooks.PreToolUse]]
matcher = "^(Bash|apply_patch)$"
hooks = [{{ type = "command", command = "{CODEX_HOOK_COMMAND}", timeout = {CODEX_HOOK_TIMEOUT} }}]

[hooks.state."{CODEX_HOOK_KEY}"]
trusted_hash = "{CODEX_HOOK_HASH}"
"""

# git: an identity for commits made in the sandbox, so that a tool which finds none (aider)
# does not write one into the repository's .git/config (read-only in the sandbox, and not the
# agent's to change). GIT_AUTHOR_NAME/EMAIL and GIT_COMMITTER_NAME/EMAIL in a profile's setenv
# override it. /workspace is the only repository an agent works on; its owner inside the
# sandbox may differ from the agent's uid, which git would otherwise refuse. A folder holding
# HEAD, config, objects/ and refs/ is a git folder to git: one the agent writes under an ordinary
# name (`Write src/*` allows src/foo/config) ran its core.fsmonitor at the next `git status` in
# that folder, the agent's own or its program's (review h201); git opens one only when named
# (--git-dir, GIT_DIR: asked about). A `.git` folder, and worktrees' and submodules' gitfiles,
# are unaffected.
GIT_CONFIG = """\
# Written by Pilothouse for runs in its sandbox (read-only here).
[user]
\tname = Pilothouse agent
\temail = agent@pilothouse.invalid
[safe]
\tdirectory = /workspace
\tbareRepository = explicit
"""

# aider: streamed answers carry usage only when the request asks for it
# (stream_options.include_usage); "aider/extra_params" applies to every model. litellm passes
# stream_options on streamed requests only and drops it where a provider has no such option.
AIDER_MODEL_SETTINGS = """\
# Written by Pilothouse: ask for usage in streamed answers, so the gate can meter them.
- name: aider/extra_params
  extra_params:
    stream_options:
      include_usage: true
"""
# aider: a run has no terminal (stdin is closed), and aider then takes every question's default;
# "Run shell command?" defaults to yes, so the model's shell commands ran unasked without
# --yes-always, under which aider refuses them (they alone need an explicit yes). The profile's
# setenv says so too, but aider loads a `.env` (a repository's, or one its model wrote for the
# run's next aider) over the environment, and a person's own setenv replaces the profile's: this
# read-only file in HOME holds either way (a false in a later layer does not undo a true here).
AIDER_CONF = """\
# Written by Pilothouse: aider refuses its model's shell commands (nobody could answer them).
yes-always: true
"""
# aider downloads litellm's model list from raw.githubusercontent.com when its cache is empty
# or older than a day. A fresh, non-empty cache stops that; models are then described by
# litellm's bundled list (LITELLM_LOCAL_MODEL_COST_MAP in the profile).
AIDER_MODEL_INFO_CACHE = '{"_pilothouse": "no download from a sandbox; litellm\'s bundled list is used"}\n'
AIDER_MODEL_INFO_CACHE_PATH = ".aider/caches/model_prices_and_context_window.json"
# aider takes a cache's age from its mtime, and a run folder keeps its files' times: a spare
# folder goes to the next run unchanged (console/sandbox/spare_folders.py), so a day after a
# daemon started, every aider run asked the person for the download again. Dated far ahead,
# the cache stays fresh however long the daemon or a run lasts.
AIDER_MODEL_INFO_CACHE_MTIME = 4_102_444_800  # 2100-01-01 UTC

# Files a program reads from HOME when it starts, pinned empty and read-only: HOME and ~/.codex
# are writable (Codex keeps its sessions there), and Codex's apply_patch was not asked until s29
# (an allowed patch is no review of HOME either), so what its model wrote there ran in the next
# Codex of the same run, unasked (review s19): ~/.codex/.env
# sets variables for Codex's own process (BASH_ENV: a script bash sources before the hook, which
# could answer "allow" for it), ~/.codex/environments.toml names programs Codex starts, and the
# login shell of Codex's shell snapshot sources the first of the three login files.
PINNED_EMPTY = "# Written by Pilothouse: empty and read-only in its sandbox.\n"
STARTUP_FILES = (".codex/.env", ".codex/environments.toml", ".bash_profile", ".bash_login",
                 ".profile")
# The shell's config file, which Claude Code sources to make its shell snapshot before its first
# Bash command: a ~/.bashrc left by an earlier step of the run ran around an allowed `ls` (review
# s19b). zsh's too, for a sandbox where Claude Code finds zsh (and zsh reads ~/.zshenv always).
SHELL_RC_FILES = (".bashrc", ".zshrc", ".zshenv", ".zprofile", ".zlogin")
# ssh's own config: a `Match exec` or ProxyCommand written there ran around an approved
# `git push` to an ssh remote (review s20). Keys are never carried in (carry refuses ~/.ssh).
SSH_CONFIG = ".ssh/config"

# Folders in HOME pinned empty and read-only. Claude Code (2.1.332) loads a folder of
# ~/.claude/skills that holds `.claude-plugin/` as a plugin of the person's own, and starts the
# language servers its `.lsp.json` names when a file is edited, with no hook: one left there by
# an earlier step of the run ran at the next Claude Code's approved Write (review h163). Its
# hooks and MCP servers were held back by the managed layer; its language servers were not.
# (CLAUDE_CODE_RESTRICT_PERSONAL_CONFIG would load it as a skill only, but also drops the answer
# of the hook in ~/.claude/settings.json, which the managed one is deduplicated into.)
HOME_DIRS = (".claude/skills",)

HOME_FILES: dict[str, str] = {
    ".claude/settings.json": json.dumps(CLAUDE_SETTINGS, indent=2) + "\n",
    # Empty and read-only: the user-level local layer could otherwise switch the hook off
    # ("disableAllHooks") without the agent touching settings.json.
    ".claude/settings.local.json": "{}\n",
    # Server-managed settings, which Claude Code keeps here and reads at start (and keeps using
    # when the fetch from api.anthropic.com fails) as its managed layer: the first source of that
    # layer wins, so one left here by an earlier step replaced ours, hook and all (review s22).
    ".claude/remote-settings.json": "{}\n",
    # Claude Code's global config: it applies that file's "env" to itself and what it starts,
    # so GIT_CONFIG_* or BASH_ENV written there by an earlier step ran around the next Claude
    # Code's allowed `git status` (review h202). Claude Code runs with it read-only (it keeps
    # its state in memory). The legacy ~/.claude/.config.json wins over it when not empty:
    # pinned empty, Claude Code reads ~/.claude.json.
    ".claude.json": "{}\n",
    ".claude/.config.json": "",
    ".codex/config.toml": CODEX_CONFIG,
    ".gitconfig": GIT_CONFIG,
    # git's other global file (XDG), read beside ~/.gitconfig: a core.fsmonitor or pager written
    # there ran from `git status`, which the rules allow (review s19).
    ".config/git/config": PINNED_EMPTY,
    ".aider.conf.yml": AIDER_CONF,
    ".aider.model.settings.yml": AIDER_MODEL_SETTINGS,
    AIDER_MODEL_INFO_CACHE_PATH: AIDER_MODEL_INFO_CACHE,
    AIDER_ENV_PATH: aider_env_text(),
    **dict.fromkeys((*STARTUP_FILES, *SHELL_RC_FILES, SSH_CONFIG), PINNED_EMPTY),
}
# In every run's environment, after the profile's setenv: aider loads the file it names last,
# over the workspace's .env and a repository's .aider.conf.yml (aider_env.py, review h163).
RUN_ENV_PINNED = {"AIDER_ENV_FILE": AIDER_ENV_FILE}
HOME_DIR = "home"  # inside the run folder
MANAGED_DIR = "managed"  # inside the run folder; bound at /etc/claude-code in every sandbox

# Claude Code's managed settings (the highest layer): the hook lives here, where a repository's
# .claude/settings.json or settings.local.json cannot switch it off ("disableAllHooks" in a
# non-managed layer leaves managed hooks running). The same hook stays in ~/.claude for
# versions that predate managed hooks; a second call of the same command is deduplicated.
# Two ways to run a command that no PreToolUse hook sees are closed here too: a skill's inline
# `!` shell lines (a skill the agent writes into ~/.claude/skills, or a repository ships), and an
# MCP server the agent writes into ~/.claude.json, started by every later Claude Code in the run.
# Only the managed layer's MCP servers run: an organisation's own come along (managed_settings).
# A repository's .claude/settings.json (read-only, but still Claude Code's project layer) may
# neither add hooks (commands Claude Code runs with no request: allowManagedHooksOnly) nor set,
# through its "env", the variables with which Claude Code runs code around its hooks and Bash
# commands: the managed layer's env is applied last, so these empty values win (review s18).
CLAUDE_PINNED_ENV = {
    "CLAUDE_CODE_SHELL_PREFIX": "",  # wraps every hook (ours too) and Bash command in a program
    "CLAUDE_ENV_FILE": "",  # a script sourced before every Bash command
    "LD_PRELOAD": "",  # a library loaded into every program Claude Code starts, the hook too
    "LD_AUDIT": "",
}
# Claude Code 2.1.332 loads a folder of `.claude/skills` holding `.claude-plugin/` as a plugin
# ("skills-as-plugins"): the person's (~/.claude/skills, pinned empty since h163) and the
# project's, once the workspace is trusted, which `~/.claude.json` records and the agent can
# write. A repository's plugin there started the language servers its `.lsp.json` names at an
# approved edit, with no hook (review h191). This sentinel in blockedMarketplaces turns that
# scan off, both folders, and blocks no marketplace (a block wins over strictKnownMarketplaces).
SKILLS_DIR_PLUGINS = {"source": "skills-dir"}
CLAUDE_MANAGED_SETTINGS: dict = {
    "hooks": CLAUDE_SETTINGS["hooks"],
    "blockedMarketplaces": [SKILLS_DIR_PLUGINS],
    "sandbox": {"enabled": False},
    "disableBypassPermissionsMode": "disable",
    "disableSkillShellExecution": True,
    "allowManagedMcpServersOnly": True,
    "allowedMcpServers": [],
    "allowManagedHooksOnly": True,
    "env": CLAUDE_PINNED_ENV,
}
# What our layer forces over the host's own managed settings.
_FORCED = ("sandbox", "disableSkillShellExecution", "allowManagedMcpServersOnly",
           "allowManagedHooksOnly")


HOST_MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")
MANAGED_DROPINS = "managed-settings.d"  # beside it: Claude Code merges each *.json over it


def _dropins(host_file: Path) -> list[Path]:
    """The host's drop-ins, in the order Claude Code applies them (names ending in .json, not
    starting with a dot, sorted). Our folder hides the host's /etc/claude-code in the sandbox,
    so what they say must be in our one file (review s22: an organisation's deny rules and
    hooks there were lost inside)."""
    folder = host_file.parent / MANAGED_DROPINS
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json")
                       and not e.name.startswith(".") and (e.is_file() or e.is_symlink()))
    except OSError:
        return []
    return [folder / n for n in names]


def run_file_sources() -> tuple[Path, ...]:
    """The files install_run_files reads: a run folder made from them is stale once one of
    them changes (console/sandbox/spare_folders.py). The drop-ins' folder too: one added or
    removed changes it."""
    folder = HOST_MANAGED_SETTINGS.parent / MANAGED_DROPINS
    return (DEMO_SCRIPT, DEMO_PROJECT, HOST_MANAGED_SETTINGS, folder, HOST_PASSWD,
            *_dropins(HOST_MANAGED_SETTINGS))


def _settings_merge(into: dict, over: dict) -> dict:
    """Claude Code's merge of one settings file over another: objects deeply, lists joined
    (a value already there is not repeated), anything else replaced."""
    out = dict(into)
    for key, value in over.items():
        have = out.get(key)
        if isinstance(have, dict) and isinstance(value, dict):
            out[key] = _settings_merge(have, value)
        elif isinstance(have, list) and isinstance(value, list) and key != "fallbackModel":
            out[key] = have + [v for v in value if isinstance(v, (dict, list)) or v not in have]
        else:
            out[key] = value
    return out


def _host_managed(host_file: Path) -> dict | None:
    """The host's managed layer as Claude Code reads it: the file, then each drop-in over it
    (one it cannot read is left out, as Claude Code leaves it out); None when there is none."""
    host, found = {}, False
    for path in (host_file, *_dropins(host_file)):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data:
            host, found = _settings_merge(host, data), True
    return host if found else None


def managed_settings(host_file: Path | None = None) -> dict:
    """Ours, merged into the host's own managed settings when it has them (an organisation's
    policy must survive inside the sandbox): our PreToolUse hook is added to theirs."""
    host = _host_managed(host_file or HOST_MANAGED_SETTINGS)
    if host is None:
        return json.loads(json.dumps(CLAUDE_MANAGED_SETTINGS))
    merged = dict(host)
    merged.pop("disableAllHooks", None)  # the Pilothouse hook must run in its sandbox
    hooks = dict(merged.get("hooks") or {})
    hooks["PreToolUse"] = [*(hooks.get("PreToolUse") or []),
                           *CLAUDE_MANAGED_SETTINGS["hooks"]["PreToolUse"]]  # fmt: skip
    merged["hooks"] = hooks
    for key in _FORCED:
        merged[key] = CLAUDE_MANAGED_SETTINGS[key]
    host_env = merged.get("env") if isinstance(merged.get("env"), dict) else {}
    merged["env"] = {**host_env, **CLAUDE_PINNED_ENV}
    blocked = merged.get("blockedMarketplaces")
    blocked = blocked if isinstance(blocked, list) else []
    merged["blockedMarketplaces"] = [*blocked, *([] if SKILLS_DIR_PLUGINS in blocked
                                                 else [SKILLS_DIR_PLUGINS])]
    merged.setdefault("disableBypassPermissionsMode", "disable")
    merged.setdefault("allowedMcpServers", [])  # the host's own list, when it has one, stands
    return merged


def write_passwd(path: Path, accounts: str) -> Path:
    """`accounts` (a passwd file's text: the host's, or an image's) written to `path`,
    read-only, with the run's bin/bash as every login shell (codex_bash.guarded_passwd)."""
    path.write_text(guarded_passwd(accounts, f"{INSIDE_RUN_DIR}/bin/bash"),
                    encoding="utf-8", errors="surrogateescape")
    os.chmod(path, 0o444)
    return path


def install_run_files(run_dir: Path) -> list[str]:
    """Write bin/demo.py, the bin/ph-demo-agent wrapper and home/* into a run folder.

    Returns notes for the run's first output lines (empty when all is well). Files are 0644 and
    folders 0755, like the rest of the run folder, so a container's other uid can read them.
    """
    notes: list[str] = []
    bin_dir = Path(run_dir) / "bin"
    bin_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    if DEMO_SCRIPT.is_file():
        for source in (DEMO_SCRIPT, DEMO_PROJECT):
            shutil.copyfile(source, bin_dir / source.name)
            os.chmod(bin_dir / source.name, 0o644)
        wrapper = bin_dir / DEMO_COMMAND
        wrapper.write_text(
            "#!/bin/sh\n"
            "# Written by pilothouse: the demo agent needs a python3 on PATH.\n"
            "if ! command -v python3 >/dev/null 2>&1; then\n"
            f"  echo '{DEMO_COMMAND}: this sandbox has no python3' >&2\n"
            "  exit 127\n"
            "fi\n"
            'exec python3 "${0%/*}/demo.py" "$@"\n'
        )
        os.chmod(wrapper, 0o755)
    else:
        notes.append(f"{DEMO_SCRIPT} is missing: {DEMO_COMMAND} is not available")
    (bin_dir / "bash").write_text(codex_bash(HOOK_PATH, f"{INSIDE_RUN_DIR}/bin/ph-guard"))
    os.chmod(bin_dir / "bash", 0o755)
    (Path(run_dir) / CLAIMED).touch(mode=0o644)  # what ph-guard holds open in a claimed command
    real_sh = Path(run_dir) / REAL_SH  # the mount point of the system's sh (bwrap_args.sh_guard)
    real_sh.parent.mkdir(mode=0o755, exist_ok=True)
    real_sh.touch(mode=0o644)
    (Path(run_dir) / SH_GUARD).write_text(
        codex_sh(HOOK_PATH, f"{INSIDE_RUN_DIR}/bin/ph-guard", f"{INSIDE_RUN_DIR}/{REAL_SH}"))
    os.chmod(Path(run_dir) / SH_GUARD, 0o755)
    try:  # the host's accounts, each with that bash as its login shell (bubblewrap shows it)
        accounts = HOST_PASSWD.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        pass
    else:
        write_passwd(Path(run_dir) / RUN_PASSWD, accounts)
    managed = Path(run_dir) / MANAGED_DIR
    managed.mkdir(mode=0o755, exist_ok=True)
    (managed / "managed-settings.json").write_text(
        json.dumps(managed_settings(), indent=2) + "\n"
    )
    os.chmod(managed / "managed-settings.json", 0o644)
    for rel in HOME_DIRS:
        (Path(run_dir) / HOME_DIR / rel).mkdir(mode=0o755, parents=True, exist_ok=True)
    make_codex_home(Path(run_dir) / HOME_DIR)
    for rel, text in HOME_FILES.items():
        target = Path(run_dir) / HOME_DIR / rel
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, 0o644)
        if rel == AIDER_MODEL_INFO_CACHE_PATH:
            os.utime(target, (AIDER_MODEL_INFO_CACHE_MTIME, AIDER_MODEL_INFO_CACHE_MTIME))
    return notes


def pinned_under(inside: str, inside_home: str = INSIDE_HOME) -> str | None:
    """The HOME file or folder Pilothouse keeps in the sandbox that a mount at `inside` would
    replace, hide (at it, or at a folder above it) or land in (below a pinned folder), or None."""
    dirs = [*(f"{inside_home}/{rel}" for rel in HOME_DIRS), *codex_state_folders(inside_home)]
    pinned = [*(f"{inside_home}/{rel}" for rel in HOME_FILES), *codex_state_links(inside_home),
              *dirs]
    return next((p for p in pinned if p == inside or p.startswith(f"{inside}/")),
                next((d for d in dirs if inside.startswith(f"{d}/")), None))


def home_mounts(run_dir: Path, inside_home: str = INSIDE_HOME) -> list[tuple[Path, str]]:
    """(host path, path inside the sandbox) for each HOME file and pinned folder: bind them
    read-only. ~/.codex is bound whole (codex_home.py says why), its files with it."""
    home = Path(run_dir) / HOME_DIR
    dirs = [rel for rel in (CODEX_DIR, *HOME_DIRS) if (home / rel).is_dir()]
    return [*((home / rel, f"{inside_home}/{rel}") for rel in dirs),
            *((home / rel, f"{inside_home}/{rel}") for rel in HOME_FILES
              if (home / rel).is_file() and not rel.startswith(f"{CODEX_DIR}/"))]


__all__ = [
    "AIDER_CONF", "AIDER_MODEL_SETTINGS", "CLAUDE_MANAGED_SETTINGS", "CLAUDE_SETTINGS", "CODEX_CONFIG", "CODEX_HOOK_HASH",
    "DEMO_COMMAND", "DEMO_SCRIPT", "GIT_CONFIG", "HOME_DIRS", "HOME_FILES", "MANAGED_DIR", "RUN_ENV_PINNED",
    "HOME_DIR", "codex_state_folders", "home_mounts", "install_run_files", "mount_point", "pinned_under",
]
