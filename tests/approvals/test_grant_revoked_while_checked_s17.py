"""Review s17 round 2 (inbox): a grant a person made answers the other pending requests it
covers, each after a look at the policy in force (policy_now). That look is now an exec
evaluation off the loop, in the run's turn, behind the run's own asks: an agent holds it for as
long as it keeps asking costly commands (0.55 s each, 64 at once). The grant was found before
the look and applied after it, unlooked-at: a person who revoked the grant meanwhile (the revoke
recorded and answered) still saw a pending request allowed by it afterwards. Secure: after the
look, a request is answered only by a grant that still answers it; else it stays pending.

Driven step by step: the look waits on an event the test sets. No clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from console.daemon.inbox import Inbox
from console.policy import Decision, GrantTable, Provenance


async def _recorded(event: str, data: dict[str, Any]) -> None:
    return None


def test_a_grant_revoked_during_the_policy_look_answers_nothing() -> None:
    async def scenario() -> bool | None:
        looked, may_answer = asyncio.Event(), asyncio.Event()
        looks: list[str] = []

        async def policy_now(kind: str, subject: str, run_id: str, profile: str) -> Decision:
            looks.append(subject)
            if len(looks) > 1:  # the other request's look, held as a run's own asks hold it
                looked.set()
                await may_answer.wait()
            return Decision("ask", Provenance("default"))

        grants = GrantTable()
        inbox = Inbox(_recorded, timeout_s=60, grants=grants, policy_now=policy_now)
        first = asyncio.create_task(inbox.submit("r1", "demo", "exec", "git push",
                                                 grant_patterns=("git push",)))
        other = asyncio.create_task(inbox.submit("r1", "demo", "exec", "git push",
                                                 grant_patterns=("git push",)))
        while len(inbox.pending()) < 2:
            await asyncio.sleep(0.01)
        first_id = inbox.pending()[0].id
        decided = asyncio.create_task(inbox.decide(first_id, True, "alice", "run"))
        await looked.wait()
        (grant,) = grants.list()
        assert grants.revoke(grant.id) is not None  # alice revokes it; that is answered
        may_answer.set()
        await decided
        await first
        for _ in range(5):
            await asyncio.sleep(0)
        answered = other.result().allow if other.done() else None
        other.cancel()
        await asyncio.gather(other, return_exceptions=True)
        return answered

    answered = asyncio.run(scenario())
    assert answered is None, (f"the other request was answered (allowed: {answered}) by a grant "
                              "revoked before it was applied")
