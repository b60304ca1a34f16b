"""Every look through a workspace is bounded in entries (review s16, sandbox): but os.fwalk and
os.walk list a folder whole before a budget is looked at, so one folder of millions of files (an
agent makes a million in under a minute) was read to its end, its names held in memory, at the
run's start and end (1M files: 1.2 s and +49 MB past a 2 s / 200,000-entry look; 10M: ten times
that). Each look now reads at most its budget's worth of one folder. Counted here through
os.scandir, which every look reads folders with; the budgets are made small so the folder is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.sandbox import aliases, nested, watch

FILES = 5_000
BUDGET = 1_000


@pytest.fixture
def wide(tmp_path: Path) -> Iterator[int]:
    ws = tmp_path / "ws"
    (ws / "wide").mkdir(parents=True)
    for i in range(FILES):
        os.close(os.open(ws / "wide" / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many entries were read from each folder listed (os.scandir, counted)."""
    counts: list[int] = []
    real = os.scandir

    class Counted:
        def __init__(self, it: Any) -> None:
            self.it, self.n = it, len(counts)
            counts.append(0)

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.it.close()

        def close(self) -> None:
            self.it.close()

        def __iter__(self) -> Counted:
            return self

        def __next__(self) -> Any:
            entry = next(self.it)
            counts[self.n] += 1
            return entry

    monkeypatch.setattr(os, "scandir", lambda *a, **k: Counted(real(*a, **k)))
    monkeypatch.setattr(nested, "NESTED_MAX_ENTRIES", BUDGET)
    return counts


def _most(read: list[int]) -> int:
    return max(read, default=0)


def test_the_look_for_nested_repositories(wide: int, read: list[int]) -> None:
    res = nested.find_nested_git(wide)
    assert res.cut, "the look says it stopped early"
    assert _most(read) <= BUDGET + 1, f"{_most(read)} entries of one folder read"


def test_the_look_for_changed_files_at_the_end(wide: int, read: list[int]) -> None:
    budget = watch.Budget(entries=BUDGET)
    watch.changed_below(wide, 0.0, budget)
    assert budget.cut
    assert _most(read) <= BUDGET + 1, f"{_most(read)} entries of one folder read"


def test_the_look_through_a_protected_folder(wide: int, read: list[int]) -> None:
    look = aliases.LookBudget()
    list(look.entries(wide, "wide"))
    assert look.cut == ["wide"]
    assert _most(read) <= aliases.DIR_ENTRIES_MAX + 1, f"{_most(read)} entries read"


def test_the_look_for_other_names_of_protected_files(wide: int, read: list[int],
                                                     tmp_path: Path) -> None:
    st = os.stat(tmp_path / "ws" / "wide" / "f0")
    res = aliases.find_aliases(wide, {(st.st_dev, st.st_ino): "wide/f0"}, BUDGET, 60.0)
    assert res.unseen == {"wide/f0"}, "past its budget the file is watched, and said so"
    assert _most(read) <= BUDGET + 1, f"{_most(read)} entries of one folder read"
