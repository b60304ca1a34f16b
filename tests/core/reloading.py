"""Put a changed config file in force and read the change, whoever took it. The daemon's watcher
takes the file within a second of a write, often before the test's `pilothouse reload`, which
then changes nothing and answers with what the watcher `taken` (review h182). A test asserts on
the change in force, never on which of the two won."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Daemon


def reload_in_force(d: Daemon) -> tuple[dict[str, Any], dict[str, Any]]:
    """`pilothouse reload --json`: its answer, and the history's policy.changed row of the
    change now in force (the reload's own, or the one the watcher or a SIGHUP took)."""
    answer = json.loads(d.cli("reload", "--json").stdout)
    taken = answer.get("taken")
    event = taken["event_id"] if taken and not answer["changed"] else answer["event_id"]
    rows = json.loads(d.cli("history", "--kind", "policy.changed", "--limit", "500",
                            "--json").stdout)
    (row,) = [r for r in rows if r["id"] == event]
    return answer, row
