"""The audit key, the hash chain, verify and prune: tampering a real database by hand."""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import audit
from store.audit import KeyFileError, chain_hash, load_or_create_key, verify
from store.db import open_db
from store.writer import StoreWriter

# --- key -------------------------------------------------------------------------------------


def test_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]  # no temp file left


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    load_or_create_key(path)
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(path, mode)
        with pytest.raises(KeyFileError, match="chmod 600") as err:
            load_or_create_key(path)
        assert f"{mode:04o}" in str(err.value)


def test_damaged_key_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(KeyFileError, match="damaged"):
        load_or_create_key(path)
    assert path.read_bytes() == b"short"


def test_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_or_create_key(real)
    link = tmp_path / "audit.key"
    link.symlink_to(real)
    with pytest.raises(KeyFileError, match="symlink"):
        load_or_create_key(link)


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        keys.append(load_or_create_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 8


# --- chain -----------------------------------------------------------------------------------


def test_chain_hash_covers_every_field(key: bytes) -> None:
    row = {"id": 1, "ts": 1.5, "run_id": "r", "kind": "k", "actor": "a", "text": "t",
           "data": '{"x":1}'}
    base = chain_hash(key, audit.GENESIS, row)
    assert base == chain_hash(key, audit.GENESIS, dict(row))
    for field, other in [("id", 2), ("ts", 1.25), ("run_id", None), ("kind", "k2"),
                         ("actor", "b"), ("text", "t2"), ("data", '{"x":2}')]:
        assert chain_hash(key, audit.GENESIS, {**row, field: other}) != base
    assert chain_hash(key, "1" * 64, row) != base
    assert chain_hash(os.urandom(32), audit.GENESIS, row) != base


_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]))


@given(id_=st.integers(1, 2**62), ts=st.floats(allow_nan=False, allow_infinity=False),
       run_id=st.none() | _text, kind=_text, actor=st.none() | _text, text=_text,
       data=st.none() | _text)
def test_row_hash_is_hmac_over_canonical_json(id_: int, ts: float, run_id: str | None, kind: str,
                                              actor: str | None, text: str,
                                              data: str | None) -> None:
    """The hand-formatted hot path equals the documented format, so others can verify too."""
    key = b"k" * 32
    body = json.dumps([id_, ts, run_id, kind, actor, text, data], ensure_ascii=False,
                      separators=(",", ":"))
    expected = hmac.digest(key, f"{audit.GENESIS}\n{body}".encode(), "sha256").hex()
    assert audit.row_hash(key, audit.GENESIS, id_, ts, run_id, kind, actor, text, data) == expected


@pytest.mark.parametrize("size", [16, 32, 64, 65, 200])
def test_hmac_matches_the_standard_library(size: int) -> None:
    key, msg = os.urandom(size), os.urandom(300)
    assert audit.hmac_sha256(key, msg) == hmac.digest(key, msg, "sha256").hex()


@pytest.fixture
def filled(make_writer: Callable[..., StoreWriter], db_path: Path) -> Path:
    """100 events (ids 1..100) through a real writer, closed again."""
    w = make_writer()
    for i in range(1, 101):
        w.record("exec.request", run_id=f"r{i % 3}", actor="agent", text=f"command {i}",
                 data={"n": i})
    w.close()
    return db_path


def _verify(path: Path, key: bytes) -> audit.VerifyResult:
    db = open_db(path, readonly=True)
    try:
        return verify(db, key)
    finally:
        db.close()


def _tamper(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


def test_untouched_chain_verifies(filled: Path, key: bytes) -> None:
    result = _verify(filled, key)
    assert result.ok and result.checked == 100 and result.first_bad_id is None
    assert result.as_dict()["ok"] is True


def test_fresh_database_verifies(make_writer: Callable[..., StoreWriter], db_path: Path,
                                 key: bytes) -> None:
    make_writer().close()
    assert _verify(db_path, key).ok


def test_wrong_key_fails_at_the_first_row(filled: Path) -> None:
    result = _verify(filled, os.urandom(32))
    assert not result.ok and result.first_bad_id == 1


@pytest.mark.parametrize("change", [
    "text = X'00ff'", "ts = 'yesterday'", "data = 42", "hash = 'é' || substr(hash, 2)",
    "prev = 'x'",
    "text = 'command harmless'", "data = '{\"n\":999}'", "ts = ts + 1", "actor = 'person'",
    "kind = 'exec.allowed'", "run_id = NULL",
])
def test_edited_row_is_caught(filled: Path, key: bytes, change: str) -> None:
    _tamper(filled, f"UPDATE events SET {change} WHERE id = 42")
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 42
    assert "altered" in result.reason or "does not link" in result.reason


def test_row_rehashed_without_the_key_is_caught(filled: Path, key: bytes) -> None:
    conn = sqlite3.connect(filled)
    row = dict(zip(("id", "ts", "run_id", "kind", "actor", "text", "data", "prev"),
                   conn.execute("SELECT id, ts, run_id, kind, actor, text, data, prev FROM events "
                                "WHERE id = 42").fetchone(), strict=True))
    row["text"] = "nothing to see"
    forged = chain_hash(os.urandom(32), row["prev"], row)
    conn.execute("UPDATE events SET text = ?, hash = ? WHERE id = 42", (row["text"], forged))
    conn.commit()
    conn.close()
    assert _verify(filled, key).first_bad_id == 42


def test_deleted_middle_row_is_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, "DELETE FROM events WHERE id = 50")
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 50 and "missing" in result.reason
    assert result.checked == 49


