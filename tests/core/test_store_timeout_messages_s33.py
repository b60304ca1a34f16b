"""What a refused run start says when its record timed out (review s33, finding B): withdrawn,
it was not recorded, and the hint is about a stuck store, not the disk's free space; still in
the batch being committed, it may yet land, and the answer must not say it was not recorded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from console.daemon.run_prep import start_refused
from store.db import StoreError
from store.waits import StoreStuck, StoreUncertain

PATHS: Any = SimpleNamespace(daemon_log=Path("/x/daemon.log"), data_dir=Path("/x/data"))


def test_a_withdrawn_start_is_not_recorded_and_blames_no_disk() -> None:
    f = start_refused("r1", StoreStuck("timed out after 30.0s committing 'run.started'"), PATHS)
    assert "was not started: its start could not be recorded" in f.message
    assert "free space" not in (f.hint or "") and "did not answer in time" in (f.hint or "")


def test_a_start_that_may_yet_land_is_not_said_unrecorded() -> None:
    f = start_refused("r1", StoreUncertain("timed out ... it may yet be recorded"), PATHS)
    assert "could not be recorded" not in f.message
    assert "may still land" in f.message and "marked lost" in (f.hint or "")


def test_a_failed_commit_still_points_at_the_disk() -> None:
    f = start_refused("r1", StoreError("the store could not commit: disk I/O error"), PATHS)
    assert "could not be recorded" in f.message and "free space" in (f.hint or "")
