"""Review s17 round 2 (daemon): "a teammate's operations take at most two of the threads every
part shares at once; the rest wait their turn" (server.Daemon._in_turn). The turn was given back
when the operation was cancelled, and a connection that closes cancels its operations, but a
thread an operation started (policy.check's 0.55 s evaluation, policy.shadow's seconds of
matching, a history page) runs on to its end. A watcher that opens a connection, asks a costly
policy.check and closes it, again and again, had as many of them computing at once as it liked,
in the threads the history's reads and every run's start share (policy.check's own "one at a
time per user" was given back the same way). Secure: a teammate's operation runs to its end, as
a decision does, and its turn ends with it; only the answer is lost.

Driven step by step: the operation's thread waits on an event the test sets, and operations
that reached their thread are counted on the loop. No clock.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import console.daemon.server as server
from console.daemon.peers import Peer
from console.daemon.server import TEAMMATE_AT_ONCE, Daemon
from console.paths import Paths

WATCHER = Peer(pid=1, uid=54321, gid=54321, user="watcher", role="watcher")


def test_a_closed_connections_operations_keep_the_teammates_turn(tmp_path: Path,
                                                                 monkeypatch) -> None:
    paths = Paths(*(tmp_path / name for name in ("data", "run", "runs", "log")),
                  tmp_path / "config.toml")
    daemon = Daemon(paths, None)
    daemon.core = object()  # type: ignore[assignment]
    may_end = threading.Event()
    computing: list[int] = []

    def costly() -> str:
        may_end.wait(30)
        return "checked"

    async def fake_dispatch(core: Any, peer: Peer, op: str, args: Any, send: Any) -> str:
        computing.append(1)
        return await asyncio.to_thread(costly)

    monkeypatch.setattr(server, "dispatch", fake_dispatch)
    monkeypatch.setattr(server, "as_now", lambda peer, team: peer)
    answers: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    async def scenario() -> int:
        closed = [asyncio.create_task(daemon._one(send, WATCHER, i, "policy.check", {}))
                  for i in range(TEAMMATE_AT_ONCE)]
        while len(computing) < TEAMMATE_AT_ONCE:
            await asyncio.sleep(0.01)
        for task in closed:
            task.cancel()  # the watcher closed the connection; the threads compute on
        await asyncio.gather(*closed, return_exceptions=True)
        kept = asyncio.create_task(daemon._one(send, WATCHER, "kept", "policy.check", {}))
        for _ in range(5):
            await asyncio.sleep(0)
        at_once = len(computing)
        may_end.set()
        await kept
        return at_once

    at_once = asyncio.run(scenario())
    assert at_once == TEAMMATE_AT_ONCE, (
        f"{at_once} of a watcher's operations computed at once, past its {TEAMMATE_AT_ONCE}")
    assert [a.get("id") for a in answers] == ["kept"], answers
    assert daemon._turns[WATCHER.uid]._value == TEAMMATE_AT_ONCE, "a turn was not given back"
