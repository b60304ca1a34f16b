"""Review s14b: attacks on the history's message bounds and on `audit verify`.

Each test asserts the SECURE behaviour: it fails while the attack works.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from console import wire
from console.daemon.ops.history import export_op, history_op
from store import audit, history
from store.db import open_db
from store.writer import StoreWriter
from tests.store.conftest import FileStore, sealed_run_with_a_secret

Make = Callable[..., StoreWriter]


def _agent_sized_policy_events(w: StoreWriter, n: int) -> None:
    """What an agent's asks leave: each `ask` with a distinct subject of SUBJECT_MAX_BYTES (4 KiB)
    and a detail of DETAIL_MAX_BYTES (16 KiB) that the policy decides alone is one
    policy.decision row holding both (Inbox.record_policy). The ask rate (64 at once, then 10 a
    second) lets one run make a thousand of them in under two minutes; a distinct subject each
    passes the per-second flood admission."""
    for i in range(n):
        subject = f"curl https://x{i}.invalid/" + "a" * 4000
        w.record("policy.decision", run_id="r1", actor="policy", text=f"deny exec: {subject[:200]}",
                 data={"actor": "policy", "run_id": "r1", "profile": "default", "kind": "exec",
                       "subject": subject, "action": "deny",
                       "provenance": {"source": "rule", "detail": "deny rule curl *"},
                       "detail": {"agent's note": "n" * 16000}})
    w.flush()


def test_export_never_sends_a_message_a_client_cannot_read(make_writer: Make,
                                                           db_path: Path) -> None:
    """`export` sends 1000 events per export.rows message whatever their size. Agent-made
    policy rows of ~20 KiB each make one message ~20 MB, five times wire.OPERATOR_MAX_LINE:
    `pilothouse export` (sync and aio clients read at most 4 MiB a line) fails with
    MessageTooLong and the audit trail cannot be exported at all."""
    w = make_writer()
    _agent_sized_policy_events(w, 400)
    w.close()
    sizes: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        sizes.append(len(wire.encode(message)))

    core = SimpleNamespace(store=FileStore(db_path))
    result = asyncio.run(export_op(core, None, {}, send))  # type: ignore[arg-type]
    assert result == {"rows": 400}
    assert max(sizes) <= wire.OPERATOR_MAX_LINE, (
        f"an export.rows message of {max(sizes)} bytes: a client reads at most "
        f"{wire.OPERATOR_MAX_LINE}")


def test_a_history_page_is_never_a_message_a_client_cannot_read(make_writer: Make,
                                                                db_path: Path) -> None:
    """`history --limit 5000` answers in one message (limit capped at 5000 rows, not bytes):
    agent-sized rows make it far over 4 MiB, and the console's history view / `pilothouse
    history` cannot read the answer."""
    w = make_writer()
    _agent_sized_policy_events(w, 400)
    w.close()

    async def send(message: dict[str, Any]) -> None:  # history answers, it does not stream
        raise AssertionError("history does not stream")

    core = SimpleNamespace(store=FileStore(db_path))
    result = asyncio.run(history_op(core, None, {"limit": 5000}, send))  # type: ignore[arg-type]
    answer = wire.encode(wire.ok(1, result))
    size, rows = len(answer), wire.decode(answer)["result"]
    assert size <= wire.OPERATOR_MAX_LINE, (
        f"a history answer of {size} bytes ({len(rows)} rows): a client reads at most "
        f"{wire.OPERATOR_MAX_LINE}")


def test_a_reindexed_line_is_found_even_while_someone_holds_the_write_lock(
        make_writer: Make, db_path: Path, key: bytes) -> None:
    """A sealed run's line re-indexed with other words keeps every count right; only FTS5's own
    integrity-check (integrity.fts_check) finds it. That check is a write statement on a side
    connection, and when it cannot get the write lock (\"locked\") it returns None, silently:
    verify says ok. Whoever can write the file can hold a write lock (BEGIN IMMEDIATE) while
    verify runs; a busy live writer can do the same. The search for the line finds nothing,
    `audit verify` says the history holds."""
    sealed_run_with_a_secret(make_writer)
    conn = sqlite3.connect(db_path, isolation_level=None)
    rid, line = conn.execute("SELECT id, line FROM output WHERE line LIKE 'uploading%'").fetchone()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO output_fts(output_fts, rowid, line) VALUES ('delete', ?, ?)",
                 (rid, line))
    conn.execute("INSERT INTO output_fts(rowid, line) VALUES (?, 'building step two')", (rid,))
    conn.execute("COMMIT")
    db = open_db(db_path, readonly=True)
    hidden = not history.query_output(db, "r1", search="id_ed25519")
    db.close()
    assert hidden
    # Without the lock, verify finds it (held):
    db = open_db(db_path, readonly=True)
    try:
        assert not audit.verify(db, key).ok
    finally:
        db.close()
    # The attacker's lock, held while verify runs:
    conn.execute("BEGIN IMMEDIATE")
    try:
        db = open_db(db_path, readonly=True)
        try:
            result = audit.verify(db, key)
        finally:
            db.close()
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert not (hidden and result.ok), (
        "a sealed run's line is hidden from search and verify says ok while another connection "
        f"holds the write lock ({result.as_dict()})")


_ = threading  # (kept for a variant with a busy writer)


def test_ps_all_is_never_a_message_a_client_cannot_read(make_writer: Make, db_path: Path) -> None:
    """`run.start` takes a command of any length (an approver's, up to the 4 MiB request
    line; nothing in ops/runs.py or RunManager.start bounds it), and its row keeps it. Three
    runs started with a 1.5 MiB argument each make `ps --all` (runs.list, up to
    RUNS_LIST_MAX rows in one answer) a message over 4 MiB: every operator's `ps --all` and
    the console's run list fail to read it, for as long as those rows are in the history."""
    import json as _json

    from console.daemon.ops.runs import runs_list

    w = make_writer()
    big = ["true"] + ["x" * (100 * 1024)] * 15  # each under MAX_ARG_STRLEN: it even execs

    def add(db: Any) -> None:
        for i in range(3):
            db.conn.execute(
                "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at, "
                "ended_at, exit_code, pids, info) VALUES (?, 'default', 'bwrap', 'exited', ?, "
                "'/tmp/w', ?, ?, 0, '[]', '{}')",
                (f"r{i}", _json.dumps(big), time.time() - 60, time.time() - 30))

    w.call(add).result(10)
    w.close()

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("runs.list does not stream")

    core = SimpleNamespace(store=FileStore(db_path), runs=SimpleNamespace(live=lambda: []))
    result = asyncio.run(runs_list(core, None, {"all": True}, send))  # type: ignore[arg-type]
    answer = wire.encode(wire.ok(1, result))
    size, rows = len(answer), wire.decode(answer)["result"]
    assert size <= wire.OPERATOR_MAX_LINE, (
        f"a runs.list answer of {size} bytes ({len(rows)} runs): a client reads at most "
        f"{wire.OPERATOR_MAX_LINE}")


def test_logs_follow_with_a_tail_does_not_lose_a_line_stored_during_the_replay(
        make_writer: Make, db_path: Path) -> None:
    """`logs -f --tail N` pages the stored lines until an empty page, then counts the run's
    stored lines in ANOTHER read (`seen = count_output(...)`). A batch committed between the
    two is counted as seen but was never sent; its live run.output event (first < seen) is then
    cut to nothing. On a busy run (a batch every few ms) the follower silently misses lines."""
    from console.daemon.ops.runs import logs

    w = make_writer()
    for i in range(5):
        w.record_output("r1", "out", f"line {i}")
    w.flush()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    injected: list[bool] = []

    class _RacyStore(FileStore):
        async def read(self, fn: Callable[[Any], Any]) -> Any:
            result = await super().read(fn)
            if result == [] and not injected:  # the empty page that ends the replay...
                injected.append(True)
                w.record_output("r1", "out", "line 5")  # ...and a batch committed just after
                w.flush()
                queue.put_nowait({"kind": "run.output", "run_id": "r1", "stream": "out",
                                  "first": 5, "lines": ["line 5"]})
                queue.put_nowait({"kind": "run.state", "run": {"state": "exited", "exit_code": 0}})
            return result

    class _Bus:
        def subscribe(self, kinds: Any, run_id: str | None = None) -> Any:
            return SimpleNamespace(get=queue.get)

        def unsubscribe(self, sub: Any) -> None:
            return None

    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        if message.get("event", {}).get("kind") == "run.output":
            sent.extend(message["event"]["lines"])

    core = SimpleNamespace(store=_RacyStore(db_path), bus=_Bus(),
                           runs=SimpleNamespace(runs={"r1": object()}))
    asyncio.run(logs(core, None, {"run": "r1", "follow": True, "tail": 3}, send))  # type: ignore[arg-type]
    w.close()
    assert injected
    assert sent[:3] == ["line 2", "line 3", "line 4"]
    assert "line 5" in sent, f"logs -f --tail 3 sent {sent}: line 5 was lost"
