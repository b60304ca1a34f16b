"""Review s17 (store): `history`, `export` and `audit verify` on a history file someone altered
(values the store never writes: a blob, text that is not UTF-8, JSON nested past the parser's
depth, a time that is not a number). `audit verify` names such a row; the views must show the
history around it, not fail.

Before: one such row made every `history` page that held it, and the whole `export`, fail in
the daemon ("history failed inside the daemon: TypeError: Object of type bytes is not JSON
serializable", or OperationalError, or RecursionError, a traceback in its log), so nothing
older than the altered row could be read to look into it; a time of 1e999 or 'yesterday'
made `pilothouse history` end in a Python traceback; a `runs` row whose command is JSON
nested 100,000 deep made `audit verify` itself fail with RecursionError; and a row id below 1
was reported as lying "before the prune anchor at row 0" in a history never pruned.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from store import StoreWriter, history
from store.db import open_db
from tests.conftest import Daemon, history_writer
from tests.store.test_audit_tamper_attacks import _sql, _verify

DEEP = "[" * 100_000 + "]" * 100_000


def _history(home: Path, n: int) -> Path:
    with history_writer(home) as w:
        for i in range(n):
            w.record("approval.decided", run_id="r0001", actor="bob", text=f"allowed step{i}",
                     data={"allow": True, "i": i})
    return next(home.rglob("pilothouse.db"))


def test_history_and_export_show_every_row_around_values_the_store_never_writes(
        home: Path, daemon_env: dict[str, str]) -> None:
    db = _history(home, 8)
    _sql(db, "UPDATE events SET text = X'00ff41' WHERE id = 2",
         "UPDATE events SET data = CAST(X'7b7dff' AS TEXT) WHERE id = 3",
         "UPDATE events SET data = ? WHERE id = 4",
         "UPDATE events SET ts = 1e999 WHERE id = 5",
         "UPDATE events SET ts = 'yesterday' WHERE id = 6",
         "UPDATE events SET actor = CAST(X'626fff62' AS TEXT) WHERE id = 7", params=(DEEP,))
    d = Daemon(home, daemon_env)
    d.start()
    try:
        table = d.cli("history", "--limit", "50", check=False)
        assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr[-800:]
        assert "allowed step0" in table.stdout, "the rows older than the altered ones are shown"
        rows = json.loads(d.cli("history", "--limit", "50", "--json").stdout)
        assert {1, 2, 3, 4, 5, 6, 7, 8} <= {r["id"] for r in rows}
        exported = d.cli("export", check=False)
        assert exported.returncode == 0, exported.stderr[-800:]
        assert {1, 2, 3, 4, 5, 6, 7, 8} <= {json.loads(line)["id"]
                                            for line in exported.stdout.splitlines()}
        found = d.cli("history", "--search", "step0", "--json")
        assert [r["id"] for r in json.loads(found.stdout)] == [1]
        verify = d.cli("audit", "verify", check=False)
        assert verify.returncode == 1 and "BROKEN at event 2" in verify.stdout, verify.stdout
    finally:
        d.stop()


def test_verify_names_a_runs_row_with_json_nested_past_the_parser(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes,
        witness: Path) -> None:
    w = make_writer(witness=witness)
    w.commit("run.started", run_id="r0001", actor="bob", text="demo",
             data={"profile": "demo", "backend": "bwrap", "workspace": "/w", "command": ["true"]})
    w.close()
    _sql(db_path, "INSERT INTO runs (id, profile, backend, state, command, workspace, "
         "started_at) VALUES ('r0001', 'demo', 'bwrap', 'running', ?, '/w', 1)", params=(DEEP,))
    result = _verify(db_path, key, witness)
    assert not result.ok and "r0001" in result.reason, result


def test_verify_does_not_name_a_prune_anchor_that_does_not_exist(
        make_writer: Callable[..., StoreWriter], db_path: Path, key: bytes,
        witness: Path) -> None:
    w = make_writer(witness=witness)
    for i in range(4):
        w.commit("approval.decided", text=f"decision {i}")
    w.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("UPDATE events SET id = -5 WHERE id = 3")
    conn.close()
    result = _verify(db_path, key, witness)
    assert not result.ok and result.first_bad_id == -5
    assert "anchor" not in result.reason, f"no prune ever happened: {result.reason!r}"


def test_a_kind_prefix_over_a_file_of_many_made_up_kinds_stays_a_few_queries(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    """`history --kind net.` reads each distinct kind under the prefix with its own queries
    ("there are tens, not millions"): 100,000 made-up kinds took 5.4 s a page here, a million
    about a minute, in a reader thread of the daemon, for every such page and console view.
    Counted in statements, not seconds: past a few hundred kinds it must be one range query."""
    w = make_writer()
    for i in range(20):
        w.commit("net.decision", text=f"allow host{i}.invalid:443")
    w.close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events (ts, run_id, kind, actor, text, data, prev, hash) "
                     "VALUES (1, 'r1', ?, 'a', 't', NULL, '', '')",
                     [(f"net.k{i:06d}",) for i in range(3000)])
    conn.execute("COMMIT")
    conn.close()
    db = open_db(db_path, readonly=True)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        rows = history.query_events(db, kind="net.", limit=50)
    finally:
        db.conn.set_trace_callback(None)
        db.close()
    assert len(rows) == 50 and all(r["kind"].startswith("net.") for r in rows)
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert len(statements) < 300, f"{len(statements)} statements for one page of history"
