"""Sockets, named pipes and device nodes in a workspace, covered at a run's start (view.py).

A unix socket is reached by its path, whatever the network namespace: a service on the host
listening in the workspace (a dev server's gunicorn or php-fpm socket, supervisord's, a
database's run folder inside the project) answered the agent, past the gate (review h167), and
so did a program reading a named pipe there. A device node there (a root file system's
dev/console) opened under a person's daemon's Docker run: the engine binds the workspace's path
without nodev, and its device list allows the console. The look for nested repositories lists
what is neither folder, file nor link (nested.WalkResult); each of these is covered by an empty
read-only file, so a connect finds no socket, a write no pipe, an open no device.

A socket keeps answering when its folder is renamed or made unreadable, and the walk does not
look below WALK_MAX_DEPTH nor into a folder it cannot open: an earlier run's agent moved a host
service's socket folder 260 folders down, or took read and search off it (a person's daemon, the
agent's own uid, could not open it; the next run's agent gave them back), and the next run
reached the service (review h184). Such folders are covered by an empty read-only folder.
"""

from __future__ import annotations

import errno
import os
import stat

from .fsview import open_beneath
from .nested import WALK_MAX_DEPTH

KINDS = (stat.S_ISSOCK, stat.S_ISFIFO, stat.S_ISCHR, stat.S_ISBLK)
# A mask's path goes to bubblewrap and the engine as text: below PATH_MAX, an ancestor is
# covered instead (everything below it unseen too).
PATH_BYTES = 3800


def special_files(root_fd: int, special: list[str], pruned: list[str]) -> list[str]:
    """The sockets, named pipes and devices among `special` (paths below the top), reached
    without links. The folder of one that cannot be looked at goes on `pruned` (unlooked): an
    earlier run's agent took search, not read, off it (a person's daemon, the agent's uid,
    listed the socket but could not look at it; the next run's agent gave search back and
    reached the service: review h187)."""
    out: list[str] = []
    for rel in special:
        parent, name = os.path.split(rel)
        try:
            pfd = open_beneath(root_fd, parent or ".")
        except OSError:
            continue  # under a link or gone: nothing of it shows inside
        try:
            mode = os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM) and parent:
                pruned.append(parent)
            continue  # gone meanwhile
        finally:
            os.close(pfd)
        if any(kind(mode) for kind in KINDS):
            out.append(rel)
    return out


def unlooked(pruned: list[str]) -> list[str]:
    """The folders to cover for those the walk did not look into (nested.WalkResult.pruned),
    none below another."""
    out: list[str] = []
    kept: set[str] = set()
    # Each against its own ancestors, not every folder kept: an earlier run's agent made 20,000
    # folders no one may open, and comparing each with all took the start 60 s (review h187).
    for rel in sorted(pruned, key=len):
        while len(rel.encode(errors="surrogateescape")) > PATH_BYTES and "/" in rel:
            rel = rel.rsplit("/", 1)[0]
        up = rel
        while up and up not in kept:
            up = os.path.dirname(up)
        if not up:  # no ancestor (nor itself) kept
            kept.add(rel)
            out.append(rel)
    return out


def unlooked_note(rels: list[str], cut: str = "") -> list[str]:
    """Notes on the folders covered, and on a walk stopped early (`cut`, WalkResult.cut): past
    that point nothing is covered (covering the rest would hide a large repository's own
    folders), which the person is told."""
    out = []
    if cut and "deep" not in cut:
        out.append(f"the look for sockets and named pipes in the workspace stopped early ({cut}):"
                   " one beyond that point (a service on this host listening there) is not "
                   "covered, and the agent can reach it; keep such sockets outside the workspace")
    if not rels:
        return out
    shown = ", ".join(rels[:3]) + (f" and {len(rels) - 3} more" if len(rels) > 3 else "")
    return [*out, f"folders the start could not look through (unreadable, or more than "
            f"{WALK_MAX_DEPTH} deep) are covered by an empty read-only folder, so no socket or "
            f"pipe hidden there is reached: {shown}; make them readable (or shallower) to see "
            "them in the next run"]


def note(rels: list[str]) -> list[str]:
    if not rels:
        return []
    shown = ", ".join(rels[:5]) + (f" and {len(rels) - 5} more" if len(rels) > 5 else "")
    return [f"sockets, named pipes and device nodes in the workspace covered, so the agent cannot "
            f"talk to what listens there or open a device: {shown}; one a program on the host "
            "makes there during the run is not"]
