"""What a git config file says, read as git reads it: its keys, the ones that name a program,
script or folder git runs code from, and its includes. (protect.py decides what to do with it.)
"""

from __future__ import annotations

import functools
import os
import re

# Config keys whose value names a program, a script or a folder git runs or reads code from.
# A value that points into the workspace makes that file (or folder) read-only: the config is
# protected, but a hook script it names would otherwise stay the agent's to rewrite.
# Review s22: also every other key git (2.39, and the config hooks of later ones) runs a program
# from: a project script named under one of them was left writable, and the person's next
# `git fetch` (core.gitProxy) or `git commit --trailer` ran what the agent put there.
CODE_KEYS = re.compile(
    r"^(core\.(hookspath|fsmonitor|sshcommand|editor|pager|askpass|worktree|gitproxy"
    r"|alternaterefscommand)|sequence\.editor"
    r"|diff\.external|gpg(\..+)?\.program|gpg\.ssh\.defaultkeycommand|credential(\..+)?\.helper"
    r"|filter\..+\.(clean|smudge|process)|diff\..+\.(textconv|command)|merge\..+\.driver"
    r"|(merge|diff)tool\..+\.(cmd|path)|alias\..+|uploadpack\.packobjectshook"
    r"|remote\..+\.(uploadpack|receivepack)|init\.templatedir|pager\..+|interactive\.difffilter"
    r"|imap\.tunnel|(browser|man)\..+\.(cmd|path)|submodule\..+\.update|trailer\..+\.(command|cmd)"
    r"|sendemail(\..+)?\.(smtpserver|sendmailcmd|tocmd|cccmd|headercmd)|guitool\..+\.cmd"
    r"|hook\..+\.command|tar\..+\.command|instaweb\.(httpd|modulepath))$"
)
INCLUDE_KEY = re.compile(r"^include(if\..+)?\.path$")
# How much of a config (a hook script, .gitmodules, a .git file) the start reads. git reads all
# of it: the start read 64 KiB, and an include or a hooks path written past that, in a nested
# repository an earlier run made, was left the agent's to change (review h184). A longer file
# refuses the run: what it names could not all be protected.
CONFIG_MAX = 4 << 20
# Includes and commands the configs of one start may name, and config files its hooks name, all
# together. Each is resolved
# through the workspace (about 0.1 ms): 4 MiB of `path = ...` lines in each of four nested
# repositories an earlier run's agent made took the start 55 s, 64 of them would take 15 min
# (review h187). Past it the run is refused, as past CONFIG_MAX.
CONFIG_ENTRIES_MAX = 8192

# Hook runners whose protected hook runs what a file in the work tree lists.
LEFTHOOK_CONFIGS = tuple(f"{d}{n}.{e}" for d in ("", ".config/")
                         for n in ("lefthook", ".lefthook", "lefthook-local", ".lefthook-local")
                         for e in ("yml", "yaml", "toml", "json", "jsonc")
                         ) + (".lefthook", ".lefthook-local")  # its script folders
# The hooks git runs (githooks(5)): a hook runner's marks are looked for in these first.
GIT_HOOK_NAMES = (
    "applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
    "prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout",
    "post-merge", "pre-push", "pre-receive", "update", "proc-receive", "post-receive",
    "post-update", "reference-transaction", "push-to-checkout", "pre-auto-gc", "post-rewrite",
    "sendemail-validate", "fsmonitor-watchman", "post-index-change")


