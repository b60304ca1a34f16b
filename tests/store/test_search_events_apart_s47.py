"""A search of the events waits for their index only, not for the output's (s46's leftovers).

`history --search` and `export --search` read the events' full-text index; they flushed with
`lines_of=()` (no run's lines), yet waited until the output's index too caught up with every
line committed. Under a run's output flood that index is the one behind (100,000 lines are 50
index transactions), so a search of a few events waited on it, and past the flush's timeout
failed as a stuck store. `logs --search` of a run still waits for the output's index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from store import fts
from store.db import StoreError
from store.writer import StoreWriter
from tests.store.test_store_search_bound import found


def output_index_far_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The output's index moves no further, as under a flood it falls behind by more than a
    flush's timeout; the events' index goes on as the writer's own index_step moves it."""
    real = fts.index_step

    def events_only(conn: object, done: tuple[int, int], chunk: int = fts.CHUNK
                    ) -> tuple[int, int]:
        events, _ = real(conn, (done[0], 1 << 62), chunk)  # type: ignore[arg-type]
        return events, done[1]

    monkeypatch.setattr(fts, "index_step", events_only)


def test_a_search_of_events_does_not_wait_for_the_outputs_index(
        make_writer: Callable[..., StoreWriter], db_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_writer()
    for i in range(50):
        w.record_output("flooding", "stdout", f"line {i} of a flood")
    w.flush(searchable=False)  # the lines are committed, not indexed
    output_index_far_behind(monkeypatch)
    w.commit("exec.decided", run_id="other", text="approved zanzibarquux by alice")
    try:
        w.flush(timeout=3, searchable=True, lines_of=())  # what history --search does
    except StoreError as exc:
        pytest.fail(f"a search of the events waited for the output's index: {exc}")
    assert found(db_path, "zanzibarquux")
    # A search of the flooding run's lines still needs their index: it waits, and says so.
    with pytest.raises(StoreError):
        w.flush(timeout=1, searchable=True, lines_of=("flooding",))
