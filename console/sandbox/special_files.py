"""Sockets, named pipes and device nodes in a workspace, covered at a run's start (view.py).

A unix socket is reached by its path, whatever the network namespace: a service on the host
listening in the workspace (a dev server's gunicorn or php-fpm socket, supervisord's, a
database's run folder inside the project) answered the agent, past the gate (review h167), and
so did a program reading a named pipe there. A device node there (a root file system's
dev/console) opened under a person's daemon's Docker run: the engine binds the workspace's path
without nodev, and its device list allows the console. The look for nested repositories lists
what is neither folder, file nor link (nested.WalkResult); each of these is covered by an empty
read-only file, so a connect finds no socket, a write no pipe, an open no device.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .fsview import open_beneath

KINDS = (stat.S_ISSOCK, stat.S_ISFIFO, stat.S_ISCHR, stat.S_ISBLK)


def special_files(root_fd: int, special: list[str]) -> list[str]:
    """The sockets, named pipes and devices among `special` (paths below the top), reached
    without links."""
    out: list[str] = []
    for rel in special:
        parent, name = os.path.split(rel)
        try:
            pfd = open_beneath(root_fd, parent or ".")
        except OSError:
            continue  # under a link or gone: nothing of it shows inside
        try:
            with contextlib.suppress(OSError):
                mode = os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode
                if any(kind(mode) for kind in KINDS):
                    out.append(rel)
        finally:
            os.close(pfd)
    return out


def note(rels: list[str]) -> list[str]:
    if not rels:
        return []
    shown = ", ".join(rels[:5]) + (f" and {len(rels) - 5} more" if len(rels) > 5 else "")
    return [f"sockets, named pipes and device nodes in the workspace covered, so the agent cannot "
            f"talk to what listens there or open a device: {shown}; one a program on the host "
            "makes there during the run is not"]