def test_renumbered_rows_are_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, "DELETE FROM events WHERE id = 50", "UPDATE events SET id = id - 1 WHERE id > 50")
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 50


def test_deleted_tail_is_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, "DELETE FROM events WHERE id > 90")
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 91
    assert "removed" in result.reason and "91..100" in result.reason


def test_deleted_everything_is_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, "DELETE FROM events")
    assert not _verify(filled, key).ok


def test_forged_head_is_caught(filled: Path, key: bytes) -> None:
    conn = sqlite3.connect(filled)
    last = conn.execute("SELECT id, hash FROM events WHERE id = 90").fetchone()
    conn.execute("DELETE FROM events WHERE id > 90")
    conn.execute("UPDATE meta SET value = ? WHERE key = ?",
                 (json.dumps({"id": last[0], "hash": last[1], "mac": "0" * 64}), audit.HEAD_KEY))
    conn.commit()
    conn.close()
    result = _verify(filled, key)
    assert not result.ok and "head" in result.reason


def test_garbage_head_is_caught(filled: Path, key: bytes,
                                make_writer: Callable[..., StoreWriter]) -> None:
    _tamper(filled, f"UPDATE meta SET value = '{{\"id\": 100, \"hash\": \"ü\", \"mac\": \"ü\"}}' "
                    f"WHERE key = '{audit.HEAD_KEY}'")
    assert not _verify(filled, key).ok
    w = make_writer()  # the writer still starts, says so in the chain, and carries on
    w.commit("daemon.started")
    w.close()
    conn = sqlite3.connect(filled)
    assert conn.execute("SELECT count(*) FROM events WHERE kind = 'store.chain_warning'").fetchone()[0] == 1
    conn.close()


def test_removed_head_is_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, f"DELETE FROM meta WHERE key = '{audit.HEAD_KEY}'")
    assert not _verify(filled, key).ok


def test_appended_row_is_caught(filled: Path, key: bytes) -> None:
    _tamper(filled, "INSERT INTO events (id, ts, kind, text, prev, hash) "
                    "SELECT 101, 1.0, 'x', 'y', hash, 'ab' FROM events WHERE id = 100")
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 101


def test_writer_restart_keeps_a_deleted_tail_visible(filled: Path, key: bytes,
                                                     make_writer: Callable[..., StoreWriter]) -> None:
    _tamper(filled, "DELETE FROM events WHERE id > 90")
    w = make_writer()
    row = w.commit("daemon.started")
    w.close()
    assert row["id"] == 101  # continues after the signed head, not after the last row left
    result = _verify(filled, key)
    assert not result.ok and result.first_bad_id == 91


def test_writer_restart_continues_the_chain(filled: Path, key: bytes,
                                            make_writer: Callable[..., StoreWriter]) -> None:
    w = make_writer()
    assert w.commit("daemon.started")["id"] == 101
    w.close()
    assert _verify(filled, key).checked == 101


# --- prune -----------------------------------------------------------------------------------


@pytest.fixture
def aged(make_writer: Callable[..., StoreWriter], db_path: Path) -> Path:
    """ids 1..60 a day old, 61..100 fresh, with output of both ages; written, then closed."""
    w = make_writer()
    old, now = time.time() - 86400, time.time()
    for i in range(1, 101):
        ts = old + i if i <= 60 else now + i
        w.record("net.decision", run_id="r1", text=f"host{i}.example.com", ts=ts)
        w.record_output("r1", "stdout", f"line {i}", ts=ts)
    w.close()
    return db_path


def _prune(make_writer: Callable[..., StoreWriter], cutoff: float, **kw: object) -> audit.PruneResult:
    w = make_writer(**kw)
    try:
        return w.prune(cutoff)
    finally:
        w.close()


