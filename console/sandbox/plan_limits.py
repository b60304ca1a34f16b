"""How many paths one run's start may protect, and the refusal past that.

Each protected path is a mount of its own: bubblewrap's, the engine's, or, under a root daemon,
two in the host's own mount table (the staged view and the run folder handed to the agent's
uid). Most sources are bounded where they are read (nested repositories, hard links, links in
read-only folders), but not every one: the submodules an index lists that are not checked out
were one mount each (review s20: a repository whose index lists 2,500 put 5,000 mounts in the
host's table while the run lived; the kernel takes 100,000 per namespace, fs.mount-max, and
past it every mount on the host fails). A start that needs more is refused before anything is
made or mounted: fail closed, and say where the paths are.
"""

from __future__ import annotations

import os
from collections import Counter

from .base import SandboxError

# A repository with 64 nested ones (protect.NESTED_GIT_MAX), each with its hooks and config
# targets, stays far below; a host with 40 such runs at once stays below fs.mount-max.
PROTECTED_MAX = 2048


def too_many(rels: list[str], gitlinks: int) -> SandboxError | None:
    """The refusal for a plan of `rels` (workspace-relative paths), `gitlinks` of them
    submodules the index lists and are not checked out (counted up to PROTECTED_MAX + 1);
    None within the bound."""
    if len(rels) <= PROTECTED_MAX:
        return None
    folder, count = Counter(os.path.dirname(r) or "." for r in rels).most_common(1)[0]
    many = f"more than {PROTECTED_MAX:,}" if gitlinks > PROTECTED_MAX else f"{gitlinks:,}"
    why = (f"{many} of them are submodules the git index lists that are not checked out; "
           if gitlinks else "")
    return SandboxError(
        f"refusing to start: the workspace has more than {PROTECTED_MAX:,} paths to protect "
        f"(each is a mount of its own while the run lives); {why}{count:,} lie in {folder!r}",
        "check the submodules out before the run (git submodule update --init) or drop them "
        "from the index (git rm --cached PATH); remove links from .claude, .vscode and git "
        "folders; then start the run again",
    )
