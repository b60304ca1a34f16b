"""Which workspace paths stay read-only inside a sandbox, and how they are found without links.

Three families, each a way a hostile agent (or the repository it works on) could reach code
that runs on the host later, or switch Pilothouse's controls off:

- Pilothouse's own: `.pilothouse.toml`.
- git's indirections, in every git folder of the workspace (`.git`, a `gitdir:` target inside
  the workspace, each submodule under `.git/modules`): config, config.worktree, commondir,
  hooks/, info/, worktrees/, modules/ (existing submodules stay usable), the object
  alternates, the `.git` files of submodule checkouts, and files that config includes. What
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
GIT_DIRS = ("hooks", "info", "worktrees")
GIT_FILES = ("config", "config.worktree", "commondir")
GIT_MODULES = "modules"


@dataclass
class Bind:
    rel: str  # path inside the workspace
    kind: str  # "ro" | "pin" (rw bind onto itself) | "mask-file" | "mask-dir"
    fd: int | None = None  # O_PATH fd of the real path (None for masks)


@dataclass
class Protection:
    binds: list[Bind] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # protected paths that were symbolic links
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
        self.binds.append(Bind(rel, kind, fd))


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


def _protect(p: Protection, root_fd: int, rel: str, want_dir: bool, pin: bool = False) -> int | None:
    """Bind rel read-only (or pinned) or mask it; returns the fd when it is a real folder."""
    fd, state = _open(root_fd, rel)
    if state == "link":
        p.links.append(rel)
        p.notes.append(
            f"{rel} is a symbolic link or lies under one: masked (the agent sees an empty "
            "read-only " + ("folder" if want_dir else "file") + "); the link was not followed"
        )
        p._add(rel, "mask-dir" if want_dir else "mask-file")
        return None
    if state == "absent":
        p._add(rel, "mask-dir" if want_dir else "mask-file")
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


_INCLUDE_PATH = re.compile(r"^\s*path\s*=\s*\"?([^\"\n]+?)\"?\s*$", re.M)
_SECTION = re.compile(r"^\s*\[([^\]]+)\]", re.M)
_WORKTREE = re.compile(r"^\s*worktree\s*=\s*\"?([^\"\n]+?)\"?\s*$", re.M)


def _config_includes(text: str) -> list[str]:
    """`path =` values of [include] and [includeIf ...] sections (what git would read next)."""
    found: list[str] = []
    sections = list(_SECTION.finditer(text))
    for i, sec in enumerate(sections):
        name = sec.group(1).strip().lower()
        if not (name == "include" or name.startswith("includeif")):
            continue
        end = sections[i + 1].start() if i + 1 < len(sections) else len(text)
        found.extend(m.group(1).strip() for m in _INCLUDE_PATH.finditer(text, sec.end(), end))
    return found


def _git_folder(p: Protection, root_fd: int, gd: str, depth: int = 0) -> None:
    """Protect one git folder (gd, workspace-relative) and, recursively, its submodules."""
    gd_fd = _protect(p, root_fd, gd, want_dir=True, pin=True)
    if gd_fd is None:
        return
    for name in GIT_FILES:
        _protect(p, root_fd, f"{gd}/{name}", want_dir=False)
    for name in GIT_DIRS:
        _protect(p, root_fd, f"{gd}/{name}", want_dir=True)
    info_fd, state = _open(root_fd, f"{gd}/objects/info")
    if info_fd is not None:
        os.close(info_fd)
        _protect(p, root_fd, f"{gd}/objects/info/alternates", want_dir=False)
    config = _read_small(root_fd, f"{gd}/config") or ""
    for inc in _config_includes(config):
        rel = _inside(gd, inc)
        if rel is not None:
            _protect(p, root_fd, rel, want_dir=False)
    worktree = _WORKTREE.search(config)
    if worktree:
        rel = _inside(gd, worktree.group(1).strip())
        if rel is not None:
            _protect(p, root_fd, f"{rel}/.git", want_dir=False)
    # Submodules: the modules folder read-only (no new ones), each existing one usable.
    modules_fd = _protect(p, root_fd, f"{gd}/{GIT_MODULES}", want_dir=True)
    if modules_fd is None or depth > 4:
        return
    for dirpath, dirnames, filenames in os.walk(f"/proc/self/fd/{modules_fd}"):
        rel_dir = os.path.relpath(dirpath, f"/proc/self/fd/{modules_fd}")
        if "HEAD" in filenames and rel_dir != ".":
            _git_folder(p, root_fd, f"{gd}/{GIT_MODULES}/{rel_dir}", depth + 1)
            dirnames[:] = []  # a module's own modules are handled by its recursion


def plan_protection(workspace: Path) -> Protection:
    """Open and plan every protected path of a workspace (see the module docstring)."""
    p = Protection()
    root_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel in OWN + AGENT_CONFIG_FILES:
            _protect(p, root_fd, rel, want_dir=False)
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