def config_entries(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs of one config file as git reads it (keys lower-cased), without
    following its includes. git itself parses when installed (case, same-line values, quotes,
    continuations); a small reader stands in otherwise.

    A file with nothing but blanks holds no keys (no git needed), and the same text always
    parses the same: a run's start pays for git once per distinct config, not per run."""
    if not text.strip():
        return []
    return list(_parsed_config(text))


@functools.lru_cache(maxsize=64)
def _parsed_config(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(_parse_config(text))


def _parse_config(text: str) -> list[tuple[str, str]]:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is not None:
        fd = os.memfd_create("gitconfig", 0)
        try:
            os.write(fd, text.encode())
            env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
                   "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}  # fmt: skip
            r = subprocess.run([git, "config", "--file", f"/dev/fd/{fd}", "--list", "--null"],
                               pass_fds=(fd,), env=env, capture_output=True, timeout=10)  # fmt: skip
        finally:
            os.close(fd)
        if r.returncode == 0:
            out = []
            for item in r.stdout.decode(errors="replace").split("\0"):
                key, _, value = item.partition("\n")
                if key:
                    out.append((key.lower(), value))
            return out
    out, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^\[([^\]]+)\]\s*(.*)$", line)
        if m:
            head = m.group(1).strip()
            name, _, sub = head.partition(" ")
            section = name.lower() + ("." + sub.strip().strip('"') if sub else "")
            line = m.group(2)
        if "=" in line and section:
            k, _, v = line.partition("=")
            out.append((f"{section}.{k.strip().lower()}", v.strip().strip('"')))
    return out


def named_path(value: str) -> str | None:
    """The path a value that is a path names (core.worktree, core.hooksPath): its first word."""
    words = _words(value)
    first = words[0] if words else ""
    return first if _path_like(first) else None


# Programs a config command may run that read a project file of their own (`!make lint` runs
# what the Makefile says).
PROJECT_FILES = {"make": ("GNUmakefile", "makefile", "Makefile"), "npm": ("package.json",),
                  "pnpm": ("package.json",), "yarn": ("package.json",), "npx": ("package.json",),
                  "just": ("justfile", "Justfile", ".justfile"), "rake": ("Rakefile", "rakefile")}
_SHELL_SPLIT = re.compile(r"[\s;&|(){}<>`'\"]+")  # where a shell ends a word, roughly


def named_paths(value: str) -> list[tuple[str, str]]:
    """Every file a command a config value gives git to run may name, as (path, kind): "path"
    for a word that looks like one (a `/` in it, or a leading `.`: read-only, or kept from
    being made); "file" for any other word, a `-m` module's files, a path after `$VAR/` or
    `$(...)`, one after `cd DIR` in DIR (read-only where such a file exists); "watch" for the
    files a build tool it names reads, in every name it looks for (`!make lint`: GNUmakefile,
    makefile, Makefile: the agent's to edit, named at the run's end if it did). Not its first
    word alone: `python3 tools/conv.py` runs conv.py, and the person's `git diff` ran the
    agent's rewrite of it (review s32, helpers 114, 118 and 119)."""
    found: dict[str, str] = {}
    rank = {"file": 0, "watch": 1, "path": 2}  # a build file named as a word: still the agent's

    def add(path: str, kind: str) -> None:
        if path and path not in (".", "..") and "://" not in path and not path.startswith("~"):
            if path not in found or rank[kind] > rank[found[path]]:
                found[path] = kind

    tokens = [t for t in _SHELL_SPLIT.split(value.strip().lstrip("!")) if t]
    folder = ""
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] == "cd":
            folder = "" if token.startswith("/") else token.rstrip("/") + "/"
            continue
        for name in PROJECT_FILES.get(token, ()):
            add(folder + name, "watch")
        for where, kind in _tool_options(token, tokens[i + 1:]):  # make -C DIR, npm --prefix DIR
            where = folder + where.rstrip("/")
            for path in [f"{where}/{n}" for n in PROJECT_FILES[token]] if kind == "dir" else [where]:
                add(path, "watch")
        if i and tokens[i - 1] == "-m":  # python -m pkg.mod
            base = folder + token.replace(".", "/")
            for path in (f"{base}.py", f"{base}/__init__.py", f"{base}/__main__.py"):
                add(path, "file")
        piece = token.partition("=")[2] if "=" in token else token
        bare = re.sub(r"^\$\{?\w*\}?/", "", piece)  # `$GIT_PREFIX/x`, and `$(...)/x` split above
        if bare.startswith("/"):
            add(bare, "path")
            add(folder + bare.lstrip("/"), "file")  # `$(git rev-parse --show-toplevel)/x`
        elif bare.startswith("-"):
            continue
        elif _path_like(bare) and bare == piece:
            add(folder + bare, "path")
        else:
            add(folder + bare, "file")
    return list(found.items())


