"""Opening the history database: pragmas, schema, migrations.

One module so that every connection (the writer's, each reader's, the benchmark's anchor) gets
the same pragmas, and the schema's history lives in one ordered list.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils


class StoreError(Exception):
    """The store could not do what was asked; callers refuse the action (fail closed)."""


class SchemaError(StoreError):
    """The database's schema is not one this code can use (too new, too old, not ours)."""


BUSY_TIMEOUT_MS = 5000

# Durability first on the write side: a security event that was acknowledged survives kill -9
# and power loss (FULL syncs the WAL on every commit).
WRITE_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_size_limit=67108864",
    "PRAGMA cache_size=-32000",
)
READ_PRAGMAS: tuple[str, ...] = (
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    "PRAGMA query_only=ON",
    "PRAGMA cache_size=-32000",
    "PRAGMA mmap_size=268435456",
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A raw connection with our pragmas, in autocommit mode (we issue BEGIN ourselves)."""
    path = Path(path)
    if readonly:
        if not path.exists():
            raise StoreError(
                f"no history database at {path} yet; start the daemon once (pilothouse daemon) "
                "to create it"
            )
        uri = path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        pragmas = READ_PRAGMAS
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        pragmas = WRITE_PRAGMAS
    try:
        for pragma in pragmas:
            conn.execute(pragma)
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{path}: could not switch to WAL mode (got {mode!r})")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot open history database {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """Create the database file 0600 so the history is not world-readable (SQLite copies the
    mode onto -wal and -shm)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def open_db(path: Path, *, readonly: bool = False, migrate_schema: bool = True) -> sqlite_utils.Database:
    """Open the history database.

    The write side (readonly=False) is meant for the one StoreWriter; it migrates the schema
    forward unless migrate_schema=False. A reader (readonly=True) opens its own `mode=ro`
    connection and refuses a schema that is not exactly the current one.
    """
    conn = connect(path, readonly=readonly)
    db = sqlite_utils.Database(conn, execute_plugins=False, recursive_triggers=False)
    try:
        if readonly:
            version = schema_version(db)
            if version > SCHEMA_VERSION:
                raise _too_new(path, version)
            if version < SCHEMA_VERSION:
                raise SchemaError(
                    f"history database {path} has schema v{version}, this pilothouse needs "
                    f"v{SCHEMA_VERSION}; start the daemon once to upgrade it"
                )
        elif migrate_schema:
            migrate(db)
    except BaseException:
        conn.close()
        raise
    return db


# --- schema ------------------------------------------------------------------------------------


def _m1_core(conn: sqlite3.Connection) -> None:
    """v1: the chained events, bulk output, runs, prune anchors."""
    conn.execute("""CREATE TABLE events (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT, kind TEXT NOT NULL, actor TEXT,
        text TEXT NOT NULL DEFAULT '', data TEXT, prev TEXT NOT NULL, hash TEXT NOT NULL)""")
    conn.execute("CREATE INDEX events_run ON events(run_id, id)")
    conn.execute("CREATE INDEX events_kind ON events(kind, id)")
    conn.execute("CREATE INDEX events_ts ON events(ts)")
    conn.execute("""CREATE TABLE output (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, ts REAL NOT NULL, stream TEXT,
        line TEXT NOT NULL)""")
    conn.execute("CREATE INDEX output_run ON output(run_id, id)")
    conn.execute("""CREATE TABLE runs (
        id TEXT PRIMARY KEY, profile TEXT, backend TEXT, state TEXT, command TEXT,
        workspace TEXT, started_at REAL, ended_at REAL, exit_code INTEGER, pids TEXT,
        info TEXT)""")
    conn.execute("""CREATE TABLE anchors (
        id INTEGER PRIMARY KEY, upto_id INTEGER NOT NULL, upto_hash TEXT NOT NULL,
        pruned INTEGER NOT NULL, ts REAL NOT NULL, sig TEXT NOT NULL)""")


_FTS_TRIGGERS = (
    """CREATE TRIGGER events_fts_ai AFTER INSERT ON events BEGIN
        INSERT INTO events_fts(rowid, text, kind) VALUES (new.id, new.text, new.kind);
    END""",
    """CREATE TRIGGER events_fts_ad AFTER DELETE ON events BEGIN
        INSERT INTO events_fts(events_fts, rowid, text, kind)
        VALUES ('delete', old.id, old.text, old.kind);
    END""",
    """CREATE TRIGGER events_fts_au AFTER UPDATE OF text, kind ON events BEGIN
        INSERT INTO events_fts(events_fts, rowid, text, kind)
        VALUES ('delete', old.id, old.text, old.kind);
        INSERT INTO events_fts(rowid, text, kind) VALUES (new.id, new.text, new.kind);
    END""",
    """CREATE TRIGGER output_fts_ai AFTER INSERT ON output BEGIN
        INSERT INTO output_fts(rowid, line) VALUES (new.id, new.line);
    END""",
    """CREATE TRIGGER output_fts_ad AFTER DELETE ON output BEGIN
        INSERT INTO output_fts(output_fts, rowid, line) VALUES ('delete', old.id, old.line);
    END""",
    """CREATE TRIGGER output_fts_au AFTER UPDATE OF line ON output BEGIN
        INSERT INTO output_fts(output_fts, rowid, line) VALUES ('delete', old.id, old.line);
        INSERT INTO output_fts(rowid, line) VALUES (new.id, new.line);
    END""",
)


def _m2_fts(conn: sqlite3.Connection) -> None:
    """v2: full-text search over events and output, external content kept in sync by triggers,
    rebuilt from the rows already there."""
    # prefix='3': a 3-character prefix index, so "pyt*" is one doclist, not a merge of
    # every term that starts with it (150 ms -> 0.5 ms at 1M events, ~8% on writes).
    conn.execute("""CREATE VIRTUAL TABLE events_fts USING fts5(
        text, kind, content='events', content_rowid='id', prefix='3')""")
    conn.execute("""CREATE VIRTUAL TABLE output_fts USING fts5(
        line, content='output', content_rowid='id', prefix='3')""")
    for trigger in _FTS_TRIGGERS:
        conn.execute(trigger)
    conn.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
    conn.execute("INSERT INTO output_fts(output_fts) VALUES ('rebuild')")


def _m3_metering(conn: sqlite3.Connection) -> None:
    """v3: per-run token and energy totals."""
    for column in ("tokens_in INTEGER DEFAULT 0", "tokens_out INTEGER DEFAULT 0",
                   "energy_j REAL DEFAULT 0", "cost REAL DEFAULT 0"):
        conn.execute(f"ALTER TABLE runs ADD COLUMN {column}")


def _m4_trace(conn: sqlite3.Connection) -> None:
    """v4: one row per inference request through the gate (console/gate/trace.py)."""
    conn.execute("""CREATE TABLE trace_requests (
        id INTEGER PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, run_id TEXT, profile TEXT,
        lane TEXT, start REAL NOT NULL, first_byte REAL, end REAL, think_s REAL, method TEXT,
        endpoint TEXT, status INTEGER, model TEXT, stream INTEGER, max_tokens INTEGER,
        prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER,
        blocks TEXT, content TEXT)""")
    conn.execute("CREATE INDEX trace_requests_run ON trace_requests(run_id, start)")
    conn.execute("CREATE INDEX trace_requests_start ON trace_requests(start)")


FTS_EVENTS_MARK = "fts_events_upto"  # meta keys: the last row id full-text indexed
FTS_OUTPUT_MARK = "fts_output_upto"


def _m5_fts_second_pass(conn: sqlite3.Connection) -> None:
    """v5: full-text indexing leaves the write path (store/fts.py indexes committed rows in
    batches). Each index now reads its content through a view of the rows up to its mark, so
    index and content agree at every commit (FTS5's integrity-check holds) and a pruned or
    edited row is taken out of the index only if it was ever put in."""
    for name in ("events_fts_ai", "events_fts_ad", "events_fts_au",
                 "output_fts_ai", "output_fts_ad", "output_fts_au"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table, mark, cols in (("events", FTS_EVENTS_MARK, "text, kind"),
                              ("output", FTS_OUTPUT_MARK, "line")):
        conn.execute("INSERT INTO meta (key, value) VALUES (?, (SELECT coalesce(max(id), 0) "
                     f"FROM {table})) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (mark,))
        upto = f"(SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{mark}')"
        conn.execute(f"CREATE VIEW {table}_indexed AS SELECT id, {cols} FROM {table} "
                     f"WHERE id <= {upto}")
        conn.execute(f"DROP TABLE {table}_fts")
        conn.execute(f"CREATE VIRTUAL TABLE {table}_fts USING fts5({cols}, "
                     f"content='{table}_indexed', content_rowid='id', prefix='3')")
        old = ", ".join(f"old.{c.strip()}" for c in cols.split(","))
        new = ", ".join(f"new.{c.strip()}" for c in cols.split(","))
        conn.execute(f"""CREATE TRIGGER {table}_fts_ad AFTER DELETE ON {table}
            WHEN old.id <= {upto} BEGIN
            INSERT INTO {table}_fts({table}_fts, rowid, {cols}) VALUES ('delete', old.id, {old});
        END""")
        conn.execute(f"""CREATE TRIGGER {table}_fts_au AFTER UPDATE OF {cols} ON {table}
            WHEN old.id <= {upto} BEGIN
            INSERT INTO {table}_fts({table}_fts, rowid, {cols}) VALUES ('delete', old.id, {old});
            INSERT INTO {table}_fts(rowid, {cols}) VALUES (new.id, {new});
        END""")
        conn.execute(f"INSERT INTO {table}_fts({table}_fts) VALUES ('rebuild')")


# Ordered: MIGRATIONS[n] takes a database from version n to n + 1. Append only; never edit a
# migration that has shipped.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_m1_core, _m2_fts, _m3_metering,
                                                                _m4_trace, _m5_fts_second_pass)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    """The version recorded in meta; 0 for an empty file. Refuses a file that is not ours."""
    conn = db.conn
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        if tables:
            raise SchemaError(
                f"{_db_file(conn)} is not a pilothouse history database (no meta table); "
                "move it aside or point PILOTHOUSE_HOME elsewhere"
            )
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else 0
    except ValueError:
        raise SchemaError(f"{_db_file(conn)}: unreadable schema_version {row[0]!r}") from None


def migrate(db: sqlite_utils.Database, *, target: int | None = None) -> int:
    """Bring the schema forward to `target` (default: current), one transaction per step.

    Refuses a database written by a newer pilothouse rather than guessing at its schema.
    Returns the version reached.
    """
    target = SCHEMA_VERSION if target is None else target
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target schema version must be 0..{SCHEMA_VERSION}, not {target}")
    conn = db.conn
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise _too_new(_db_file(conn), version)
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)  # another process may have migrated meanwhile
            if version >= target:
                conn.execute("COMMIT")
                break
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            MIGRATIONS[version](conn)
            version += 1
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(version),)
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return version


def _too_new(path: object, version: int) -> SchemaError:
    return SchemaError(
        f"history database {path} has schema v{version}, written by a newer pilothouse; this "
        f"one understands up to v{SCHEMA_VERSION}. Upgrade pilothouse, or move the database "
        "aside to start a fresh history"
    )


def _db_file(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row and row[2] else "the database"
