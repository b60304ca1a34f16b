"""Run folders made ahead of time: a run's start takes a ready folder with one rename.

Filling a run folder is about twenty file and folder creations, and on a journalled file system
each waits on the journal: several milliseconds of every start, before anything may run. One
spare per helper interpreter (bwrap and a container need different wrappers) is made in a
thread after a run has started, so the next start finds it. A spare is used only while what it
was made from is unchanged (the helper, the demo agent, the host's managed Claude settings): a
spare made before an edit of those is thrown away and the folder made afresh, as without spares.

Spares live in the runs folder (0700) as `.spare-*`: never a run id (ids have no dot), and a
daemon that dies leaves them to `sweep_spares` at its next start.
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from .base import default_helper_src, prepare_run_dir

SPARE_PREFIX = ".spare-"

Inputs = tuple[tuple[int, int, int, int] | None, ...]


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

    return (default_helper_src(), *run_file_sources())


class SpareRunFolders:
    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._lock = threading.Lock()
        # interpreter -> (spare folder, its notes, what it was made from)
        self._ready: dict[str | None, tuple[Path, list[str], Inputs]] = {}
        self._filling: set[str | None] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    def ready(self, interpreter: str | None) -> bool:
        """A spare for `interpreter` is waiting."""
        with self._lock:
            return interpreter in self._ready

    def take(self, run_dir: Path, interpreter: str | None) -> list[str]:
        """Fill run_dir (made empty by the caller, which reserved the id with it): a ready spare
        renamed over it, else made in place. Returns prepare_run_dir's notes. Blocking: call it
        in a thread."""
        with self._lock:
            spare = self._ready.pop(interpreter, None)
        if spare is not None:
            path, notes, made_from = spare
            if made_from == folder_inputs(run_folder_sources()):
                try:
                    os.rename(path, run_dir)  # over the caller's empty folder, in one step
                    return list(notes)
                except OSError:
                    pass
            _remove(path)
        return prepare_run_dir(run_dir, interpreter=interpreter)

    def refill(self, interpreter: str | None) -> None:
        """Make a spare for `interpreter` in the background, unless one is ready or coming."""
        with self._lock:
            if self._closed or interpreter in self._ready or interpreter in self._filling:
                return
            self._filling.add(interpreter)
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, "pilothouse-spare-run")
            self._pool.submit(self._fill, interpreter)

    def _fill(self, interpreter: str | None) -> None:
        path = self.runs_dir / f"{SPARE_PREFIX}{secrets.token_hex(6)}"
        try:
            made_from = folder_inputs(run_folder_sources())
            path.mkdir(mode=0o755)
            notes = prepare_run_dir(path, interpreter=interpreter)
        except OSError:
            _remove(path)  # no spare: the next start makes its folder itself
            with self._lock:
                self._filling.discard(interpreter)
            return
        with self._lock:
            self._filling.discard(interpreter)
            if self._closed:
                stale = path
            else:
                stale = None
                self._ready[interpreter] = (path, notes, made_from)
        if stale is not None:
            _remove(stale)

    def close(self) -> None:
        """Stop making spares and remove the ready ones (waits for one being made)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            ready, self._ready = list(self._ready.values()), {}
        for path, _notes, _inputs in ready:
            _remove(path)


def sweep_spares(runs_dir: Path) -> None:
    """Remove spares a previous daemon left."""
    for path in Path(runs_dir).glob(f"{SPARE_PREFIX}*"):
        _remove(path)


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
