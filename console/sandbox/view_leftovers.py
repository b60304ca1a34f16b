"""Staged views and hand-offs a daemon left behind (killed with SIGKILL, or a start that failed
without closing its view): found by their mount points and detached at the next start, and at a
daemon's stop for its spare folders."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from . import fsview
from .view import HANDOFF_BASE, HANDOFF_RECORD, VIEW_DIR

_HANDOFF_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}-[0-9a-f]{16}")


def reconcile_views(runs_dir: Path, live: set[str] = frozenset(),  # type: ignore[assignment]
                    *, only: Iterable[str] | None = None) -> list[str]:
    """Detach staged views and hand-offs left by runs of this runs folder that are not live
    (a daemon killed with SIGKILL never ran close(); a start that failed without closing its
    view). `only`: just these folders of the runs folder (the spare folders, at a daemon's
    stop). Root only; returns the folders' names."""
    if os.geteuid() != 0:
        return []
    runs = {p.name for p in Path(runs_dir).iterdir() if p.is_dir()} if Path(runs_dir).is_dir() else set()
    if only is not None:
        runs &= set(only)
    # A hand-off is named after its run, but the run's folder may have gone back to the spares
    # since (`.spare-*`, spare_folders.py) with the view still in it: the hand-off's mount is a
    # clone of that folder, so its root is the folder itself (the same device and inode).
    by_inode: dict[tuple[int, int], str] = {}
    for name in runs:
        with contextlib.suppress(OSError):
            st = os.lstat(Path(runs_dir) / name)
            by_inode[(st.st_dev, st.st_ino)] = name
    stale: dict[str, list[Path]] = {}
    real_runs = Path(os.path.realpath(runs_dir))  # mountinfo lists resolved paths
    with contextlib.suppress(OSError):
        for text in fsview.mount_points():
            point = Path(text)
            run_id = None
            if point.name == VIEW_DIR and point.parent.parent == real_runs:
                run_id = point.parent.name
            elif point.parent.parent == HANDOFF_BASE and point.name == "run":
                # By what is mounted, never by the name: another daemon's run (another home)
                # may have the same id, and its live hand-off is not ours to detach (h172).
                try:
                    st = os.stat(point)
                except OSError:
                    continue
                run_id = by_inode.get((st.st_dev, st.st_ino))
            if run_id and run_id in runs and run_id not in live:
                stale.setdefault(run_id, []).append(point)
    for points in stale.values():
        for point in points:
            fsview.unmount(point)
            with contextlib.suppress(OSError):
                point.rmdir()
                if point.parent.parent == HANDOFF_BASE:
                    point.parent.rmdir()
    # Hand-off folders whose mount is already gone (a start that failed half-way): those the
    # run folders name, not those named like them (another daemon's may be in the making).
    for run_id in sorted(runs - set(live)):
        record = Path(runs_dir) / run_id / HANDOFF_RECORD
        try:
            name = record.read_text()[:256]
        except (OSError, ValueError):  # ValueError: not UTF-8, so not a name this daemon wrote
            continue
        if not _HANDOFF_NAME.fullmatch(name):
            continue  # not a name this daemon writes: nothing of it is touched
        folder = HANDOFF_BASE / name
        with contextlib.suppress(OSError):
            (folder / "run").rmdir()
        with contextlib.suppress(OSError):
            folder.rmdir()
            stale.setdefault(run_id, [])
        if not os.path.lexists(folder):
            with contextlib.suppress(OSError):
                record.unlink()
    return sorted(stale)
