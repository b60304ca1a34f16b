"""Session 19: two verifies of one user at the same instant. One's sweep of killed checks'
copies could take the other's new folder between its making and its locking, and that verify
then said the search index could not be checked."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest

from store import snapshot_copy


def test_a_folder_swept_before_it_was_locked_is_made_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = sqlite3.connect(":memory:")
    source.execute("CREATE TABLE t (x)")
    source.execute("INSERT INTO t VALUES (42)")
    source.commit()
    real_mkdtemp = tempfile.mkdtemp
    made: list[str] = []

    def mkdtemp_then_another_verify_sweeps(**kw: str) -> str:
        made.append(real_mkdtemp(**kw))
        if len(made) == 1:  # the other verify's sweep runs in the gap, and finds it unlocked
            assert snapshot_copy.sweep_left_copies(str(tmp_path)) == [Path(made[0]).name]
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_then_another_verify_sweeps)
    with snapshot_copy.snapshot_copy(source, str(tmp_path)) as copy:
        assert copy.execute("SELECT x FROM t").fetchall() == [(42,)]
    assert len(made) == 2 and not list(tmp_path.iterdir())


def test_a_folder_in_use_is_not_swept(tmp_path: Path) -> None:
    source = sqlite3.connect(":memory:")
    with snapshot_copy.snapshot_copy(source, str(tmp_path)):
        assert snapshot_copy.sweep_left_copies(str(tmp_path)) == []
        assert len(list(tmp_path.iterdir())) == 1
