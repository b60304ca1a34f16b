"""Review s23: `pilothouse ps --all` (and `--json`) showed a `runs` row that its run's chained
`run.started` / `run.ended` said otherwise about (an exit code, a start or end time edited in
the file, or a row forged with no recorded start) as if true; only `report RUN` and `audit
verify` said so. `ps` now marks such a row `(!)`, says why under the table, and gives the
reason in each row's `warning` (the same check, store.integrity.runs_off_each)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import needs_bwrap
from tests.store.test_audit_tamper_attacks import _sql

DAY = 86_400.0


def _ps(daemon) -> tuple[str, dict[str, dict]]:  # noqa: ANN001 - the conftest Daemon
    text = daemon.cli("ps", "--all").stdout
    rows = {r["id"]: r for r in json.loads(daemon.cli("ps", "--all", "--json").stdout)}
    return text, rows


def _line(text: str, rid: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(rid))


@needs_bwrap
def test_ps_warns_of_a_row_the_chain_says_otherwise_about(daemon, workspace: Path) -> None:
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "exit 3",
               check=False)
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "exit 0")
    db = daemon.home / "data" / "pilothouse.db"
    conn = sqlite3.connect(db)
    try:
        (bad, started, ended), (good,) = (
            conn.execute("SELECT id, started_at, ended_at FROM runs WHERE exit_code = 3").fetchone(),
            conn.execute("SELECT id FROM runs WHERE exit_code = 0").fetchone())
    finally:
        conn.close()
    text, rows = _ps(daemon)
    assert "WARNING" not in text and "(!)" not in text, text
    assert rows[bad].get("warning") is None and rows[good].get("warning") is None, rows
    restore = "UPDATE runs SET state = 'failed', exit_code = 3, started_at = ?, ended_at = ? " \
              f"WHERE id = '{bad}'"
    edits = [
        ("exit code", f"UPDATE runs SET state = 'exited', exit_code = 0 WHERE id = '{bad}'"),
        ("started_at", f"UPDATE runs SET started_at = {started - DAY} WHERE id = '{bad}'"),
        ("ended_at", f"UPDATE runs SET ended_at = {ended + 3600} WHERE id = '{bad}'"),
    ]
    for field, sql in edits:
        _sql(db, sql)
        text, rows = _ps(daemon)
        assert "(!)" in _line(text, bad) and "(!)" not in _line(text, good), (sql, text)
        assert f"WARNING (!): run {bad}" in text and field in text, (sql, text)
        assert field in (rows[bad].get("warning") or ""), (sql, rows[bad])
        assert "warning" in rows[good] and rows[good]["warning"] is None, (sql, rows[good])
        _sql(db, restore, params=(started, ended))
    text, rows = _ps(daemon)
    assert "WARNING" not in text and rows[bad].get("warning") is None, text

    # A row written into the file for a run that never started: `ps --all` showed it as real.
    _sql(db, "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at, "
         "ended_at, exit_code, pids, info) VALUES ('forged', 'shell', 'bwrap', 'exited', "
         "'[\"make\", \"deploy\"]', '/w', ?, ?, 0, '[]', '{\"actor\": \"alice\", \"notes\": []}')",
         params=(started + 1, ended + 1))
    text, rows = _ps(daemon)
    assert "(!)" in _line(text, "forged"), text
    assert "WARNING (!): run forged" in text and "never recorded" in text, text
    assert "never recorded" in (rows["forged"].get("warning") or ""), rows["forged"]
    assert rows[bad].get("warning") is None and rows[good].get("warning") is None, rows
