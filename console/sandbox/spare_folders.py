"""Run folders kept for the next start: a run's start takes a ready folder with one rename.

Filling a run folder is about twenty file and folder creations, and deleting it at the run's
end as many removals; each waits on the file system (on ext4 without a journal, inode
allocation scans past every recently freed inode: a dozen milliseconds of CPU a run on a
machine that starts runs back to back). So a folder is made once and kept:

- A run's start takes a ready spare for its helper interpreter (bwrap and a container need
  different wrappers) and renames it into place; with none, the folder is made there as before.
- At a run's end its folder comes back: set aside under a spare's name at once, then, in a
  thread, everything the run added (sockets, carried files, mask files, the view's folder) is
  removed and everything the folder was made with is checked to be as it was made (same inode,
  owner, group, mode, link count, size, mtime and ctime), walking by descriptors so that no
  link is followed; then its contents move into a new folder. Only then is it a spare again;
  anything else, or anything mounted below it, and it is deleted (never through a mount) and
  a new one made. The sandbox sees the folder
  read-only, so a sandboxed run cannot change it; the check is for whatever else might have.
  The folder of a run without a sandbox (`sandbox = "none"`: its agent is the daemon's user
  and can write there) is never kept.
- A spare is used only while what it was made from is unchanged (the helper, the demo agent,
  the host's managed Claude settings): one made before an edit of those is thrown away.

Spares live in the runs folder (0700) as `.spare-*`: never a run id (ids have no dot), and a
daemon that dies leaves them to `sweep_spares` at its next start.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import shutil
import stat
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .base import (
    default_helper_src,
    helper_module_src,
    prepare_run_dir,
    remove_run_dir,
    remove_unmounted,
)
from .fsview import under_a_mount

SPARE_PREFIX = ".spare-"
POOL = 8  # spares kept per interpreter (168 KiB each): enough for runs started together

Inputs = tuple[tuple[int, int, int, int] | None, ...]
Manifest = dict[str, tuple[int, ...]]  # path in the folder -> what it must still be


def folder_inputs(sources: Iterable[Path]) -> Inputs:
    """What a run folder is made from, as (inode, size, mtime, ctime) per file: any edit,
    replacement or removal changes it."""
    out: list[tuple[int, int, int, int] | None] = []
    for path in sources:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def run_folder_sources() -> tuple[Path, ...]:
    from console.agents import run_file_sources

    return (default_helper_src(), helper_module_src(), *run_file_sources())


def _signature(st: os.stat_result) -> tuple[int, ...]:
    # A folder's times move whenever an entry comes or goes (the run's sockets): not kept. A
    # file's ctime moves with any change to it, even one that sets its mtime back.
    if stat.S_ISDIR(st.st_mode):
        return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns)


def manifest_of(folder: Path) -> Manifest:
    """Every entry of a freshly made run folder ("" is the folder itself)."""
    out: Manifest = {"": _signature(os.lstat(folder))}
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            out[os.path.relpath(path, folder)] = _signature(os.lstat(path))
    return out


def scrub(folder: Path, manifest: Manifest) -> bool:
    """Remove what is not in the manifest; True when what is left is exactly the manifest.
    False (nothing removed) when anything is mounted in the folder. Every step goes through a
    descriptor of the folder it is in, so a folder swapped for a link meanwhile is never
    followed out of the run folder."""
    if under_a_mount(folder):
        return False
    seen = 0
    for parent, dirs, files, dir_fd in os.fwalk(folder):  # links are not walked into
        rel_parent = os.path.relpath(parent, folder)
        rel_parent = "" if rel_parent == "." else rel_parent
        if manifest.get(rel_parent) != _signature(os.fstat(dir_fd)):
            return False  # changed, or another file system mounted here meanwhile
        seen += 1
        for name in list(dirs):
            if os.path.join(rel_parent, name) in manifest:
                continue
            dirs.remove(name)  # not walked into: removed whole
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=dir_fd)
            else:
                shutil.rmtree(name, dir_fd=dir_fd)
        for name in files:
            rel = os.path.join(rel_parent, name)
            if rel not in manifest:
                os.unlink(name, dir_fd=dir_fd)
            elif manifest[rel] != _signature(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)):
                return False
            else:
                seen += 1
    return seen == len(manifest)


def _rehouse(old: Path, manifest: Manifest) -> Path:
    """A new folder holding old's contents (moved, not copied); old is removed. The folder a
    run's sandbox was given is never given to another run: a process that outlived its run
    (none should) and still sees that folder sees it empty, never the next run's sockets."""
    new = _spare_path(old.parent)
    new.mkdir(mode=0o755)
    old_fd = new_fd = -1
    try:
        os.chmod(new, 0o755)  # whatever the umask
        old_fd = os.open(old, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        new_fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        for name in [rel for rel in manifest if rel and os.sep not in rel]:
            os.rename(name, name, src_dir_fd=old_fd, dst_dir_fd=new_fd)
            # A move sets the moved file's ctime: the one checked next time is the one now.
            manifest[name] = _signature(os.stat(name, dir_fd=new_fd, follow_symlinks=False))
        old.rmdir()
    except OSError:
        remove_unmounted(new)  # what was moved goes too; the caller removes old
        raise
    finally:
        for fd in (old_fd, new_fd):
            if fd >= 0:
                os.close(fd)
    return new


@dataclass
class _Made:
    """What one run folder was made for and from."""

    interpreter: str | None
    notes: list[str]
    made_from: Inputs
    manifest: Manifest


def _spare_path(runs_dir: Path) -> Path:
    return runs_dir / f"{SPARE_PREFIX}{secrets.token_hex(6)}"


def _make(folder: Path, interpreter: str | None) -> _Made:
    """Fill folder as a run folder, recording what it was made from and of."""
    made_from = folder_inputs(run_folder_sources())  # before: an edit meanwhile shows
    notes = prepare_run_dir(folder, interpreter=interpreter)
    return _Made(interpreter, notes, made_from, manifest_of(folder))


class SpareRunFolders:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._lock = threading.Lock()
        self._ready: dict[str | None, list[tuple[Path, _Made]]] = {}
        self._lent: dict[Path, _Made] = {}  # run folder -> what it is, until the run ends
        self._filling: set[str | None] = set()
        self._recycling: Counter[str | None] = Counter()  # ended runs' folders on their way back
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    def ready(self, interpreter: str | None) -> int:
        """How many spares for `interpreter` are waiting."""
        with self._lock:
            return len(self._ready.get(interpreter, ()))

    def take(self, run_dir: Path, interpreter: str | None) -> list[str]:
        """Fill run_dir (made empty by the caller, which reserved the id with it): a ready spare
        renamed over it, else made in place. Returns prepare_run_dir's notes. Blocking: call it
        in a thread."""
        with self._lock:
            waiting = self._ready.get(interpreter)
            spare = waiting.pop() if waiting else None
        if spare is not None:
            path, made = spare
            if made.made_from == folder_inputs(run_folder_sources()):
                try:
                    os.rename(path, run_dir)  # over the caller's empty folder, in one step
                except OSError:
                    pass
                else:
                    with self._lock:
                        self._lent[run_dir] = made
                    return list(made.notes)
            remove_unmounted(path)
        made = _make(run_dir, interpreter)
        with self._lock:
            self._lent[run_dir] = made
        return list(made.notes)

    def refill(self, interpreter: str | None) -> None:
        """Make a spare for `interpreter` in the background, unless one is ready or coming."""
        with self._lock:
            if self._closed or self._ready.get(interpreter) or interpreter in self._filling or (
                    self._recycling[interpreter]):  # a folder coming back is the next spare
                return
            self._filling.add(interpreter)
            self._submit(self._fill, interpreter)

    def give_back(self, run_dir: Path, *, reusable: bool = True) -> None:
        """A run ended: its folder leaves its place at once (one rename) and becomes a spare
        in a thread, or is deleted there when it cannot (remove_run_dir). Not reusable: the
        folder of a run that was not sandboxed (its agent could write there, as the daemon's
        user) is always deleted."""
        with self._lock:
            made = self._lent.pop(run_dir, None)
            if made is not None and reusable and not self._closed:
                aside = _spare_path(self.runs_dir)
                try:
                    os.rename(run_dir, aside)
                except FileNotFoundError:
                    return
                except OSError:
                    pass
                else:
                    self._recycling[made.interpreter] += 1
                    self._submit(self._recycle, aside, made)  # under the lock: close() waits
                    return
        remove_run_dir(run_dir)

    def _submit(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        """Called holding the lock, never after close()."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "pilothouse-spare-run")
        self._pool.submit(fn, *args)

    def _fill(self, interpreter: str | None) -> None:
        path = _spare_path(self.runs_dir)
        try:
            path.mkdir(mode=0o755)
            made = _make(path, interpreter)
        except OSError:
            remove_unmounted(path)  # no spare: the next start makes its folder itself
            with self._lock:
                self._filling.discard(interpreter)
            return
        with self._lock:
            self._filling.discard(interpreter)
        self._keep(path, made)

    def _recycle(self, path: Path, made: _Made) -> None:
        try:
            try:
                spare = _rehouse(path, made.manifest) if scrub(path, made.manifest) else None
            except OSError:
                spare = None
            if spare is None:
                remove_unmounted(path)
                return
            made.manifest[""] = _signature(os.lstat(spare))
            self._keep(spare, made)
        finally:
            with self._lock:
                self._recycling[made.interpreter] -= 1

    def _keep(self, path: Path, made: _Made) -> None:
        with self._lock:
            waiting = self._ready.setdefault(made.interpreter, [])
            kept = not self._closed and len(waiting) < POOL
            if kept:
                waiting.append((path, made))
        if not kept:
            remove_unmounted(path)

    def close(self) -> None:
        """Stop keeping spares and remove them (waits for work under way): the ready ones, and
        those a run's end could not make spares again because something was still mounted in
        them (the view of a start that failed without closing it: detached here first, with
        its hand-off, so that no mount of the person's workspace outlives the daemon)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            ready = [path for waiting in self._ready.values() for path, _made in waiting]
            self._ready = {}
        for path in ready:
            remove_unmounted(path)
        # Every spare is this daemon's (the daemon lock) and none is lent to a run any more: a
        # lent folder has its run's name, and one given back now is removed (give_back).
        left = sorted(self.runs_dir.glob(f"{SPARE_PREFIX}*"))
        if left:
            from .view_leftovers import reconcile_views

            reconcile_views(self.runs_dir, only=[p.name for p in left])
            for path in left:
                remove_unmounted(path)


def sweep_spares(runs_dir: Path) -> None:
    """Remove spares a previous daemon left (never through a mount)."""
    for path in Path(runs_dir).glob(f"{SPARE_PREFIX}*"):
        remove_unmounted(path)
