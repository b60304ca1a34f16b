"""`pilothouse history` never shows fewer events than matched without saying so.

One answer holds at most 2 MiB (wire.fitting), so `history --limit 300` over agent-sized
events (an ask's 4 KiB subject and 16 KiB detail each) answered with about a hundred of them.
The console pages on; the CLI printed that hundred as if it were all, with no way to ask for
the next page. Now the daemon says whether older events match (`history` with `paged`), the
CLI says how to page on (`--before ID`) whenever they do, and the pages together hold every
event. A real daemon over a real history database.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, history_writer

EVENTS = 300


def _fill_agent_sized_events(home: Path) -> None:
    with history_writer(home) as w:
        for i in range(EVENTS):
            subject = f"curl https://x{i}.invalid/" + "a" * 4000
            w.record("policy.decision", run_id="r0001", actor="policy", text=f"deny exec x{i}",
                     data={"kind": "exec", "subject": subject, "action": "deny",
                           "detail": {"agent's note": "n" * 16000}})


def test_a_full_answer_is_said_and_the_next_page_is_reachable(
        home: Path, daemon_env: dict[str, str]) -> None:
    _fill_agent_sized_events(home)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        first = d.cli("history", "--kind", "policy.", "--limit", str(EVENTS), "--json")
        rows = json.loads(first.stdout)
        assert 0 < len(rows) < EVENTS, "one answer cannot hold them all (the test's premise)"
        last = rows[-1]["id"]
        assert f"older events match too: add --before {last} for the next page" in first.stderr
        seen = [r["id"] for r in rows]
        for _ in range(10):
            page = d.cli("history", "--kind", "policy.", "--limit", str(EVENTS),
                         "--before", str(seen[-1]), "--json")
            more = json.loads(page.stdout)
            if not more:
                break
            assert all(r["id"] < seen[-1] for r in more)
            seen += [r["id"] for r in more]
        assert len(seen) == len(set(seen)) == EVENTS, "the pages hold every event, once"
        # The last page is short because the history ended: nothing is said.
        assert "--before" not in page.stderr
        # Any page with older events behind it says how to reach them, cut or not.
        table = d.cli("history", "--kind", "policy.", "--limit", "20", "--json")
        last = json.loads(table.stdout)[-1]["id"]
        assert f"older events match too: add --before {last}" in table.stderr, table.stderr
        whole = d.cli("history", "--kind", "daemon.", "--limit", "20")
        assert "--before" not in whole.stderr, "every match was shown: nothing more is said"
    finally:
        d.stop()