_TOOL_DIRS = ("-C", "--directory", "--prefix", "--dir", "-d", "--working-directory")
_TOOL_FILES = ("-f", "--file", "--makefile", "--justfile")


def _tool_options(tool: str, rest: list[str]) -> list[tuple[str, str]]:
    """(where, "dir" or "file") a build tool's options point it to, among the words after it
    (read wide: each only makes a file watched, never read-only)."""
    if tool not in PROJECT_FILES:
        return []
    out = []
    for j, word in enumerate(rest):
        option, eq, value = word.partition("=")
        value = value if eq else (rest[j + 1] if j + 1 < len(rest) else "")
        if tool == "make" and option.startswith("-C") and len(option) > 2:
            out.append((option[2:], "dir"))  # -CDIR
        elif option in _TOOL_DIRS and value:
            out.append((value, "dir"))
        elif option in _TOOL_FILES and value:
            out.append((value, "file"))
    return out


def _words(value: str) -> list[str]:
    import shlex

    value = value.strip().lstrip("!").strip()
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def _path_like(word: str) -> bool:
    """A word that may name a file: a `/` in it or a leading `.`; not `~` (outside), a URL,
    or a format or pattern (`--format=%h/%s`: no placeholder is made for those)."""
    return ("/" in word or word.startswith(".")) and word not in (".", "..") and not word.startswith(
        "~") and "://" not in word and not any(c in word for c in "%$*?[")


def hook_config_files(script: str) -> list[str]:
    """The files a hook script hands a runner with `--config=FILE` (or `--config FILE`), read
    as the shell reads its words (pre-commit quotes a name with a space)."""
    import shlex

    out = []
    for line in script.splitlines():
        if "--config" not in line:
            continue
        try:
            words = shlex.split(line.replace("(", " ").replace(")", " "))
        except ValueError:
            words = line.split()
        for i, word in enumerate(words):
            if word.startswith("--config="):
                out.append(word[len("--config="):])
            elif word == "--config" and i + 1 < len(words):
                out.append(words[i + 1])
    return [o for o in out if o]


def read_whole(root_fd: int, rel: str, prefix: int = 0) -> str | None:
    """A regular file of the workspace (a config git reads whole) as text, opened without
    links; None when it is absent or not a regular file; SandboxError past CONFIG_MAX. With
    `prefix` (a hook, which may be a program) its first `prefix` bytes, never refused."""
    from .base import SandboxError
    from .fsview import read_beneath

    got = read_beneath(root_fd, rel, prefix or CONFIG_MAX + 1)
    if got is None:
        return None
    if not prefix and len(got[0]) > CONFIG_MAX:
        raise SandboxError(
            f"refusing to start: {rel} in the workspace is larger than {CONFIG_MAX >> 20} MiB, "
            "and git reads all of it: what it includes or runs could not all be made read-only",
            f"look at {rel} (a repository made in an earlier run may have padded it to hide an "
            "include or a program past its start); shorten or remove it, then start again",
        )
    return got[0].decode(errors="replace")


class NamedPaths:
    """The count of includes, commands and config files a start's git configs and hooks name,
    each resolved through the workspace: past CONFIG_ENTRIES_MAX the start is refused."""

    def __init__(self) -> None:
        self.count = 0

    def take(self, where: str) -> None:
        """One more, named in `where` (the file the refusal names)."""
        self.count += 1
        if self.count > CONFIG_ENTRIES_MAX:
            raise too_many_entries(where)


def too_many_entries(where: str) -> Exception:
    """The refusal of a start whose configs and hooks name more than CONFIG_ENTRIES_MAX includes,
    commands and config files, `where` the file that passed it."""
    from .base import SandboxError

    return SandboxError(
        f"refusing to start: the git configs and hooks in the workspace name more than "
        f"{CONFIG_ENTRIES_MAX:,} included files and commands (and config files hooks run with; "
        f"past it in {where} or what it includes), each of which must be made read-only",
        f"look at {where} (a repository made in an earlier run may have filled it with "
        "names to slow every start); remove what it should not name, then start again",
    )
