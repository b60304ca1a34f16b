"""Review s30 (helper 104): what one run's end may say. 400 rebase todos of long exec lines made
50 MB of end notes, stored in one record and sent in one message: `run --wait`, `history` and
`report` failed on it (past what a client reads on one line). Each note is cut and their number
bounded where the daemon records them (runs.bounded_notes), whatever made them."""

from __future__ import annotations

from console.daemon.runs import END_NOTE_CHARS, END_NOTES_MAX, bounded_notes


def test_notes_are_cut_and_counted() -> None:
    notes = bounded_notes(["x" * 100_000] * 400)
    assert len(notes) == END_NOTES_MAX + 1 and notes[-1].startswith("350 more notes")
    assert max(map(len, notes)) <= END_NOTE_CHARS + 10
    assert sum(map(len, notes)) < 200_000


def test_a_few_short_notes_are_kept_whole() -> None:
    assert bounded_notes(["a", "b"]) == ["a", "b"]
