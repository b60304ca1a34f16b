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


# Links the kernel follows for one path before it gives up (ELOOP): a chain past it leads
# nowhere a program on the host could reach either.
MAX_LINKS = 40


def link_target(root_fd: int, rel: str, via: list[str] | None = None) -> str | None:
    """Where a path that crosses a link ends up, workspace-relative, or None when outside (or
    past MAX_LINKS links). `via` gets the workspace's links it went through, workspace-relative
    (an agent that replaces one on the way points the path elsewhere: review s30)."""
    root = workspace_root(root_fd)
    passed: list[str] = []
    real = real_path(os.path.join(root, rel), passed)
    if via is not None:
        via += [os.path.relpath(x, root) for x in passed if x.startswith(root + "/")]
    if real is None or real == root or not real.startswith(root + "/"):
        return None
    return os.path.relpath(real, root)


def real_path(path: str, via: list[str] | None = None) -> str | None:
    """os.path.realpath of an absolute path (a missing name and what follows it are kept as
    written), one name at a time and without recursion: None past MAX_LINKS links. Python
    3.11's realpath recurses once per link, so a chain of 3,000 the agent made raised
    RecursionError out of a run's end look, and every note of it was lost (review s30)."""
    resolved, pending, links = "/", [n for n in reversed(path.split("/")) if n], 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        here = os.path.join(resolved, name)
        try:
            target = os.readlink(here)
        except OSError:  # not a link, or not there: the name stays as it is
            resolved = here
            continue
        links += 1
        if links > MAX_LINKS:
            return None
        if via is not None:
            via.append(here)
        if target.startswith("/"):
            resolved = "/"
        pending.extend(n for n in reversed(target.split("/")) if n)
    return resolved


def link_targets(root_fd: int, fd: int, rel: str,
                 budget: LookBudget) -> Iterator[tuple[str, bool, list[str]]]:  # fmt: skip
    """(where it leads, whether that is a folder, the other links of the workspace on the way)
    for each link below the protected folder `rel` (open as `fd`) that leads inside the
    workspace, while `budget` lasts."""
    for path, link_rel in budget.entries(fd, rel):
        if os.path.islink(path):
            via: list[str] = []
            target = link_target(root_fd, link_rel, via)
            if target is not None:
                yield target, os.path.isdir(path), [v for v in via if v != link_rel]


def inside_workspace(base_rel: str, target: str, root_fd: int | None = None) -> str | None:
    """A workspace-relative path for target (relative to base_rel, or absolute under the
    workspace when root_fd is given: git writes absolute `gitdir:` lines and includes), or None
    when outside."""
    if os.path.isabs(target):
        if root_fd is None:
            return None
        root = workspace_root(root_fd)
        target = os.path.normpath(target)
        if not target.startswith(root + "/"):
            return None
        return os.path.relpath(target, root)
    joined = os.path.normpath(os.path.join(base_rel, target))
    if joined == ".." or joined.startswith("../") or joined == ".":
        return None
    return joined
