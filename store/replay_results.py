"""Replay results in SQLite: one row per step, grouped by sweep, and the per-agent figures
of the trace each sweep replayed (so the report and the console show them after the trace
file is gone).

Kept in their own database (replay.db beside the history): the replay runs in the person's
own process, and the history database has exactly one writer, the daemon. A step's figures
are stored as JSON so a figure added later needs no migration.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """CREATE TABLE IF NOT EXISTS replay_steps (
    id INTEGER PRIMARY KEY, sweep_id TEXT NOT NULL, ts REAL NOT NULL, trace TEXT, url TEXT,
    model TEXT, concurrency INTEGER NOT NULL, figures TEXT NOT NULL)"""
AGENTS_SCHEMA = """CREATE TABLE IF NOT EXISTS replay_agents (
    sweep_id TEXT PRIMARY KEY, agents TEXT NOT NULL)"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(SCHEMA)
    conn.execute(AGENTS_SCHEMA)
    return conn


def new_sweep_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def store_step(path: Path, sweep_id: str, step: dict[str, Any], *, trace: str, url: str,
               model: str, ts: float | None = None) -> None:
    conn = _connect(path)
    try:
        with conn:
            conn.execute("INSERT INTO replay_steps (sweep_id, ts, trace, url, model, "
                         "concurrency, figures) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (sweep_id, time.time() if ts is None else ts, trace, url, model, int(step["concurrency"]),
                          json.dumps(step, separators=(",", ":"))))
    finally:
        conn.close()


def store_agents(path: Path, sweep_id: str, agents: list[dict[str, Any]]) -> None:
    """The replayed trace's per-lane figures (console/replay/summary.py), once per sweep."""
    conn = _connect(path)
    try:
        with conn:
            conn.execute("INSERT OR REPLACE INTO replay_agents (sweep_id, agents) VALUES (?, ?)",
                         (sweep_id, json.dumps(agents, separators=(",", ":"))))
    finally:
        conn.close()


def sweeps(path: Path, sweep_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest sweeps (or one), newest first, each with its steps in order."""
    if not path.exists():
        return []
    conn = _connect(path)
    try:
        if sweep_id:
            ids = [sweep_id]
        else:
            ids = [r[0] for r in conn.execute(
                "SELECT sweep_id FROM replay_steps GROUP BY sweep_id ORDER BY max(id) DESC "
                "LIMIT ?", (limit,))]
        out = []
        for sid in ids:
            rows = conn.execute("SELECT ts, trace, url, model, figures FROM replay_steps "
                                "WHERE sweep_id = ? ORDER BY id", (sid,)).fetchall()
            agents = conn.execute("SELECT agents FROM replay_agents WHERE sweep_id = ?",
                                  (sid,)).fetchone()
            if rows:
                out.append({"sweep_id": sid, "ts": rows[0][0], "trace": rows[0][1],
                            "url": rows[0][2], "model": rows[0][3],
                            "steps": [json.loads(r[4]) for r in rows],
                            "agents": json.loads(agents[0]) if agents else []})
        return out
    finally:
        conn.close()
