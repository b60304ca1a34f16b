"""When a profile has an allow rule naming an IP on a port, the gate resolves a name first and
asks the person with the addresses ("resolves to ..." on the approval card). Two connections to
the same host:port shared one question (Deciding._ask keyed on (host, port)), so the second
was allowed by an answer given about the first one's addresses and dialled addresses the person
never saw. Now the addresses shown are part of the question. Found by an attack review.

docs/threat-model.md: "the person sees the name first ... The one exception: when the profile
has an allow rule naming an IP or CIDR that covers the port, an address could turn the "ask"
into an allow by itself, so the name is resolved first"; the card shows "resolves to".
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from console.gate import NetAsk, NetworkRules, Verdict
from console.policy.hosts import IPAddress

from .support import FAKE_GLOBAL, Echo, Harness, connect, running

OTHER_GLOBAL = ipaddress.ip_address("151.101.1.69")


class Rebinding(Harness):
    """A resolver whose answer changes at every lookup (a rebinding name)."""

    def __init__(self, *a: Any, answers: list[list[IPAddress]], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.answers = answers

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        self.resolved.append(host)
        return self.answers[min(len(self.resolved), len(self.answers)) - 1]


async def test_an_answer_about_one_address_does_not_allow_another() -> None:
    echo = await Echo().start()
    questions: list[NetAsk] = []
    release = asyncio.Event()

    async def ask(q: NetAsk) -> Verdict:
        questions.append(q)
        await release.wait()
        return Verdict(True, {"by": "alice", "grant": "once"})

    rules = NetworkRules(allow=["127.0.0.1:8000"], default="ask", ports=[80, 443])
    h = Rebinding(rules, upstream_port=echo.port, ask=ask,
                  answers=[[FAKE_GLOBAL], [OTHER_GLOBAL]])
    async with running(h):
        tasks = [asyncio.create_task(connect(h, "r.invalid:8000")) for _ in range(2)]
        for _ in range(500):
            if sum(h.gate.pending_asks().values()) == 2:
                break
            await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*tasks)
        for r in results:
            r[4].close()
    await echo.close()
    shown = {a for q in questions for a in q.addresses}
    dialled = {ip for ip, _ in h.dialled}
    assert dialled <= shown, (f"the person saw {sorted(shown)}, the gate dialled "
                              f"{sorted(dialled)} on that answer")
    assert len(questions) == 2  # one question per set of addresses shown