def test_prune_keeps_verify_green(aged: Path, key: bytes,
                                  make_writer: Callable[..., StoreWriter]) -> None:
    result = _prune(make_writer, time.time() - 3600)
    assert result.pruned == 60 and result.upto_id == 60 and result.output_pruned == 60
    assert result.anchor_id is not None
    conn = sqlite3.connect(aged)
    assert conn.execute("SELECT min(id) FROM events").fetchone()[0] == 61
    assert conn.execute("SELECT count(*) FROM output").fetchone()[0] == 40
    pruned_event = conn.execute("SELECT data FROM events WHERE kind = 'store.pruned'").fetchone()
    assert json.loads(pruned_event[0])["pruned"] == 60
    # the full-text index forgot the pruned rows too
    assert conn.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'host5'").fetchone()[0] == 0
    conn.close()
    verdict = _verify(aged, key)
    assert verdict.ok and verdict.checked == 41, verdict


def test_prune_in_many_chunks_and_twice(aged: Path, key: bytes,
                                        make_writer: Callable[..., StoreWriter]) -> None:
    first = _prune(make_writer, time.time() - 3600, prune_chunk=7)
    assert first.pruned == 60
    conn = sqlite3.connect(aged)
    assert conn.execute("SELECT count(*) FROM anchors").fetchone()[0] == 9  # ceil(60 / 7)
    conn.close()
    assert _verify(aged, key).ok
    second = _prune(make_writer, time.time() + 10_000)  # now everything, incl. the first note
    assert second.pruned == 41
    assert _verify(aged, key).ok


def test_prune_with_nothing_old_does_nothing(aged: Path, key: bytes,
                                             make_writer: Callable[..., StoreWriter]) -> None:
    result = _prune(make_writer, time.time() - 10 * 86400)
    assert result.pruned == 0 and result.anchor_id is None and result.output_pruned == 0
    assert _verify(aged, key).checked == 100


def test_prune_stops_at_the_first_new_row(make_writer: Callable[..., StoreWriter], key: bytes,
                                          db_path: Path) -> None:
    """A prefix only: an old row after a new one (clock step) stays, so the chain stays whole."""
    w = make_writer()
    now = time.time()
    for ts in (now - 900, now - 800, now + 5, now - 700):
        w.record("x", ts=ts)
    assert w.prune(now - 100).pruned == 2
    w.close()
    assert _verify(db_path, key).ok


@pytest.mark.parametrize("change", [
    # Flip the first hex digit: a fixed prefix would change nothing when it is already there.
    "sig = CASE substr(sig, 1, 1) WHEN '0' THEN '1' ELSE '0' END || substr(sig, 2)",
    "upto_hash = CASE substr(upto_hash, 1, 1) WHEN '0' THEN '1' ELSE '0' END"
    " || substr(upto_hash, 2)",
    "pruned = pruned + 1", "upto_id = upto_id - 1", "sig = 'é'", "upto_id = 'sixty'",
    "ts = ts + 1",
])
def test_tampered_anchor_is_caught(aged: Path, key: bytes, change: str,
                                   make_writer: Callable[..., StoreWriter]) -> None:
    _prune(make_writer, time.time() - 3600)
    _tamper(aged, f"UPDATE anchors SET {change}")
    assert not _verify(aged, key).ok


def test_forged_anchor_hiding_a_deletion_is_caught(aged: Path, key: bytes) -> None:
    """Delete a prefix by hand and write an anchor for it without the key."""
    conn = sqlite3.connect(aged)
    upto_hash = conn.execute("SELECT hash FROM events WHERE id = 30").fetchone()[0]
    conn.execute("DELETE FROM events WHERE id <= 30")
    forged = audit.anchor_sig(os.urandom(32), 1, 30, upto_hash, 30, 1.0)
    conn.execute("INSERT INTO anchors VALUES (1, 30, ?, 30, 1.0, ?)", (upto_hash, forged))
    conn.commit()
    conn.close()
    result = _verify(aged, key)
    assert not result.ok and "anchor" in result.reason


def test_prefix_deleted_without_anchor_is_caught(aged: Path, key: bytes) -> None:
    _tamper(aged, "DELETE FROM events WHERE id <= 30")
    result = _verify(aged, key)
    assert not result.ok and result.first_bad_id == 1


def test_removing_the_anchor_after_prune_is_caught(aged: Path, key: bytes,
                                                   make_writer: Callable[..., StoreWriter]) -> None:
    _prune(make_writer, time.time() - 3600)
    _tamper(aged, "DELETE FROM anchors")
    assert not _verify(aged, key).ok


def test_deleting_rows_just_after_the_anchor_is_caught(aged: Path, key: bytes,
                                                       make_writer: Callable[..., StoreWriter]) -> None:
    _prune(make_writer, time.time() - 3600)
    _tamper(aged, "DELETE FROM events WHERE id IN (61, 62)")
    result = _verify(aged, key)
    assert not result.ok and result.first_bad_id == 61
