"""A history page is serialized once, and not on the daemon's loop (the s15 leftover: each row
was serialized to measure it on the loop, then the whole answer again to send it; 5,000 rows
held the loop about 50 ms, every other client's answer and every agent's approval waiting).
The rows go through console.wire.dumps, counted here by thread and by bytes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from console import wire
from console.daemon.ops.history import history_op
from console.daemon.ops.runs import runs_list
from store import StoreWriter
from tests.store.conftest import FileStore

ROWS = 300
TEXT = "alice allowed " + "pytest tests/unit/test_parser.py -k 'not slow' " * 20  # ~1 KiB


@pytest.fixture
def serialized(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, str]]:
    """(on the calling thread, bytes, text) of each wire.dumps call."""
    calls: list[tuple[bool, int, str]] = []
    real, here = wire.dumps, threading.get_ident()

    def counting(value: Any, **kw: Any) -> str:
        text = real(value, **kw)
        calls.append((threading.get_ident() == here, len(text), text))
        return text

    monkeypatch.setattr(wire, "dumps", counting)
    return calls


def _faults(serialized: list[tuple[bool, int, str]], answer: bytes) -> list[str]:
    faults = []
    on_loop = sum(1 for here, _, text in serialized if here and TEXT in text)
    if on_loop:
        faults.append(f"{on_loop} rows serialized on the loop's thread")
    total = sum(n for _, n, _ in serialized)
    if total > 1.2 * len(answer):
        faults.append(f"{total} bytes serialized for an answer of {len(answer)}")
    return faults


def _answer(result: Any) -> bytes:
    return wire.encode(wire.ok(1, result))  # what the server writes, on its loop's thread


def test_a_history_page_is_serialized_once_and_off_the_loop(
        make_writer: Callable[..., StoreWriter], db_path: Path,
        serialized: list[tuple[bool, int, str]]) -> None:
    w = make_writer()
    for i in range(ROWS):
        w.record("approval.decided", run_id="r1", actor="alice", text=f"{TEXT} {i}")
    w.flush()
    core = FileStore(db_path)
    for args in ({"limit": ROWS, "paged": True}, {"limit": ROWS}):
        serialized.clear()
        answer = _answer(asyncio.run(history_op(type("Core", (), {"store": core})(), None,  # type: ignore[arg-type]
                                                args, None)))
        result = wire.decode(answer)["result"]
        rows = result["rows"] if args.get("paged") else result
        assert len(rows) == ROWS and all(TEXT in r["text"] for r in rows)
        assert not _faults(serialized, answer)


def test_an_ended_runs_page_is_serialized_once_and_off_the_loop(
        make_writer: Callable[..., StoreWriter], db_path: Path,
        serialized: list[tuple[bool, int, str]]) -> None:
    w = make_writer()

    def add(db: Any) -> None:
        for i in range(ROWS):
            db.conn.execute(
                "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at, "
                "ended_at, exit_code, pids, info) VALUES (?, 'demo', 'bwrap', 'exited', ?, "
                "'/ws', ?, ?, 0, '[]', '{}')", (f"r{i}", f'["{TEXT}"]', 1.0 + i, 2.0 + i))

    w.call(add).result(10)
    w.flush()
    core = type("Core", (), {"store": FileStore(db_path),
                             "runs": type("Runs", (), {"live": staticmethod(lambda: [])})()})()
    serialized.clear()
    answer = _answer(asyncio.run(runs_list(core, None, {"all": True, "limit": ROWS}, None)))  # type: ignore[arg-type]
    assert len(wire.decode(answer)["result"]) == ROWS
    assert not _faults(serialized, answer)
