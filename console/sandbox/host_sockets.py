"""Host services' unix sockets and named pipes in a workspace, covered at a run's start (view.py).

A unix socket is reached by its path, whatever the network namespace: a service on the host
listening in the workspace (a dev server's gunicorn or php-fpm socket, supervisord's, a
database's run folder inside the project) answered the agent, past the gate (review h167), and
so did a program reading a named pipe there. The look for nested repositories lists what is
neither folder, file nor link (nested.WalkResult); each socket or pipe among them is covered by
an empty read-only file, so a connect finds no socket and a write no pipe.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .fsview import open_beneath


def sockets(root_fd: int, special: list[str]) -> list[str]:
    """The sockets and named pipes among `special` (paths below the top), reached without links."""
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
                if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                    out.append(rel)
        finally:
            os.close(pfd)
    return out


def note(rels: list[str]) -> list[str]:
    if not rels:
        return []
    shown = ", ".join(rels[:5]) + (f" and {len(rels) - 5} more" if len(rels) > 5 else "")
    return [f"unix socket(s) and named pipe(s) in the workspace covered, so the agent cannot talk "
            f"to what listens there: {shown}; one a program on the host makes there during the "
            "run is not"]
