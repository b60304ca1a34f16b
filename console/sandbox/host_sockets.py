"""Host services' unix sockets in a workspace, covered at a run's start (view.py).

A unix socket is reached by its path, whatever the network namespace: a service on the host
listening in the workspace (a dev server's gunicorn or php-fpm socket, supervisord's, a
database's run folder inside the project) answered the agent, past the gate (review h167). The
look for nested repositories lists what is neither folder, file nor link (nested.WalkResult);
each socket among them is covered by an empty read-only file, so a connect finds no socket.
"""

from __future__ import annotations

import contextlib
import os
import stat

from .fsview import open_beneath


def sockets(root_fd: int, special: list[str]) -> list[str]:
    """The sockets among `special` (paths below the top), reached without links."""
    out: list[str] = []
    for rel in special:
        parent, name = os.path.split(rel)
        try:
            pfd = open_beneath(root_fd, parent or ".")
        except OSError:
            continue  # under a link or gone: nothing of it shows inside
        try:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
                    out.append(rel)
        finally:
            os.close(pfd)
    return out


def note(rels: list[str]) -> list[str]:
    if not rels:
        return []
    shown = ", ".join(rels[:5]) + (f" and {len(rels) - 5} more" if len(rels) > 5 else "")
    return [f"unix socket(s) in the workspace covered, so the agent cannot talk to what listens "
            f"there: {shown}; one a program on the host makes there during the run is not"]
