"""Whether another user can change the folders a person's daemon names to the Docker engine.

A daemon run by a person cannot mount, so Docker gets paths (the workspace, each protected path
in it, the run folder), each checked just before without links (openat2). The engine mounts them
as root and follows every link on the way. A user who can write a folder on one of those paths
(a teammate who asked for the run: a workspace must be writable by whoever asks; anyone with
write access to a shared folder) can rename an entry away and put a link in its place between
the check and the mount: the container, which runs as the daemon's owner, then reads and writes
what the link names with the owner's rights (review s20: a link put over `.claude` showed the
owner's private folder to the run). No check the daemon makes can close that window, so such a
daemon refuses a Docker run while any folder on those paths can be changed by someone else.

Root counts as no one else. A folder can be changed by another user when another user owns it
(they may make it writable at any time), or its mode bits or ACL let another user write it; a
sticky folder (/tmp) is safe for an entry owned by this user or root, which others cannot
rename or remove.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

from .acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, read_acl
from .base import SandboxError
from .fsview import open_beneath

WRITE = 2


def _group_has_others(gid: int, me: int) -> bool:
    """Someone other than this user (and root) is in the group, by name or as primary group."""
    try:
        mine = pwd.getpwuid(me).pw_name
    except KeyError:
        mine = ""
    try:
        if set(grp.getgrgid(gid).gr_mem) - {mine, "root"}:
            return True
    except KeyError:
        return True  # a group without a name: who is in it cannot be told
    return any(p.pw_gid == gid and p.pw_uid not in (0, me) for p in pwd.getpwall())


def _others_may_write(where: str | int, st: os.stat_result, me: int) -> str:
    """Why a user other than `me` and root can change the folder (a path or a descriptor),
    or "" when no one can."""
    if st.st_uid not in (0, me):
        return f"it belongs to uid {st.st_uid}"
    acl = read_acl(where)
    if acl is None:
        mode = stat.S_IMODE(st.st_mode)
        if mode & stat.S_IWOTH:
            return "every user may write it"
        if mode & stat.S_IWGRP and _group_has_others(st.st_gid, me):
            return f"its group (gid {st.st_gid}) may write it"
        return ""
    mask = next((perm for tag, perm, _ in acl if tag == MASK), 7)
    for tag, perm, who in acl:
        if tag == OTHER and perm & WRITE:
            return "every user may write it"
        if tag == USER and who not in (0, me) and perm & mask & WRITE:
            return f"its ACL lets uid {who} write it"
        group = st.st_gid if tag == GROUP_OBJ else who
        if tag in (GROUP_OBJ, GROUP) and perm & mask & WRITE and _group_has_others(group, me):
            return f"its ACL lets group {group} write it"
    return ""


def _entry_is_pinned(folder: os.stat_result, child: os.stat_result | None, me: int) -> bool:
    """A sticky folder keeps an entry of this user's or root's from being renamed or removed."""
    return bool(folder.st_mode & stat.S_ISVTX) and child is not None and child.st_uid in (0, me)


def _host_chain(path: Path, me: int) -> tuple[str, str] | None:
    """(folder, why) for the first folder from / down to `path`'s parent that another user can
    change, or None."""
    parts = Path(path).parts
    for i in range(1, len(parts)):
        folder = os.path.join(*parts[:i])
        try:
            st = os.lstat(folder)
            child = os.lstat(os.path.join(folder, parts[i]))
        except OSError as e:
            return folder, f"it could not be looked at ({e.strerror})"
        why = _others_may_write(folder, st, me)
        if why and not _entry_is_pinned(st, child, me):
            return folder, why
    return None


def _workspace_chain(workspace: Path, ws_fd: int, rels: Iterable[str],
                     me: int) -> tuple[str, str] | None:  # fmt: skip
    """The same for the folders inside the workspace on the way to each path in `rels`."""
    seen: set[str] = set()
    for rel in rels:
        parts = rel.split("/")
        for i in range(len(parts)):
            folder = "/".join(parts[:i])
            if folder in seen:
                continue
            seen.add(folder)
            shown = str(workspace / folder) if folder else str(workspace)
            try:
                fd = open_beneath(ws_fd, folder) if folder else os.dup(ws_fd)
            except OSError:
                return shown, "it is a link now, or gone"
            try:
                st = os.fstat(fd)
                child = None
                with contextlib.suppress(OSError):
                    child = os.stat(parts[i], dir_fd=fd, follow_symlinks=False)
                why = _others_may_write(fd, st, me)
            finally:
                os.close(fd)
            if why and not _entry_is_pinned(st, child, me):
                return shown, why
    return None


def changeable_by_others(workspace: Path, ws_fd: int, rels: Iterable[str],
                         run_dir: Path) -> SandboxError | None:  # fmt: skip
    """The refusal of a Docker run under a person's daemon when a folder on the paths the engine
    is given (the workspace's, `rels` inside it, the run folder's) can be changed by another
    user; None when none can."""
    me = os.geteuid()
    found = (_host_chain(workspace, me) or _workspace_chain(workspace, ws_fd, list(rels), me)
             or _host_chain(run_dir, me))  # fmt: skip
    if found is None:
        return None
    folder, why = found
    return SandboxError(
        f"refusing a Docker run: {folder} can be changed by another user ({why}). The Docker "
        "engine follows every link on the paths this daemon gives it, as root: a link put there "
        "after this daemon's check would show the run what it names, with your rights",
        'use sandbox = "bwrap" (it is given opened folders, not paths), run the daemon as '
        "root (it gives the engine a view it made itself), or work in a folder only you can "
        "write (chmod go-w, or ask its owner)",
    )


def unnameable(rels: Iterable[str]) -> SandboxError | None:
    """The refusal of a Docker run under a person's daemon when a path it would give the engine
    is not UTF-8: the engine's API is JSON, which cannot carry such a name (docker-py sent
    `\\udcff`, read as U+FFFD), so a mask went on another path, made for it in the workspace,
    and the real one (a host service's socket) stayed open (review h184)."""
    for rel in rels:
        try:
            rel.encode()
        except UnicodeEncodeError:
            shown = rel.encode(errors="surrogateescape").decode(errors="backslashreplace")
            return SandboxError(
                f"refusing a Docker run: '{shown}' in the workspace has a name that is not UTF-8, "
                "which the Docker engine cannot be given, and it must be covered or read-only",
                'rename it (convmv, or mv with the name in $\'...\' quotes), use sandbox = '
                '"bwrap", or run the daemon as root',
            )
    return None


def bridge_refusal(client: object) -> SandboxError | None:
    """Why a daemon that is not root cannot run this engine's containers, or None. Rootful
    Docker makes each container's network namespace root's: such a daemon cannot put the gate's
    bridge there, so every run failed, but only after the engine had mounted the paths it was
    given and started the container, and an image without /bin/sh (no wait for the go line) ran
    the agent's command meanwhile (review h141). Refused before anything is made."""
    if os.geteuid() == 0:
        return None
    options = client.info().get("SecurityOptions") or []  # type: ignore[attr-defined]
    if any(o.split(",")[0].removeprefix("name=") == "rootless" for o in options):
        return None
    return SandboxError(
        "refusing a Docker run: the Docker engine is rootful and this daemon is not root, so it "
        "cannot put the network bridge into the container (nothing was started)",
        'use rootless Docker (dockerd-rootless-setuptool.sh install), sandbox = "bwrap", or '
        "run the daemon as root",
    )
