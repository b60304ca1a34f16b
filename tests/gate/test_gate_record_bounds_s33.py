"""What a refused request leaves in the history is bounded (review s33, helper 122): the
reason of a refusal quoted the agent's whole host (a `net.rejected` row of ~117 KB, 20 rows a
second from one sandbox, 2.3 MB/s), and a request method of any length went whole into
records and onto a person's card. Real daemon recording, real SQLite, the gate on a unix
socket."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from types import SimpleNamespace
from typing import Any

from console.daemon.bus import Bus
from console.daemon.recording import Recording
from console.gate import NetAsk, NetworkRules, Verdict
from console.gate.proxy import Gate
from console.policy.hosts import BadTarget, parse_connect_target
from store.writer import StoreWriter

from .support import Echo, Harness, running


class _Storage:
    """The daemon's Storage as Recording uses it, over a real StoreWriter."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer

    def record(self, kind: str, **kw: Any) -> None:
        self.writer.record(kind, **kw)

    async def record_security(self, kind: str, **kw: Any) -> Any:
        return await self.writer.acommit(kind, **kw)


async def test_refused_connects_with_huge_hosts_grow_the_history_by_little(tmp_path) -> None:
    db = tmp_path / "history.db"
    writer = StoreWriter(db, os.urandom(32)).start()
    cfg = SimpleNamespace(cfg=SimpleNamespace(bounds=SimpleNamespace(events_per_second=20)))
    rec = Recording(_Storage(writer), Bus(), cfg)  # type: ignore[arg-type]
    gate = Gate("run-1", NetworkRules([], [], "deny"), ask=None, record=rec.for_gate("run-1"))
    path = str(tmp_path / "gate.sock")
    await gate.serve_unix(path)
    started, i = time.monotonic(), 0
    while time.monotonic() - started < 2.0:  # two seconds of refused CONNECTs, each distinct
        i += 1
        host = f"{i}-" + "\u0378" * 15000
        reader, w = await asyncio.open_unix_connection(path, limit=1 << 20)
        w.write(f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode())
        await w.drain()
        answer = await reader.read()
        w.close()
        assert answer.startswith(b"HTTP/1.1 400")
    await writer.aflush()
    await gate.close()
    await rec.close()
    writer.close()
    con = sqlite3.connect(db)
    rows, size, reason = con.execute(
        "select count(*), sum(length(data)), max(length(json_extract(data, '$.reason'))) "
        "from events where kind = 'net.rejected'").fetchone()
    con.close()
    assert rows >= 20
    assert reason <= 400, reason
    assert size / rows < 8 * 1024, f"{rows} rows, {size} characters of data"


def test_a_bad_targets_reason_quotes_at_most_a_few_hundred_characters() -> None:
    for text in ("a" * 5000 + ":443", "[" + "f" * 5000 + "]:443", "x" * 300 + "_" * 5000 + ":1"):
        try:
            parse_connect_target(text)
        except BadTarget as exc:
            assert len(exc.reason) < 400 and "more characters not shown" in exc.reason
        else:  # pragma: no cover - every one is malformed
            raise AssertionError(text)


async def test_a_method_of_any_length_is_refused_before_a_record_or_a_card() -> None:
    echo = await Echo().start()
    asked: list[NetAsk] = []

    async def ask(q: NetAsk) -> Verdict:
        asked.append(q)
        return Verdict(False, {"by": "test"})

    h = Harness(NetworkRules([], ["denied.invalid"], "ask"), upstream_port=echo.port, ask=ask)
    async with running(h):
        for host in ("denied.invalid", "unknown.invalid", "bad_host"):
            reader, w = await asyncio.open_unix_connection(h.path, limit=1 << 20)
            w.write(("G" * 30000 + f" http://{host}/ HTTP/1.1\r\n\r\n").encode())
            await w.drain()
            answer = await reader.read()
            w.close()
            assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        reader, w = await asyncio.open_unix_connection(h.path)
        w.write(b"VERSION-CONTROL http://denied.invalid/ HTTP/1.1\r\n\r\n")  # a real one passes
        await w.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 403")
        w.close()
    await echo.close()
    assert not asked
    assert all(len(p.get("method") or "") <= 32 for _, p in h.records), h.records
