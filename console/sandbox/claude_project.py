"""What a sandboxed Claude Code sees of the workspace's project settings.

`.claude/settings.json` and `.claude/settings.local.json` at the top of the workspace stay
read-only (protect.py), but Claude Code still reads them as its project layer, and a repository
ships them. Its `env` there is applied to Claude Code's own process after the trust check (which
`-p` implies): PATH, BASH_ENV, SHELL, CLAUDE_CODE_SHELL, GIT_CONFIG_*, GIT_EXTERNAL_DIFF,
CLAUDE_CODE_SHELL_PREFIX, LD_PRELOAD ... each ran the repository's code around a command the
rules allow, or around the hook itself (review s18, with the real binary). Its other keys name
commands too (hooks, apiKeyHelper, statusLine, otelHeadersHelper, awsAuthRefresh, plugins and
marketplaces). No list of bad keys is complete, so inside the sandbox each file is replaced by
a copy holding only the keys below; the file on the host is untouched, and the run's notes say
what was left out.
"""

from __future__ import annotations

import json
import os
import stat

from .fsview import open_beneath, read_beneath

PROJECT_SETTINGS = (".claude/settings.json", ".claude/settings.local.json")
# Keys that change how Claude Code answers, never what it runs. `permissions` keeps only a
# person's own deny and ask rules: Claude Code falls back on its permissions when our hook
# gives no answer (a frozen daemon past the hook's timeout), and a repository's `allow`,
# `defaultMode` or `additionalDirectories` would then let a command through unasked.
KEPT = ("permissions", "model", "outputStyle", "includeCoAuthoredBy", "cleanupPeriodDays",
        "language", "alwaysThinkingEnabled")
KEPT_PERMISSIONS = ("deny", "ask")
READ_MAX = 1 << 20


def _read(root_fd: int, rel: str) -> str | None:
    """The file's text, or None when it is not a regular file here (absent, a link: masked)."""
    got = read_beneath(root_fd, rel, READ_MAX + 1)
    return None if got is None else got[0].decode(errors="replace")


def kept_settings(text: str) -> tuple[str, list[str]]:
    """(the copy Claude Code reads inside, the keys left out). A file that is not one JSON
    object under READ_MAX bytes keeps nothing."""
    try:
        # NaN and Infinity are Python's, not JSON's: Claude Code would refuse the copy.
        data = json.loads(text, parse_constant=_not_json) if len(text) <= READ_MAX else None
    except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
        data = None
    if not isinstance(data, dict):
        return "{}\n", ["(the whole file: not a JSON object Pilothouse could read)"]
    kept = {k: v for k, v in data.items() if k in KEPT}
    dropped = sorted(k for k in data if k not in KEPT)
    if isinstance(kept.get("permissions"), dict):
        permissions = kept["permissions"]
        kept["permissions"] = {k: v for k, v in permissions.items() if k in KEPT_PERMISSIONS}
        dropped += sorted(f"permissions.{k}" for k in permissions if k not in KEPT_PERMISSIONS)
    elif "permissions" in kept:
        del kept["permissions"]
        dropped.append("permissions")
    # Compact: indented, each line is as deep as its value, and a small file of deep nesting
    # made a copy of hundreds of megabytes.
    return json.dumps(kept) + "\n", dropped


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def bind_project_settings(p, root_fd: int, protect) -> None:
    """Give each project settings file that is there a bind of its own (protect.Protection
    `p`, protect._protect as `protect`; before the look for other names), when `.claude` is a
    real folder: a link there is masked, and where it leads is read-only."""
    try:
        fd = open_beneath(root_fd, ".claude")
    except OSError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            return
        for rel in PROJECT_SETTINGS:
            try:
                os.stat(rel.split("/", 1)[1], dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # absent: the read-only folder keeps it so
            protect(p, root_fd, rel, want_dir=False)
    finally:
        os.close(fd)


def filter_project_settings(p, root_fd: int) -> None:
    """Replace the binds of Claude Code's project settings files with their kept copies (run
    after the look for their other names, which needs the real file's descriptor); a masked
    link keeps nothing."""
    for bind in p.binds:
        if bind.rel not in PROJECT_SETTINGS or bind.kind not in ("ro", "mask-file"):
            continue
        text = _read(root_fd, bind.rel) if bind.fd is not None else None
        content, dropped = kept_settings(text) if text is not None else ("{}\n", [])
        if bind.fd is not None:
            os.close(bind.fd)
        bind.fd, bind.kind, bind.content = None, "mask-file", content
        if dropped:
            p.notes.append(f"{bind.rel}: Claude Code in the sandbox reads it without "
                           f"{', '.join(dropped)[:300]} (a repository's settings could run "
                           "commands no one is asked about); only "
                           f"{', '.join(KEPT)} are kept")
