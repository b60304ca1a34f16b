"""Other names (hard links) of protected files, found in the workspace so they are protected too.

A read-only bind covers one name of a file; a hard link elsewhere in the work tree is the same
inode under a writable name (`ln scripts/pre-commit .git/hooks/pre-commit`, or a second name the
agent gave a config it wrote in an earlier run). Inside the sandbox no new link to a bound file
can be made (link(2) across mounts fails), so only names there at the start matter to the
binds; a name made later by a sibling run (for which the file was not protected), or one in a
folder the look could not open, is caught at the run's end (watch.py).

The look through the read-only folders is bounded (LookBudget); the look for symbolic links in
them (links.py) is bounded by one of its own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .fsview import open_beneath
from .nested import too_deep, walk_below

DIR_ENTRIES_MAX = 2000  # per protected folder, here and in the look for symbolic links
# All protected folders together: a workspace of a hundred big `.claude` folders must not cost
# each start seconds (a change past the bound is still reported at the end: watch.py).
ALL_ENTRIES_MAX = 20_000
ALIAS_MAX = 64  # other names bound read-only; past it the protected file is watched instead
# An other name whose path is longer is watched, not bound: a bind names it (bwrap's and the
# engine's destinations, openat2) and the kernel refuses paths past PATH_MAX (4096).
ALIAS_PATH_MAX = 2048


@dataclass
class Aliases:
    found: dict[str, str] = field(default_factory=dict)  # other name -> protected name
    unseen: set[str] = field(default_factory=set)  # protected names whose look was cut short
    unreadable: list[str] = field(default_factory=list)  # folders the look could not open


@dataclass
class LookBudget:
    """What one look through the read-only protected folders at a run's start may read:
    DIR_ENTRIES_MAX entries in each folder, ALL_ENTRIES_MAX in all. Shared by the look for hard
    links (linked_files) and the one for symbolic links (links.py), one budget each; `cut`
    names every folder not looked through whole, for one note."""

    total: int = 0
    cut: list[str] = field(default_factory=list)

    def entries(self, fd: int, rel: str, skip_objects: bool = False) -> Iterator[tuple[str, str]]:
        """(path through /proc/self/fd, path in the workspace) of each entry below a protected
        folder (its descriptor), never through links, while the budget lasts. `skip_objects`:
        pass over a git folder's objects (beside its HEAD)."""
        if self.total > ALL_ENTRIES_MAX:
            self.cut.append(rel)
            return
        top, seen = f"/proc/self/fd/{fd}", 0
        try:
            for root, dirnames, filenames, _ in walk_below(fd, most=DIR_ENTRIES_MAX + 1):
                if skip_objects and "HEAD" in filenames:
                    dirnames[:] = [d for d in dirnames if d != "objects"]
                names = dirnames + filenames
                if too_deep(root, dirnames) and rel not in self.cut:
                    self.cut.append(rel)  # not looked through whole: said so, and watched
                for name in names:
                    seen += 1
                    if seen > DIR_ENTRIES_MAX:
                        self.cut.append(rel)
                        return
                    inside = os.path.normpath(os.path.join(root, name))
                    yield f"{top}/{inside}", os.path.normpath(os.path.join(rel, inside))
        finally:
            self.total += seen


def linked_files(binds: list) -> tuple[dict[tuple[int, int], str], list[str]]:
    """(device, inode) -> protected name, for each read-only protected file with more than one
    link: a bound file, or one inside a bound folder; and the bound folders too big to be
    looked through whole (LookBudget), so the run's notes can say so."""
    out: dict[tuple[int, int], str] = {}
    budget = LookBudget()
    for b in binds:
        if b.kind != "ro" or b.fd is None:
            continue
        st = os.fstat(b.fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                out.setdefault((st.st_dev, st.st_ino), b.rel)
            continue
        # A submodule's objects (beside its HEAD): often hard-linked by a local clone, and
        # never run. Any other folder named objects is looked through (a skill's scripts).
        for path, rel in budget.entries(b.fd, b.rel, skip_objects=True):
            with contextlib.suppress(OSError):
                fst = os.lstat(path)
                if stat.S_ISREG(fst.st_mode) and fst.st_nlink > 1:
                    out.setdefault((fst.st_dev, fst.st_ino), rel)
    return out, budget.cut


def find_aliases(root_fd: int, wanted: dict[tuple[int, int], str], max_entries: int,
                 max_seconds: float) -> Aliases:  # fmt: skip
    """Every other name of the wanted files below the workspace, by descriptor, never through a
    link; readdir's inode numbers pick the candidates, one stat each confirms them. A folder it
    cannot open (made unreadable, or deeper than PATH_MAX from the root) or a name too long to
    bind leaves the wanted files watched (`unseen`), never passed over in silence."""
    res = Aliases()
    inos = {ino for _dev, ino in wanted}
    names = set(wanted.values())
    deadline, seen = time.monotonic() + max_seconds, 0
    stack = [""]  # folders by name, each opened beneath the root without links: one fd at a time
    while stack:
        rel = stack.pop()
        try:
            pfd = open_beneath(root_fd, rel) if rel else os.dup(root_fd)
        except OSError as e:
            if e.errno != errno.ENOENT:  # gone meanwhile: nothing there to name the file
                res.unreadable.append(rel)
            continue
        try:
            dfd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            res.unreadable.append(rel)
            continue
        finally:
            os.close(pfd)
        try:
            with os.scandir(dfd) as it:
                for e in it:
                    seen += 1
                    path = f"{rel}/{e.name}" if rel else e.name
                    if e.is_dir(follow_symlinks=False):
                        stack.append(path)
                    elif e.inode() in inos and path not in names:
                        with contextlib.suppress(OSError):
                            st = e.stat(follow_symlinks=False)
                            key = (st.st_dev, st.st_ino)
                            if stat.S_ISREG(st.st_mode) and key in wanted:
                                if len(os.fsencode(path)) > ALIAS_PATH_MAX:
                                    res.unseen.add(wanted[key])
                                else:
                                    res.found[path] = wanted[key]
                    if seen > max_entries:  # one folder of millions: not read to its end
                        break
        finally:
            os.close(dfd)
        if seen > max_entries or time.monotonic() > deadline:
            res.unseen = set(names)
            break
    if res.unreadable:
        res.unseen = set(names)
    return res
