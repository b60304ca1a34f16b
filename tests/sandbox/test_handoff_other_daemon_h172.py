"""A root daemon's start detaches the hand-offs its lost runs left (view_leftovers.py), under
/run/pilothouse-handoff, which every root daemon on the machine shares. It took them by the run
id in the folder's name: a daemon of another home whose live run has the same id (ids are
unique per home only) had its hand-off unmounted under it, and a hand-off folder another daemon
was still making removed (review h172). Now a mounted hand-off is this daemon's only if what
is mounted is one of its run folders, and an empty one only if a run folder names it."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.sandbox.view import HANDOFF_BASE, HANDOFF_RECORD
from console.sandbox.view_leftovers import reconcile_views

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hand-offs are a root daemon's; "
                                                          "bind mounts need root")
RUN = "zq" + secrets.token_hex(2)  # the same run id in both homes


def _mounted(point: Path) -> bool:
    return any(line.split()[4] == str(point)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture
def handoffs() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for folder in made:
        if _mounted(folder / "run"):
            subprocess.run(["umount", "-l", str(folder / "run")], check=False)
        for path in (folder / "run", folder):
            if path.is_dir():
                path.rmdir()


def _handoff(made: list[Path], run_dir: Path | None) -> Path:
    """A hand-off folder, `run_dir` bound on its `run` when given (as view.py's clone is)."""
    HANDOFF_BASE.mkdir(mode=0o711, exist_ok=True)
    folder = HANDOFF_BASE / f"{RUN}-{secrets.token_hex(8)}"
    (folder / "run").mkdir(parents=True)
    made.append(folder)
    if run_dir is not None:
        subprocess.run(["mount", "--bind", str(run_dir), str(folder / "run")], check=True)
    return folder


def test_another_homes_run_of_the_same_id_keeps_its_hand_offs(tmp_path: Path,
                                                               handoffs: list[Path]) -> None:
    mine, theirs = tmp_path / "mine" / "runs", tmp_path / "theirs" / "runs"
    (mine / RUN).mkdir(parents=True)
    (theirs / RUN).mkdir(parents=True)
    live = _handoff(handoffs, theirs / RUN)  # their run, live
    making = _handoff(handoffs, None)  # their next hand-off, not mounted yet
    reconcile_views(mine)
    assert _mounted(live / "run"), "another daemon's live hand-off was detached"
    assert (making / "run").is_dir(), "another daemon's hand-off in the making was removed"


def test_its_own_lost_hand_offs_still_go(tmp_path: Path, handoffs: list[Path]) -> None:
    runs = tmp_path / "runs"
    (runs / RUN).mkdir(parents=True)
    (runs / "other").mkdir()
    mounted = _handoff(handoffs, runs / RUN)
    half = _handoff(handoffs, None)  # a start that failed before its mount
    (runs / "other" / HANDOFF_RECORD).write_text(half.name)
    assert reconcile_views(runs) == sorted([RUN, "other"])
    assert not _mounted(mounted / "run") and not mounted.exists()
    assert not half.exists() and not (runs / "other" / HANDOFF_RECORD).exists()
