"""`approve ID --pattern P` where P does not cover the request (s26 CLI sweep, finding 5).

A typed pattern is documented to widen the grant beyond the request on the screen. One that did
not match it at all still decided the request (allowed `pytest -q`) and granted something else
for the run (`curl`): the person approved one command and the grant said another. A pattern
that does not answer the request it decides is now refused, and nothing is decided or
granted; one that covers it still decides it and makes its wider grant. The real Inbox."""

from __future__ import annotations

import asyncio

import pytest

from console.daemon.inbox import Inbox
from console.protocol import Failure
from tests.approvals.conftest import WAIT, Recorder


async def _one_pending(inbox: Inbox, kind: str, subject: str) -> asyncio.Task:
    # An exec request carries its command's parts, as agent.sock's parse gives them.
    parts = [subject] if kind == "exec" else None
    task = asyncio.create_task(inbox.submit("r1", "demo", kind, subject, grant_patterns=parts))
    while not inbox.pending():
        await asyncio.sleep(0.01)
    return task


@pytest.mark.parametrize("allow", [True, False])
@pytest.mark.parametrize("kind,subject,missing,covering", [
    ("exec", "pytest -q", "curl", "pytest"),
    ("network", "mirror.pilothouse.invalid:443", "other.pilothouse.invalid:443",
     "*.pilothouse.invalid:443"),
])
async def test_a_pattern_that_misses_the_request_decides_nothing(
        recorder: Recorder, kind: str, subject: str, missing: str, covering: str,
        allow: bool) -> None:
    inbox = Inbox(recorder, timeout_s=WAIT)
    recorder.inbox = inbox
    task = await _one_pending(inbox, kind, subject)
    req = inbox.pending()[0]
    with pytest.raises(Failure) as caught:
        await inbox.decide(req.id, allow, "alice", "run", pattern=missing)
    assert caught.value.code == "bad-pattern"
    assert "does not cover this request" in str(caught.value.args[1])
    assert inbox.pending() == [req] and inbox.grants.list() == [], "nothing was decided"
    with pytest.raises(Failure):  # the preview of what it would answer refuses it alike
        inbox.would_answer(req.id, allow, "run", pattern=missing)
    result = await inbox.decide(req.id, allow, "alice", "run", pattern=covering)
    assert [g.pattern for g in result.grants] == [covering]
    assert inbox.pending() == []
    outcome = await asyncio.wait_for(task, WAIT)
    assert outcome.allow is allow
