"""Full-text indexing is a second pass behind the commits (store/fts.py): a search made
SEARCH_BOUND_S after an event was committed finds it, with the writer idle and while bulk rows
keep arriving; flush() makes everything searchable at once; the index always agrees with what
it covers (FTS5's own integrity check, against the content)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from store import fts, history
from store.db import open_db
from store.writer import StoreWriter


def found(db_path: Path, word: str, run_id: str | None = None) -> bool:
    reader = open_db(db_path, readonly=True)
    try:
        if run_id is not None:
            return bool(history.query_output(reader, run_id, search=word))
        return bool(history.query_events(reader, search=word))
    finally:
        reader.close()


def integrity(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
        conn.execute("INSERT INTO output_fts(output_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        conn.close()


def test_an_idle_writer_indexes_within_the_bound(make_writer: Callable[..., StoreWriter],
                                                 db_path: Path) -> None:
    w = make_writer()
    w.commit("exec.decided", run_id="r1", text="approved zanzibarquux by alice")
    w.record_output("r1", "stdout", "compiling quixotrelle")
    time.sleep(fts.SEARCH_BOUND_S)
    assert found(db_path, "zanzibarquux")
    assert found(db_path, "quixotrelle", run_id="r1")
    integrity(db_path)


def test_the_bound_holds_while_bulk_rows_keep_coming(make_writer: Callable[..., StoreWriter],
                                                     db_path: Path) -> None:
    w = make_writer()
    stop = threading.Event()

    def bulk() -> None:  # a busy agent: 2,000 output lines and 500 samples a second
        i = 0
        while not stop.is_set():
            for _ in range(20):
                w.record_output("r1", "stdout", f"line {i} of a long build log")
                i += 1
            for _ in range(5):
                w.record("gpu.sample", text=f"gpu0 power {i % 300} W", data={"i": i})
            time.sleep(0.01)

    producer = threading.Thread(target=bulk)
    producer.start()
    try:
        time.sleep(0.3)
        for n in range(3):
            word = f"marker{n}xylophone"
            w.commit("policy.decision", run_id="r1", text=f"git status {word} allowed")
            time.sleep(fts.SEARCH_BOUND_S)
            assert found(db_path, word), f"{word} not searchable {fts.SEARCH_BOUND_S}s after commit"
    finally:
        stop.set()
        producer.join()
    assert w.stats()["dropped"] == 0
    integrity(db_path)


def test_flush_makes_everything_searchable_at_once(make_writer: Callable[..., StoreWriter],
                                                   db_path: Path) -> None:
    w = make_writer()
    for i in range(3000):  # more than one index chunk
        w.record("net.decision", text=f"CONNECT host{i}.example.com:443 allowed")
    w.record("net.decision", text="CONNECT lastonehere.example.com:443 allowed")
    w.flush()
    assert found(db_path, "lastonehere")
    assert w.stats()["indexed_upto"][0] == 3001
    integrity(db_path)


def test_rows_left_unindexed_by_a_crash_are_indexed_by_the_next_writer(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes) -> None:
    w = make_writer()
    w.flush()
    conn = sqlite3.connect(db_path, isolation_level=None)  # what a killed writer leaves behind
    conn.execute("INSERT INTO events (id, ts, kind, text, prev, hash) VALUES "
                 "(1, 1.0, 'x', 'orphanedword', '', '')")
    conn.close()
    w.close()
    assert not found(db_path, "orphanedword")
    integrity(db_path)  # the index agrees with what it claims to cover
    w2 = StoreWriter(db_path, key).start()
    try:
        time.sleep(fts.SEARCH_BOUND_S)
        assert found(db_path, "orphanedword")
    finally:
        w2.close()
