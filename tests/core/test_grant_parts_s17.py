"""Review s17 (daemon): an agent's command of hundreds of distinct parts, and the grants it made.

A command line is asked part by part, and a grant made from it ("this run", "10m") holds one
exact grant per part asked. An agent asks `x0y0|x0y1|...` (4 KiB, about 800 distinct parts,
each an unknown command, so each asked): the request carried 800 grant patterns. Looking at
what a decision would answer (`approval.covers`: any watcher, and the console and `pilothouse
approve` before a person decides) made 800 trial grants and matched each other pending
request's 800 patterns against all of them, each match parsing the pattern again: 21 s of the
daemon's loop for each other pending request (a real daemon with three such asks pending held
an owner's `hello` for 40 s; 32 pending would be about 11 minutes). Deciding it with such a
scope did the same to every pending request, and every later ask matched 800 grants part by
part. Secure: a request whose command has more asked parts than a grant may hold is answered
by no grant and makes none (it is asked every time, and the decision says so); the work of
covers and decide stays small. Counted, not timed: the number of grant matches.

Real parts: the real agent.sock handler and inbox on a real unix socket, the real policy
evaluation. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.daemon.agent_socket import start_agent_server
from console.daemon.inbox import Inbox
from console.policy import ExecRules, GrantTable, make_policy_eval
from console.policy import grants as grants_mod

WAIT = 20.0  # a bound on a hang only
RULES = ExecRules(allow=["git status"], ask=["git push"], forbid=["rm -rf /"], default="ask")
MATCHES_BOUND = 20_000  # far above what a bounded inbox needs, far below 800 x 800


async def _record(kind: str, data: dict[str, Any]) -> None:
    await asyncio.sleep(0)  # a real commit yields to the loop


def _wide(tag: str) -> str:
    """A 4 KiB command of hundreds of distinct parts, each an unknown (asked) command."""
    return "|".join(f"x{tag}y{j}" for j in range(1000))[:4000].rstrip("|")


class Inboxed:
    def __init__(self, inbox: Inbox, path: Path) -> None:
        self.inbox, self.path = inbox, path

    async def ask(self, command: str) -> asyncio.StreamWriter:
        """Ask on agent.sock and keep the connection open (the request stays pending)."""
        _reader, writer = await asyncio.open_unix_connection(str(self.path))
        writer.write((json.dumps({"v": 1, "id": 1, "op": "ask",
                                  "args": {"kind": "exec", "subject": command}}) + "\n").encode())
        await writer.drain()
        return writer

    async def pending(self, n: int) -> list[Any]:
        async def wait() -> list[Any]:
            while len(self.inbox.pending()) < n:
                await asyncio.sleep(0.02)
            return self.inbox.pending()

        return await asyncio.wait_for(wait(), WAIT)


@pytest.fixture
async def inboxed() -> AsyncIterator[Inboxed]:
    folder = Path(tempfile.mkdtemp(prefix="ph-s17-", dir="/tmp"))
    grants = GrantTable()
    inbox = Inbox(_record, timeout_s=WAIT * 3, grants=grants)
    server = await start_agent_server(folder / "agent.sock", "r1", "demo", inbox,
                                      make_policy_eval(lambda profile: RULES, grants))
    try:
        yield Inboxed(inbox, folder / "agent.sock")
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(folder, ignore_errors=True)


class Counted:
    """Grant.matches, counted; past the bound it stops the operation (the old code would run
    for minutes before the test could say so)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = grants_mod.Grant.matches

        def matches(grant: Any, *args: Any, **kwargs: Any) -> bool:
            self.calls += 1
            if self.calls > MATCHES_BOUND:
                raise AssertionError(f"more than {MATCHES_BOUND} grant matches for one operation")
            return original(grant, *args, **kwargs)

        monkeypatch.setattr(grants_mod.Grant, "matches", matches)


async def test_covers_of_a_wide_command_does_bounded_work(
        inboxed: Inboxed, monkeypatch: pytest.MonkeyPatch) -> None:
    writers = [await inboxed.ask(_wide(str(i))) for i in range(3)]
    try:
        first = (await inboxed.pending(3))[0]
        assert len(first.grant_patterns) > 500  # the agent's many parts
        counted = Counted(monkeypatch)
        covered = inboxed.inbox.would_answer(first.id, True, "run")
        assert covered == []
        assert counted.calls <= MATCHES_BOUND
    finally:
        for w in writers:
            w.close()


async def test_a_run_grant_on_a_wide_command_makes_no_grant_and_says_so(
        inboxed: Inboxed, monkeypatch: pytest.MonkeyPatch) -> None:
    writers = [await inboxed.ask(_wide(str(i))) for i in range(3)]
    try:
        first = (await inboxed.pending(3))[0]
        counted = Counted(monkeypatch)
        result = await inboxed.inbox.decide(first.id, True, "alice", "run")
        assert result.allow and result.grants == ()
        assert "asked every time" in result.note, result.note
        assert inboxed.inbox.grants.list() == []
        assert len(inboxed.inbox.pending()) == 2  # the others still wait for a person
        assert counted.calls <= MATCHES_BOUND
    finally:
        for w in writers:
            w.close()


async def test_held_a_pipeline_of_a_few_parts_still_makes_its_grants(inboxed: Inboxed) -> None:
    # (`| tee out.txt` makes no grant since s31: a fed part that writes a file)
    writer = await inboxed.ask("make lint | grep -v warning")
    try:
        req = (await inboxed.pending(1))[0]
        result = await inboxed.inbox.decide(req.id, True, "alice", "run")
        assert sorted(g.pattern for g in result.grants) == ["grep -v warning", "make lint"]
    finally:
        writer.close()
