"""Shared fixtures for the store tests: real SQLite files on tmp_path, a real key."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from store.writer import StoreWriter


class FileStore:
    """What the history ops use of core.store (flush, read), over a real database file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    async def flush(self, *, searchable: bool = True,
                    lines_of: Collection[str] | None = None) -> None:
        return None

    async def read(self, fn: Callable[[Any], Any]) -> Any:
        """fn(db) in a worker thread, as the daemon's storage reads."""
        from store.db import open_db

        def work() -> Any:
            db = open_db(self.db_path, readonly=True)
            try:
                return fn(db)
            finally:
                db.close()

        return await asyncio.to_thread(work)


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def make_writer(db_path: Path, key: bytes) -> Iterator[Callable[..., StoreWriter]]:
    """Writers started on db_path; every one still open is closed at teardown."""
    made: list[StoreWriter] = []

    def make(start: bool = True, **kw: Any) -> StoreWriter:
        w = StoreWriter(db_path, key, **kw)
        made.append(w)
        return w.start() if start else w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def raw(db_path: Path) -> Iterator[Callable[[], sqlite3.Connection]]:
    """A plain sqlite3 connection of our own, as a second process or an attacker would use."""
    conns: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(db_path, isolation_level=None)
        conns.append(conn)
        return conn

    yield connect
    for c in conns:
        c.close()


@pytest.fixture
def witness(tmp_path: Path) -> Path:
    """Where a test's writer keeps its audit witness (store/witness.py)."""
    return tmp_path / "audit.witness"


def verify_file(db_path: Path, key: bytes) -> Any:
    """audit.verify on a read-only connection of its own, as `pilothouse audit verify` reads."""
    from store import audit
    from store.db import open_db

    db = open_db(db_path, readonly=True)
    try:
        return audit.verify(db, key)
    finally:
        db.close()


def run_sql(db_path: Path, statement: str, params: tuple = ()) -> None:
    """One statement on a plain connection of our own, as an attacker with the file would."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


def sealed_run_with_a_secret(make: Callable[..., StoreWriter]) -> None:
    """A run that ended five minutes ago, one of its lines worth hiding, sealed and indexed."""
    import time

    w = make()
    for i in range(5):
        w.record_output("r1", "out", "uploading ~/.ssh/id_ed25519 to paste.invalid" if i == 2
                        else f"building step {i}", ts=time.time() - 300)
    w.commit("run.ended", run_id="r1", actor="daemon", text="exited (exit 0)", seal_output=True)
    w.flush()
    w.close()


def killed_mid_run(d: Any, workspace: Path) -> str:
    """A run that printed a line, its daemon then killed with SIGKILL (not started again): at
    the next start the run is found lost. Its id."""
    import json

    started = json.loads(d.cli("run", "demo", "-w", str(workspace), "--json", "--", "sh",
                               "-c", "echo printed; sleep 60").stdout)
    rid = started["id"]
    deadline = time.monotonic() + 30
    while "printed" not in d.cli("logs", rid).stdout:
        assert time.monotonic() < deadline, "the run printed nothing"
        time.sleep(0.2)
    d.kill9()
    return rid
