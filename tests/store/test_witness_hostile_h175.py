"""The history's own files attacked after the fact, without the key (review h175): by
someone who can write the database and the data folder (the witness beside it), not the key.

- A rollback to an older copy with one unsigned line appended to the witness (the old head's
  id and hash, any mac): the writer's start read the last line unchecked, found the database
  level with it, and recorded no `store.rollback_detected`; only a later verify said so.
- A witness line or a chain head that Python's JSON reader cannot turn into numbers (an id of
  1e999) or that nests past its recursion limit made verify raise and the daemon's start die
  with a traceback, instead of naming the damage.
Real SQLite files, a real writer, the verify the daemon runs."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from store.writer import StoreWriter
from tests.store.test_store_witness import fill, verify

Make = Callable[..., StoreWriter]


def _kinds(db_path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT kind, text FROM events WHERE kind LIKE 'store.%'").fetchall()
    finally:
        conn.close()


def test_a_rollback_behind_an_unsigned_witness_line_is_named_at_start(
        make_writer: Make, db_path: Path, key: bytes, witness: Path, tmp_path: Path) -> None:
    fill(make_writer, witness, 5)
    shutil.copy(db_path, tmp_path / "old.db")
    fill(make_writer, witness, 5, start=5)
    shutil.copy(tmp_path / "old.db", db_path)  # the backup of an hour ago, put back
    for side in ("-wal", "-shm"):
        Path(f"{db_path}{side}").unlink(missing_ok=True)
    conn = sqlite3.connect(db_path)
    head = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'chain_head'").fetchone()[0])
    conn.close()
    seq = json.loads(witness.read_text().splitlines()[-1])["seq"]
    with witness.open("a") as f:  # level with the old head, signed with no key
        f.write(json.dumps({"seq": seq + 1, "id": head["id"], "hash": head["hash"], "ts": 1.0,
                            "mac": "0" * 64}) + "\n")
    make_writer(witness=witness).close()
    said = [text for kind, text in _kinds(db_path) if kind == "store.rollback_detected"]
    assert said and "not validly signed" in said[0] and "row 10" in said[0], _kinds(db_path)
    assert not verify(db_path, key, witness).ok


@pytest.mark.parametrize("line", [
    '{"seq":99,"id":1e999,"hash":"00","ts":1.0,"mac":"00"}',
    '{"seq":1e999,"id":3,"hash":"00","ts":1.0,"mac":"00"}',
    "[" * 100_000,
], ids=["id-1e999", "seq-1e999", "nested"])
def test_a_witness_line_json_cannot_read_as_numbers_is_named(
        make_writer: Make, db_path: Path, key: bytes, witness: Path, line: str) -> None:
    fill(make_writer, witness, 3)
    with witness.open("a") as f:
        f.write(line + "\n")
    result = verify(db_path, key, witness)
    assert not result.ok and "witness line 4" in result.reason, result
    make_writer(witness=witness).close()  # the start goes on, and says so
    assert any(kind == "store.rollback_detected" for kind, _ in _kinds(db_path))


def test_a_chain_head_nested_past_the_parser_is_named(make_writer: Make, db_path: Path,
                                                      key: bytes, witness: Path) -> None:
    fill(make_writer, witness, 3)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'chain_head'", ("[" * 100_000,))
    conn.commit()
    conn.close()
    result = verify(db_path, key, witness)
    assert not result.ok and "not validly signed" in result.reason, result
    make_writer(witness=witness).close()  # goes on after the last row, and says so
    said = [text for kind, text in _kinds(db_path) if kind == "store.chain_warning"]
    assert said and "not validly signed" in said[0], _kinds(db_path)
