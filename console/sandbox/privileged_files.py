"""Root's files an id-mapped workspace must not let the agent write, found at a run's start so the
view binds each read-only (view.py).

Under a root daemon a root-owned workspace is id-mapped: root's files are the agent's own inside
the run, and what it writes lands as root's (review h167 found two ways past that):

- set-id and capability-bearing files: seccomp refuses new set-id bits (seccomp.py), and the
  kernel takes set-user-ID, set-group-ID and security.capability off a file written with
  write(2) by a writer without CAP_FSETID, but not off one written through a shared mapping: an
  agent replaced the code of a set-id root binary already there (a root file system being
  built, a `make install DESTDIR=` run as root) through mmap, and it stayed set-id, or kept its
  file capabilities, for whoever runs it on the host;
- files with a name outside the workspace (hard links: a root file system made with `cp -al`,
  backups made with `rsync --link-dest`, a `git clone` from a repository on the same disk, which
  links its objects): writing the name inside wrote root's file outside.

Bounded as the look for nested repositories is, never through links.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field

from .base import SandboxError
from .nested import NESTED_MAX_ENTRIES, NESTED_MAX_SECONDS, WALK_MAX_DEPTH, too_deep, walk_below

CAP_XATTR = "security.capability"
SET_ID = stat.S_ISUID | stat.S_ISGID
# Names of files linked from outside bound read-only at one start; a fresh `git clone` of a
# loose repository links every object, and each name is a mount: past this the run is refused.
LINKED_OUT_MAX = 256


@dataclass
class Privileged:
    set_id: list[str] = field(default_factory=list)  # set-id or with file capabilities
    linked_out: list[str] = field(default_factory=list)  # a name of theirs is outside
    cut: str = ""  # why the look stopped early, or ""


def _has_capabilities(dir_fd: int, name: str) -> bool:
    try:  # lgetxattr: a link swapped in since the lstat is not followed
        os.getxattr(f"/proc/self/fd/{dir_fd}/{name}", CAP_XATTR, follow_symlinks=False)
    except OSError:
        return False
    return True


def find_privileged(root_fd: int) -> Privileged:
    """The regular files below the top (relative to it) that are set-id, carry file capabilities,
    or have more names than the workspace holds."""
    res = Privileged()
    names: dict[tuple[int, int], tuple[int, list[str]]] = {}  # (dev, ino): (links, names here)
    deadline = time.monotonic() + NESTED_MAX_SECONDS
    seen = 0
    for root, dirs, files, dfd in walk_below(root_fd):
        seen += len(dirs) + len(files)
        if seen > NESTED_MAX_ENTRIES:
            res.cut = f"more than {NESTED_MAX_ENTRIES:,} entries"
            break
        if time.monotonic() > deadline:
            res.cut = f"more than {NESTED_MAX_SECONDS:g} s"
            break
        for name in files:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.normpath(os.path.join(root, name))
            if st.st_mode & SET_ID or _has_capabilities(dfd, name):
                res.set_id.append(rel)
            if st.st_nlink > 1:
                names.setdefault((st.st_dev, st.st_ino), (st.st_nlink, []))[1].append(rel)
        if too_deep(root, dirs):
            res.cut = res.cut or f"folders more than {WALK_MAX_DEPTH} deep"
    # A look cut short may not have met every name inside: such files are taken as linked out.
    res.linked_out = [r for links, rels in names.values() if len(rels) < links for r in rels]
    return res


def too_many_linked_out(found: Privileged) -> SandboxError | None:
    if len(found.linked_out) <= LINKED_OUT_MAX:
        return None
    shown = ", ".join(sorted(found.linked_out)[:3])
    return SandboxError(
        f"{len(found.linked_out)} of root's files in this workspace have other names outside it "
        f"(hard links: {shown}, ...); the agent would write them as root through the workspace, "
        f"and at most {LINKED_OUT_MAX} can be made read-only",
        "break the links (a `git clone` from the same disk links its objects: clone with "
        "--no-hardlinks, or run `git repack -a -d` there; other files: copy them over "
        "themselves), or give the workspace to an ordinary user (chown -R)",
    )


def notes(found: Privileged) -> list[str]:
    out = [f"{rel} has a name outside the workspace (a hard link): read-only, as root's file "
           "there would be written through it" for rel in found.linked_out[:5]]  # fmt: skip
    if len(found.linked_out) > 5:
        out.append(f"... and {len(found.linked_out) - 5} more files linked from outside: read-only")
    if found.cut:
        out.append(f"the look for set-id files and files linked from outside stopped early "
                   f"({found.cut}): any beyond that point stays writable to the agent (look for "
                   "them with `find . -perm /6000 -o -links +1` before running anything from "
                   "this folder as root)")  # fmt: skip
    return out
