"""Review s19 of what a person sees before deciding: a network request from the gate.

The gate asks once per destination at a time, and every connection waiting on that question
shares the answer (console/gate/deciding.py, Deciding._ask). The question carries the first
connection's request line, and the card (and `pilothouse approve`) showed it as "target": a
person read `GET http://api.invalid/health` and said yes once, and `POST
http://api.invalid/upload?secret=1`, waiting on the same question, went out on that yes. The
rows now say what a yes answers: this destination, for every connection waiting on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from console.gate import NetAsk, NetworkRules, Verdict
from console.text import review_rows
from tests.gate.support import Harness, Origin, read_response, running


async def _request(h: Harness, line: str) -> int:
    reader, writer = await h.open()
    writer.write(f"{line}\r\nHost: api.invalid\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                 .encode())
    await writer.drain()
    status = (await read_response(reader))[0]
    writer.close()
    return status


def _as_listed(q: NetAsk) -> dict[str, Any]:
    """The request as the daemon lists it for this question (daemon/gate_wiring.py)."""
    return {"id": "nt01", "run_id": "run-1", "profile": "demo", "kind": "network",
            "subject": f"{q.host}:{q.port}", "title": None,
            "detail": {"host": q.host, "port": q.port, "addresses": list(q.addresses),
                       "method": q.method, "target": q.target},
            "rule_provenance": {"kind": "default", "text": 'no rule matched: the default "ask"'}}


async def test_a_yes_shown_for_one_request_line_says_it_answers_every_waiting_connection() -> None:
    origin = Origin()
    questions: list[NetAsk] = []
    asked, release = asyncio.Event(), asyncio.Event()

    async def person(q: NetAsk) -> Verdict:
        questions.append(q)
        asked.set()
        await release.wait()
        return Verdict(True, {"by": "alice", "grant": "once"})

    h = Harness(NetworkRules(default="ask", ports=[80, 443]), upstream_port=origin.port, ask=person)
    try:
        async with running(h):
            first = asyncio.create_task(_request(h, "GET http://api.invalid/health HTTP/1.1"))
            await asyncio.wait_for(asked.wait(), 10)
            second = asyncio.create_task(
                _request(h, "POST http://api.invalid/upload?secret=1 HTTP/1.1"))
            for _ in range(500):  # the second connection waits on the same question
                if sum(h.gate.pending_asks().values()) == 2:
                    break
                await asyncio.sleep(0.01)
            release.set()
            assert await asyncio.gather(first, second) == [200, 200]
    finally:
        origin.close()
    sent = [r["path"] for r in origin.requests]
    assert len(questions) == 1 and "/upload?secret=1" in sent, (questions, sent)
    rows = {r.label: r.value for r in review_rows(_as_listed(questions[0]))}
    shown = " ".join(f"{k} {v}" for k, v in rows.items())
    assert "/upload?secret=1" in shown or "every connection" in shown, rows
