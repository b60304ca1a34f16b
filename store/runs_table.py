"""The runs table as the daemon's run manager writes it: one row per run, upserted as the run
moves through its states, and the rows a restarted daemon finds still live."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from store import values


def run_ids(conn: Any) -> set[str]:
    """Every run id the store knows: the rows, and the starts recorded without one (a daemon
    that stopped between the start's commit and its row)."""
    rows = conn.execute("SELECT id FROM runs UNION SELECT run_id FROM events "
                        "WHERE kind = 'run.started' AND run_id IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def upsert_run(conn: Any, row: dict[str, Any]) -> None:
    """Insert the run's row, or update every column of it but the id."""
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "id")
    conn.execute(
        f"INSERT INTO runs ({cols}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
        tuple(row.values()),
    )


MISSING_ROW_NOTE = ("its row was missing from the runs table at the daemon's start (the "
                    "daemon died before saving it, or the file was edited): rebuilt from its "
                    "recorded start")


def restore_missing_rows(conn: Any) -> list[str]:
    """Runs whose start is recorded but that have neither a row nor a recorded end: a row
    rebuilt from the start, live, so the restart marks them lost (and seals their output) like
    any other. Their ids. A daemon dies between a start's commit and its row; a row deleted
    from the file looks the same, and was never marked lost, sealed, shown or named. A start
    a `store.unconfirmed` names was refused (committed after its wait ended): nothing ran, so
    it is not restored, nor then marked lost (review s34, helper 132)."""
    found = conn.execute(
        "SELECT e.run_id, e.ts, e.actor, e.data FROM events e WHERE e.kind = 'run.started' AND "
        "e.run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = e.run_id) AND "
        "NOT EXISTS (SELECT 1 FROM events x WHERE x.run_id = e.run_id AND x.kind IN "
        "('run.ended', 'run.lost')) AND NOT EXISTS (SELECT 1 FROM events u WHERE u.run_id = "
        "e.run_id AND u.kind = 'store.unconfirmed' AND json_extract(u.data, '$.event_id') = e.id)"
    ).fetchall()
    for run_id, ts, actor, data_text in found:
        try:
            data = json.loads(data_text or "{}")
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        started = data.get("started_at")
        upsert_run(conn, {
            "id": run_id, "profile": data.get("profile"), "backend": data.get("backend"),
            "state": "running", "command": json.dumps(data.get("command")),
            "workspace": data.get("workspace"),
            "started_at": started if isinstance(started, (int, float)) else ts,
            "ended_at": None, "exit_code": None, "pids": "[]",
            "info": json.dumps({"actor": actor, "notes": [MISSING_ROW_NOTE]})})
    return [row[0] for row in found]


def runs_in_states(conn: Any, states: Sequence[str]) -> list[tuple[str, str]]:
    """(id, pids as JSON) of every run whose state is one of `states`."""
    marks = ", ".join("?" for _ in states)
    return conn.execute(
        f"SELECT id, pids FROM runs WHERE state IN ({marks})", tuple(states)
    ).fetchall()


def mark_lost(conn: Any, run_id: str, ended_at: float) -> None:
    # Its exit was never seen: none (as its recorded end says, which verify compares).
    conn.execute("UPDATE runs SET state = 'lost', ended_at = ?, exit_code = NULL WHERE id = ?",
                 (ended_at, run_id))


def write_run_totals(conn: Any, rows: list[tuple[Any, ...]], adds: list[tuple[Any, ...]]) -> None:
    """(tokens_in, tokens_out, energy_j, cost, id): `rows` replace a run's totals, `adds` are
    added to them (energy attributed after the run's row was final)."""
    conn.executemany("UPDATE runs SET tokens_in = ?, tokens_out = ?, energy_j = ?, cost = ? "
                     "WHERE id = ?", rows)
    conn.executemany("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                     "energy_j = energy_j + ?, cost = cost + ? WHERE id = ?", adds)


def run_totals(conn: Any, run_id: str) -> tuple[Any, ...] | None:
    """(tokens_in, tokens_out, energy_j, cost) of one run, None if it has no row; a value an
    edited file holds that is not a count or a finite number reads as None."""
    row = conn.execute("SELECT tokens_in, tokens_out, energy_j, cost FROM runs WHERE id = ?",
                       (run_id,)).fetchone()
    if row is None:
        return None
    return (values.read_int(row[0]), values.read_int(row[1]), values.read_number(row[2]),
            values.read_number(row[3]))


def usage_counts(prompt_tokens: Any, completion_tokens: Any,
                 total_tokens: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of one usage report, as a run's totals count them: the
    completion from the total where a server reports only that. One rule for the GPU service
    that adds them up and for `audit verify`, which sums the chained events to check the row.
    Raises ValueError or TypeError for values that are not counts."""
    prompt = int(prompt_tokens or 0)
    completion = completion_tokens
    if completion is None and total_tokens is not None:
        completion = max(0, int(total_tokens) - prompt)
    return prompt, int(completion or 0)


def totals_at_end(conn: Any, run_id: str) -> dict[str, Any]:
    """What the run's end keeps of its row's totals, for its end's data: `tokens_at_end` (the
    counts) and `energy_j_at_end`. Totals only grow after the end (late counts and late
    windows are added), so `audit verify` takes them as the least the row may hold from then
    on. The cost is not kept: it is derived with the prices in force, which a reload may lower.
    Empty without a row; a value that is not a count or a finite number is left out."""
    try:
        found = run_totals(conn, run_id)
    except sqlite3.Error:  # an odd file must not cost the run its recorded end
        return {}
    if found is None:
        return {}
    kept: dict[str, Any] = {}
    if found[0] is not None and found[1] is not None:
        kept["tokens_at_end"] = {"tokens_in": found[0], "tokens_out": found[1]}
    if found[2] is not None:
        kept["energy_j_at_end"] = found[2]
    return kept
