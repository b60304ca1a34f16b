"""Symbolic links in read-only protected folders, and where they lead inside the workspace.

A read-only folder's links are names only: host tools follow them (`.git/hooks/pre-commit` ->
`../../scripts/pre-commit`), so protect.py makes where they lead read-only too. The look for
them at a run's start is bounded like the look for hard links (aliases.LookBudget: entries per
folder and in all). The links in a folder it did not look through whole are not followed at
the start; where they lead is looked at when the run ends instead (watch.changed_behind_links),
and a change there is reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .aliases import LookBudget


def workspace_root(root_fd: int) -> str:
    """The workspace's path, without a trailing slash (its descriptor is what is trusted)."""
    return os.readlink(f"/proc/self/fd/{root_fd}").rstrip("/") or "/"


def link_target(root_fd: int, rel: str) -> str | None:
    """Where a path that crosses a link ends up, workspace-relative, or None when outside."""
    root = workspace_root(root_fd)
    real = os.path.realpath(os.path.join(root, rel))
    if real == root or not real.startswith(root + "/"):
        return None
    return os.path.relpath(real, root)


def link_targets(root_fd: int, fd: int, rel: str,
                 budget: LookBudget) -> Iterator[tuple[str, bool]]:  # fmt: skip
    """(where it leads, whether that is a folder) for each link below the protected folder `rel`
    (open as `fd`) that leads inside the workspace, while `budget` lasts."""
    for path, link_rel in budget.entries(fd, rel):
        if os.path.islink(path):
            target = link_target(root_fd, link_rel)
            if target is not None:
                yield target, os.path.isdir(path)
