"""Shared fixtures for the store tests: real SQLite files on tmp_path, a real key."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store.writer import StoreWriter


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
