"""Which workspace paths stay read-only inside a sandbox, and how they are found without links.

Three families, each a way a hostile agent (or the repository it works on) could reach code
that runs on the host later, or switch Pilothouse's controls off:

- Pilothouse's own: `.pilothouse.toml`.
- git's indirections, in every git folder of the workspace (`.git`, a `gitdir:` target inside
  the workspace, each submodule under `.git/modules`): config, config.worktree, commondir,
  hooks/, info/, worktrees/, modules/ (existing submodules stay usable), remotes/, branches/,
  the object alternates, the `.git` files of submodule checkouts, and in the workspace what
  config includes or names as a program or hook folder (core.hooksPath, core.fsmonitor,
  filters, aliases, helpers: see _CODE_KEYS). What
  git needs to commit, branch and fetch (objects, refs, logs, index, HEAD, the *_HEAD files,
  packed-refs, lock files) stays writable.
- Agents' and editors' project config: `.claude/`, `.codex/`, `.mcp.json`, `.vscode/`,
  `.idea/`, `.envrc`.

`plan_protection` opens every path with openat2 (no symbolic links anywhere on the way, never
outside the workspace) and returns what to bind where; a path that is a link, or lies under
one, is masked (an empty read-only file or folder), and the run's notes say so. Absent paths
are masked too, so the agent cannot create them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .fsview import open_beneath

OWN = (".pilothouse.toml",)
AGENT_CONFIG_DIRS = (".claude", ".codex", ".vscode", ".idea")
AGENT_CONFIG_FILES = (".mcp.json", ".envrc")
# Inside a git folder: what can redirect git or make it run code. Folders are masked as
# folders when absent.
GIT_DIRS = ("hooks", "info", "worktrees", "remotes", "branches")  # the last two: old remotes
GIT_FILES = ("config", "config.worktree", "commondir")
GIT_MODULES = "modules"
# A masked file some tool reads when present must still parse: git fails on an empty
# commondir ("." names the git folder itself, as if absent); Claude Code reads .mcp.json.
MASK_CONTENT = {"commondir": ".\n", ".mcp.json": "{}\n"}


@dataclass
class WalkResult:
    """`.git` entries below the top of a workspace, from a walk bounded in entries and time that
    never follows links; `cut` says why it stopped early, `unreadable` what it could not open."""

    found: list[str] = field(default_factory=list)
    cut: str = ""
    unreadable: list[str] = field(default_factory=list)

    def notes(self, when: str) -> list[str]:
        out = []
        if self.cut:
            out.append(f"the look for nested git repositories {when} stopped early ({self.cut}): "
                       "any beyond that point is neither protected nor reported")  # fmt: skip
        if self.unreadable:
            shown = ", ".join(self.unreadable[:5]) + (" …" if len(self.unreadable) > 5 else "")
            out.append(f"the look for nested git repositories {when} could not open "
                       f"{len(self.unreadable)} folder(s): {shown}")  # fmt: skip
        return out


# Bounds of the look for nested repositories (at a run's start and end).
NESTED_MAX_ENTRIES = 200_000
NESTED_MAX_SECONDS = 2.0


def find_nested_git(root_fd: int) -> WalkResult:
    """Every `.git` (folder or file) below the top, by descriptor, never through links."""
    import time

    max_entries, max_seconds = NESTED_MAX_ENTRIES, NESTED_MAX_SECONDS
    res = WalkResult()
    deadline = time.monotonic() + max_seconds
    seen = 0

    def failed(err: OSError) -> None:
        res.unreadable.append(os.path.relpath(str(err.filename or "?"), "."))

    for root, dirs, files, _dfd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False,
                                              onerror=failed):  # fmt: skip
        seen += len(dirs) + len(files)
        if seen > max_entries:
            res.cut = f"more than {max_entries:,} entries"
            break
        if time.monotonic() > deadline:
            res.cut = f"more than {max_seconds:g} s"
            break
        if ".git" in dirs or ".git" in files:
            if root != ".":
                res.found.append(os.path.normpath(os.path.join(root, ".git")))
            if ".git" in dirs:
                dirs.remove(".git")
    return res


@dataclass
class Bind:
    rel: str  # path inside the workspace
    kind: str  # "ro" | "pin" (rw bind onto itself) | "mask-file" | "mask-dir"
    fd: int | None = None  # O_PATH fd of the real path (None for masks)
    content: str = ""  # what a file mask holds (empty but where a tool must parse it)


@dataclass
class Protection:
    binds: list[Bind] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Protected paths that were symbolic links (or under one), with where the link leads inside
    # the workspace (read-only too: host tools follow the link) or None when it leads outside.
    links: dict[str, str | None] = field(default_factory=dict)
    # The walk for nested repositories: what it could not see (for the run's notes).
    walk: WalkResult | None = None
    _seen: set[str] = field(default_factory=set)

    def close(self) -> None:
        for b in self.binds:
            if b.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(b.fd)
                b.fd = None

    def ordered(self) -> list[Bind]:
        """Parents before children, so a child's bind lands on top of its parent's."""
        return sorted(self.binds, key=lambda b: b.rel.count("/"))

    def _add(self, rel: str, kind: str, fd: int | None = None) -> None:
        if rel in self._seen:
            if fd is not None:
                os.close(fd)
            return
        self._seen.add(rel)
        content = MASK_CONTENT.get(rel.rsplit("/", 1)[-1], "") if kind == "mask-file" else ""
        self.binds.append(Bind(rel, kind, fd, content))


def _open(root_fd: int, rel: str) -> tuple[int | None, str]:
    """(fd, "ok") | (None, "absent") | (None, "link")."""
    try:
        return open_beneath(root_fd, rel), "ok"
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None, "absent"
        if e.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            return None, "link"
        raise


def _link_target(root_fd: int, rel: str) -> str | None:
    """Where a path that crosses a link ends up, workspace-relative, or None when outside."""
    root = os.readlink(f"/proc/self/fd/{root_fd}")
    real = os.path.realpath(os.path.join(root, rel))
    if real == root or not real.startswith(root.rstrip("/") + "/"):
        return None
    return os.path.relpath(real, root)


def _protect(p: Protection, root_fd: int, rel: str, want_dir: bool, pin: bool = False,
             depth: int = 0, absent_as_dir: bool = False) -> int | None:  # fmt: skip
    """Bind rel read-only (or pinned) or mask it; returns the fd when it is a real folder."""
    fd, state = _open(root_fd, rel)
    if state == "link":
        # The link itself is masked inside the sandbox; its target inside the workspace is
        # protected too, because tools on the host follow the link to it.
        target = _link_target(root_fd, rel)
        p.links[rel] = target
        p._add(rel, "mask-dir" if want_dir else "mask-file")
        if target is not None and depth < 8:
            _protect(p, root_fd, target, want_dir, depth=depth + 1)
        return None
    if state == "absent":
        # Mask the first missing folder on the way, so the agent cannot create the path.
        parts = rel.split("/")
        for i in range(1, len(parts)):
            head = "/".join(parts[:i])
            head_fd, head_state = _open(root_fd, head)
            if head_fd is not None:
                os.close(head_fd)
                continue
            if head_state == "absent":
                p._add(head, "mask-dir")
                return None
            break  # a link on the way: _open of rel said absent only if it resolved
        p._add(rel, "mask-dir" if want_dir or absent_as_dir else "mask-file")
        return None
    assert fd is not None
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    p._add(rel, "pin" if (pin and is_dir) else "ro", fd)
    return fd if is_dir else None


def _read_small(root_fd: int, rel: str, limit: int = 1 << 16) -> str | None:
    fd, state = _open(root_fd, rel)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(f"/proc/self/fd/{fd}", "rb") as fh:
            return fh.read(limit).decode(errors="replace")
    finally:
        os.close(fd)


def _inside(base_rel: str, target: str) -> str | None:
    """A workspace-relative path for target (relative to base_rel), or None when outside."""
    joined = os.path.normpath(os.path.join(base_rel, target)) if not os.path.isabs(target) else None
    if joined is None or joined == ".." or joined.startswith("../") or joined == ".":
        return None
    return joined


# Config keys whose value names a program, a script or a folder git runs or reads code from.
# A value that points into the workspace makes that file (or folder) read-only: the config is
# protected, but a hook script it names would otherwise stay the agent's to rewrite.
_CODE_KEYS = re.compile(
    r"^(core\.(hookspath|fsmonitor|sshcommand|editor|pager|askpass|worktree)|sequence\.editor"
    r"|diff\.external|gpg(\..+)?\.program|credential(\..+)?\.helper"
    r"|filter\..+\.(clean|smudge|process)|diff\..+\.(textconv|command)|merge\..+\.driver"
    r"|(merge|diff)tool\..+\.cmd|alias\..+|uploadpack\.packobjectshook"
    r"|remote\..+\.(uploadpack|receivepack)|init\.templatedir)$"
)
_INCLUDE_KEY = re.compile(r"^include(if\..+)?\.path$")


def _config_entries(text: str) -> list[tuple[str, str]]:
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


def _named_path(value: str) -> str | None:
    """The file a config value names: its first word (an alias's after `!`), when it looks
    like a path."""
    import shlex

    value = value.strip().lstrip("!").strip()
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    first = words[0] if words else ""
    return first if ("/" in first or first.startswith(".")) and not first.startswith("~") else None


def _protect_config_targets(p: Protection, root_fd: int, gd: str, text: str) -> None:
    """Protect what a git folder's config includes or runs, where that lies in the workspace."""
    top = os.path.dirname(gd)  # the work tree's top: where git runs hooks and helpers
    for key, value in _config_entries(text):
        if _INCLUDE_KEY.match(key):
            rel = _inside(gd, value.strip()) if value.strip() else None
            if rel is not None:
                _protect(p, root_fd, rel, want_dir=False)
            continue
        if not _CODE_KEYS.match(key):
            continue
        named = _named_path(value)
        if named is None:
            continue
        if os.path.isabs(named):
            root = os.readlink(f"/proc/self/fd/{root_fd}")
            if not named.startswith(root.rstrip("/") + "/"):
                continue
            rel = os.path.relpath(named, root)
        else:
            base = gd if key == "core.worktree" else (top or ".")
            rel = _inside(base, named)
        if rel is None:
            continue
        if key == "core.worktree":
            _protect(p, root_fd, f"{rel}/.git", want_dir=False)
        else:
            _protect(p, root_fd, rel, want_dir=key == "core.hookspath")


def _git_folder(p: Protection, root_fd: int, gd: str, depth: int = 0) -> None:
    """Protect one git folder (gd, workspace-relative) and, recursively, its submodules."""
    gd_fd = _protect(p, root_fd, gd, want_dir=True, pin=True)
    if gd_fd is None:
        return
    for name in GIT_FILES:
        _protect(p, root_fd, f"{gd}/{name}", want_dir=False)
    for name in GIT_DIRS:
        _protect(p, root_fd, f"{gd}/{name}", want_dir=True)
    # Object alternates redirect where git reads objects from. objects/info is made when absent
    # (git's own layout; kept), so the alternates mask has a real folder to sit in.
    objects_fd, _state = _open(root_fd, f"{gd}/objects")
    if objects_fd is not None:
        with contextlib.suppress(FileExistsError, OSError):
            dfd = os.open(f"/proc/self/fd/{objects_fd}", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.mkdir("info", 0o755, dir_fd=dfd)
                st = os.fstat(gd_fd)
                os.chown("info", st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
        os.close(objects_fd)
        _protect(p, root_fd, f"{gd}/objects/info/alternates", want_dir=False)
    for name in GIT_FILES[:2]:  # config and config.worktree
        _protect_config_targets(p, root_fd, gd, _read_small(root_fd, f"{gd}/{name}") or "")
    # Submodules: the modules folder read-only (no new ones), each existing one usable.
    modules_fd = _protect(p, root_fd, f"{gd}/{GIT_MODULES}", want_dir=True)
    if modules_fd is None or depth > 4:
        return
    for dirpath, dirnames, filenames in os.walk(f"/proc/self/fd/{modules_fd}"):
        rel_dir = os.path.relpath(dirpath, f"/proc/self/fd/{modules_fd}")
        if "HEAD" in filenames and rel_dir != ".":
            _git_folder(p, root_fd, f"{gd}/{GIT_MODULES}/{rel_dir}", depth + 1)
            dirnames[:] = []  # a module's own modules are handled by its recursion


def plan_protection(workspace: Path | int) -> Protection:
    """Open and plan every protected path of a workspace (its path, or an O_PATH descriptor
    this function does not close; see the module docstring)."""
    p = Protection()
    if isinstance(workspace, int):
        root_fd = os.dup(workspace)
    else:
        root_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel in OWN + AGENT_CONFIG_FILES:
            # Absent, an empty read-only folder stands there: it blocks the file as well as an
            # empty file would, and git shows no empty folder, so `git status` and an agent's
            # `git add -A` inside see nothing new (an empty file would be committed).
            _protect(p, root_fd, rel, want_dir=False, absent_as_dir=True)
        for rel in AGENT_CONFIG_DIRS:
            _protect(p, root_fd, rel, want_dir=True)
        fd, state = _open(root_fd, ".git")
        if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            _protect(p, root_fd, ".git", want_dir=False)  # the `gitdir:` file itself
            text = _read_small(root_fd, ".git") or ""
            if text.startswith("gitdir:"):
                rel = _inside(".", text[len("gitdir:"):].strip())
                if rel is not None:
                    _git_folder(p, root_fd, rel)
        else:
            if fd is not None:
                os.close(fd)
            # Absent: masked, so the agent cannot make one whose config the host would read.
            _git_folder(p, root_fd, ".git")
        # Repositories nested anywhere below (vendored, or made by an earlier run): git on the
        # host reads their config as soon as a person's prompt enters the folder.
        p.walk = find_nested_git(root_fd)
        for rel in p.walk.found:
            nested_fd, _state = _open(root_fd, rel)
            if nested_fd is None:
                continue
            is_dir = stat.S_ISDIR(os.fstat(nested_fd).st_mode)
            os.close(nested_fd)
            if is_dir:
                _git_folder(p, root_fd, rel)
            else:
                _protect(p, root_fd, rel, want_dir=False)
        gitmodules = _read_small(root_fd, ".gitmodules") or ""
        for m in re.finditer(r"^\s*path\s*=\s*(.+?)\s*$", gitmodules, re.M):
            rel = _inside(".", m.group(1).strip('"'))
            if rel is not None:
                sub_fd, state = _open(root_fd, f"{rel}/.git")
                if sub_fd is not None:
                    os.close(sub_fd)
                    _protect(p, root_fd, f"{rel}/.git", want_dir=False)
    except BaseException:
        p.close()
        raise
    finally:
        os.close(root_fd)
    return p
