"""Review s17 (store): `audit verify` must not stop the history from recording.

Verify ran FTS5's integrity check (a write statement) on a connection of its own to the
history file, under BEGIN IMMEDIATE: the write lock, held for the check's whole run. On a
history of 300,000 events that is 2.6 s here, on a million about 9 s, past the writer's 5 s
busy timeout: every decision in that time was refused ("database is locked") and bulk rows
(run output) were lost. `audit.verify` is not a deciding op, so a watcher may run it, and
three verifies in a loop kept the writer locked out: in 40 s no decision of five was recorded
and 13 output lines were lost (/tmp/r17/p7.py in the review notes).

The check is paused here, just before it runs (its connection's execute), which it reaches
on every history, and a decision is committed meanwhile: it must be recorded.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from store import audit, integrity
from store.db import open_db
from store.writer import StoreWriter


def test_a_decision_is_recorded_while_verify_checks_the_search_index(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes, witness: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_writer(witness=witness)
    for i in range(50):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"decision {i} word{i}")
    w.flush()
    reader = open_db(db_path, readonly=True)  # opened before: only the check connects below
    integrity.expected_schema()
    checking, go_on = threading.Event(), threading.Event()
    connect = sqlite3.connect

    class Paused(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if "integrity-check" in sql:
                checking.set()
                go_on.wait(60)
            return super().execute(sql, *args)

    def paused_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, factory=Paused, **kwargs)

    monkeypatch.setattr(integrity.sqlite3, "connect", paused_connect)
    results: list[audit.VerifyResult] = []
    verify = threading.Thread(target=lambda: results.append(audit.verify(reader, key)))
    verify.start()
    try:
        assert checking.wait(60), "the search index check never ran"
        monkeypatch.setattr(integrity.sqlite3, "connect", connect)
        try:
            w.commit("approval.decided", run_id="r1", actor="alice", text="made during verify")
        except Exception as exc:  # noqa: BLE001 - what the daemon would answer the agent
            pytest.fail(f"a decision made while verify checked the search index was refused: {exc}")
    finally:
        go_on.set()
        verify.join(60)
        reader.close()
    assert results and results[0].ok, results


def test_held_verify_without_room_for_the_copy_says_it_could_not_check(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes, witness: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is made only with twice its size free (it must not fill the disk the witness
    needs): without that room, verify is not ok and says why."""
    w = make_writer(witness=witness)
    w.commit("approval.decided", text="a decision")
    w.close()
    monkeypatch.setattr(integrity.shutil, "disk_usage", lambda _path: SimpleNamespace(free=0))
    reader = open_db(db_path, readonly=True)
    try:
        result = audit.verify(reader, key)
    finally:
        reader.close()
    assert not result.ok and "could not be checked" in result.reason, result
