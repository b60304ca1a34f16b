"""The witness: every committed chain head, appended to a file beside the key, so verify can
tell a database that was truncated, rolled back to an older copy, or given back an older
signed head. Real SQLite files and a real writer; attacks as a local user with write access
to the database (but not to the key) would make them."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from store import audit
from store.db import open_db
from store.writer import StoreWriter

Make = Callable[..., StoreWriter]


def fill(make_writer: Make, witness: Path, n: int, start: int = 0) -> None:
    w = make_writer(witness=witness)
    for i in range(start, start + n):
        w.commit("approval.decided", run_id="r1", actor="alice", text=f"decision {i}")
    w.close()


def verify(db_path: Path, key: bytes, witness: Path) -> audit.VerifyResult:
    db = open_db(db_path, readonly=True)
    try:
        return audit.verify(db, key, witness=witness)
    finally:
        db.close()


def _sql(db_path: Path, *statements: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db_path)
    for s in statements:
        conn.execute(s, params if "?" in s else ())
    conn.commit()
    conn.close()


def _head(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    value = conn.execute("SELECT value FROM meta WHERE key = 'chain_head'").fetchone()[0]
    conn.close()
    return value


def test_untouched_history_agrees_with_its_witness(make_writer: Make, db_path: Path, key: bytes,
                                                   witness: Path) -> None:
    fill(make_writer, witness, 30)
    result = verify(db_path, key, witness)
    assert result.ok, result
    lines = witness.read_text().splitlines()
    assert lines and all('"seq"' in line for line in lines)


def test_truncation_with_a_replayed_older_head_is_caught(make_writer: Make, db_path: Path,
                                                         key: bytes, witness: Path) -> None:
    fill(make_writer, witness, 20)
    old_head = _head(db_path)
    fill(make_writer, witness, 20, start=20)
    # The attacker cuts the last 20 rows and puts back the head signed when there were 20.
    _sql(db_path, "DELETE FROM events WHERE id > 20")
    _sql(db_path, "UPDATE meta SET value = ? WHERE key = 'chain_head'", params=(old_head,))
    assert audit.verify(sqlite3.connect(db_path), key).ok, "without the witness this passes"
    result = verify(db_path, key, witness)
    assert not result.ok and "witness" in result.reason, result
    assert result.first_bad_id == 21


def test_whole_database_rolled_back_to_an_older_copy_is_caught(make_writer: Make, db_path: Path,
                                                               key: bytes, witness: Path,
                                                               tmp_path: Path) -> None:
    fill(make_writer, witness, 10)
    backup = tmp_path / "old.db"
    shutil.copy(db_path, backup)
    fill(make_writer, witness, 10, start=10)
    shutil.copy(backup, db_path)
    result = verify(db_path, key, witness)
    assert not result.ok and "rolled back" in result.reason, result


def test_rollback_then_new_events_is_caught(make_writer: Make, db_path: Path, key: bytes,
                                            witness: Path, tmp_path: Path) -> None:
    """The daemon keeps writing on the old copy: the ids the witness saw come round again
    with other hashes."""
    fill(make_writer, witness, 10)
    backup = tmp_path / "old.db"
    shutil.copy(db_path, backup)
    fill(make_writer, witness, 10, start=10)
    shutil.copy(backup, db_path)
    fill(make_writer, witness, 15, start=100)
    result = verify(db_path, key, witness)
    assert not result.ok and ("rolled back" in result.reason or "witness" in result.reason), result


def test_tail_deleted_together_with_the_head_is_caught(make_writer: Make, db_path: Path,
                                                       key: bytes, witness: Path) -> None:
    fill(make_writer, witness, 20)
    _sql(db_path, "DELETE FROM events WHERE id > 12", "DELETE FROM meta WHERE key = 'chain_head'")
    # The writer starts again on the cut database and carries on.
    fill(make_writer, witness, 5, start=50)
    result = verify(db_path, key, witness)
    assert not result.ok, result


def test_a_forged_witness_line_is_caught(make_writer: Make, db_path: Path, key: bytes,
                                         witness: Path) -> None:
    fill(make_writer, witness, 5)
    with witness.open("a") as f:
        f.write('{"seq":999,"id":3,"hash":"00","ts":1.0,"mac":"00"}\n')
    result = verify(db_path, key, witness)
    assert not result.ok and "witness" in result.reason


def test_prune_keeps_the_witness_consistent(make_writer: Make, db_path: Path, key: bytes,
                                            witness: Path) -> None:
    w = make_writer(witness=witness)
    for i in range(30):
        w.commit("approval.decided", text=f"d{i}", ts=1000.0 + i)
    w.prune(1020.0)
    w.commit("approval.decided", text="after the prune")
    w.close()
    result = verify(db_path, key, witness)
    assert result.ok and "anchor" in result.reason, result


def test_each_witness_line_is_copied_to_syslog(make_writer: Make, witness: Path) -> None:
    """A collector off the machine (here a UDP syslog receiver on 127.0.0.1) gets every line,
    so deleting the local witness with the database does not erase the record."""
    import socket

    from store.syslog_copy import SyslogCopy

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    copy = SyslogCopy(f"udp://127.0.0.1:{rx.getsockname()[1]}")
    w = make_writer(witness=witness, witness_mirror=copy)
    for i in range(3):
        w.commit("approval.decided", text=f"d{i}")
    w.close()
    copy.close()
    got = [rx.recv(4096).decode() for _ in range(3)]
    rx.close()
    local = witness.read_text().splitlines()
    assert [g.split("pilothouse-audit: ", 1)[1].rstrip("\x00") for g in got] == local


def test_bulk_batches_do_not_grow_the_witness_per_batch(make_writer: Make, db_path: Path,
                                                        key: bytes, witness: Path) -> None:
    """A flood of bulk events commits many batches; the witness gets a line per second of
    them (and one at close), while every batch holding a security event gets its own."""
    w = make_writer(witness=witness, max_batch=10)
    for i in range(2000):
        w.record("net.closed", run_id="r1", text=f"bulk {i}")
    w.flush()
    w.commit("approval.decided", text="a security event")
    w.close()
    lines = witness.read_text().splitlines()
    assert w.stats()["batches"] >= 200 and len(lines) <= 10, len(lines)
    assert verify(db_path, key, witness).ok
