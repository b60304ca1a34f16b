"""Opening, pragmas, schema and migrations, on real database files."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from store import history
from store.db import SCHEMA_VERSION, SchemaError, StoreError, migrate, open_db, schema_version


def test_write_connection_pragmas(db_path: Path) -> None:
    db = open_db(db_path)
    conn = db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert schema_version(db) == SCHEMA_VERSION
    db.close()


def test_database_file_is_private(db_path: Path) -> None:
    open_db(db_path).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_schema_has_the_tables_and_indexes(db_path: Path) -> None:
    db = open_db(db_path)
    names = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")}
    for name in ("events", "output", "runs", "anchors", "meta", "events_fts", "output_fts",
                 "events_run", "events_kind", "events_ts", "output_run"):
        assert name in names
    run_cols = {c.name for c in db["runs"].columns}
    assert {"tokens_in", "tokens_out", "energy_j", "cost", "pids", "info"} <= run_cols
    db.close()


def test_reader_is_read_only(db_path: Path) -> None:
    open_db(db_path).close()
    reader = open_db(db_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        reader.conn.execute("INSERT INTO runs (id) VALUES ('x')")
    reader.close()


def test_reader_on_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="start the daemon"):
        open_db(tmp_path / "nothing.db", readonly=True)
    assert not (tmp_path / "nothing.db").exists()


def test_path_with_uri_characters(tmp_path: Path) -> None:
    odd = tmp_path / "a dir?with#odd%chars" / "h.db"
    open_db(odd).close()
    open_db(odd, readonly=True).close()


def test_v1_database_migrates_forward(db_path: Path) -> None:
    db = open_db(db_path, migrate_schema=False)
    assert migrate(db, target=1) == 1
    db.conn.execute(
        "INSERT INTO events (id, ts, run_id, kind, actor, text, data, prev, hash) "
        "VALUES (1, 1.0, 'r1', 'exec.request', 'me', 'git push origin main', NULL, 'p', 'h')")
    db.conn.execute("INSERT INTO output (run_id, ts, stream, line) VALUES ('r1', 1.0, 'stdout', "
                    "'compiling widgets')")
    db.conn.execute("INSERT INTO runs (id, profile, state) VALUES ('r1', 'demo', 'exited')")
    db.close()

    db = open_db(db_path)  # migrates
    assert schema_version(db) == SCHEMA_VERSION
    # rows written before full-text search existed are searchable after the upgrade
    assert [e["id"] for e in history.query_events(db, search="push")] == [1]
    assert [o["line"] for o in history.query_output(db, "r1", search="widgets")] == ["compiling widgets"]
    run = history.get_run(db, "r1")
    assert run is not None and run["tokens_in"] == 0 and run["cost"] == 0
    db.close()


def test_each_migration_step_is_recorded(db_path: Path) -> None:
    db = open_db(db_path, migrate_schema=False)
    for v in range(1, SCHEMA_VERSION + 1):
        assert migrate(db, target=v) == v
        assert schema_version(db) == v
    assert migrate(db) == SCHEMA_VERSION  # idempotent
    db.close()


def test_newer_database_is_refused(db_path: Path) -> None:
    open_db(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer pilothouse") as err:
        open_db(db_path)
    assert f"v{SCHEMA_VERSION + 1}" in str(err.value)
    with pytest.raises(SchemaError, match="newer pilothouse"):
        open_db(db_path, readonly=True)


def test_reader_refuses_an_old_schema(db_path: Path) -> None:
    db = open_db(db_path, migrate_schema=False)
    migrate(db, target=1)
    db.close()
    with pytest.raises(SchemaError, match="start the daemon once to upgrade"):
        open_db(db_path, readonly=True)


def test_foreign_database_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not a pilothouse history database"):
        open_db(db_path)


def test_failed_migration_leaves_the_old_version(db_path: Path) -> None:
    db = open_db(db_path, migrate_schema=False)
    migrate(db, target=1)
    # something in the way of step 2 makes it fail; version 1 must stay intact
    db.conn.execute("CREATE TABLE events_fts (x)")
    with pytest.raises(sqlite3.OperationalError):
        migrate(db)
    assert schema_version(db) == 1
    assert not db.conn.in_transaction
    db.close()
