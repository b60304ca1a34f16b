"""Review s22: `audit verify` printed its reason as it came, and the reason quotes names from
the file: a runs row id, an output line's run id, a planted trigger's name. An offline editor
named a forged row `\\r\\x1b[2Kok: ...` and a person at the terminal read a green verify (the
exit status was still 1)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.store.test_audit_tamper_attacks import _sql

COVER = "x\r\x1b[2Kok: 12 events verified (12 rows verified; agrees with the witness (9 heads))\x1b[8m"


def test_verify_reason_reaches_the_terminal_escaped(daemon, workspace: Path) -> None:
    from tests.conftest import needs_bwrap  # noqa: F401 - the daemon fixture runs bwrap

    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "true")
    db = daemon.home / "data" / "pilothouse.db"
    _sql(db, "INSERT INTO output (run_id, ts, stream, line) VALUES (?, ?, 'out', 'hi')",
         params=(COVER, time.time()))
    done = daemon.cli("audit", "verify", check=False)
    assert done.returncode == 1, done.stdout
    assert "\x1b" not in done.stdout and "\r" not in done.stdout, repr(done.stdout)
    assert done.stdout.startswith("BROKEN"), done.stdout
    answer = json.loads(daemon.cli("audit", "verify", "--json", check=False).stdout)
    assert COVER in answer["reason"], answer  # --json keeps the name exactly (escaped by JSON)
