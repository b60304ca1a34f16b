"""The console's line to the daemon: one connection for requests and the event subscription,
polled stats, and a reconnect loop with backoff when the daemon goes away.

`DaemonLink.run(post)` runs in an async worker and only posts messages; the app applies them.
A `Source` is anything with the same three methods: tests feed fixed data through one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from textual.message import Message

from console.client import aio
from console.client.aio import AsyncClient
from console.client.sync import ClientError
from console.paths import Paths

# Exact "run.state", not the "run" topic: output comes per run through the logs op, and
# taking every run's output here would cost the console a flood it drops.
TOPICS = ["run.state", "approval", "net", "tokens", "gpu", "daemon", "bus"]
POLL_S = 1.5
NET_HISTORY = 300  # network events read on attach
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)
# These mean the daemon will not take us however often we try.
FATAL = ("not-allowed", "bad-config")


class Connected(Message):
    def __init__(self, hello: dict[str, Any], runs: list[dict[str, Any]],
                 approvals: list[dict[str, Any]], profiles: list[dict[str, Any]],
                 gpu: Any, gpu_note: str, net: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.hello, self.runs, self.approvals = hello, runs, approvals
        self.profiles, self.gpu, self.gpu_note = profiles, gpu, gpu_note
        self.net = net or []  # recorded network events (history rows, newest first)


class Disconnected(Message):
    def __init__(self, reason: str, retry_in: float | None, attempt: int, hint: str = "") -> None:
        super().__init__()
        self.reason, self.retry_in, self.attempt, self.hint = reason, retry_in, attempt, hint


class DaemonEvent(Message):
    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class Polled(Message):
    """A fresh runs.list (live runs, with stats) and approvals.list; and hello, whose
    config_error says whether the daemon refused its config file since (file, line, reason)."""

    def __init__(self, runs: list[dict[str, Any]], approvals: list[dict[str, Any]],
                 hello: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.runs, self.approvals, self.hello = runs, approvals, hello
        self.rendered = asyncio.Event()  # set by the app once it has shown this poll


Post = Callable[[Message], Any]


class Source(Protocol):
    async def call(self, op: str, **args: Any) -> Any: ...

    def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]: ...

    async def run(self, post: Post) -> None: ...


async def gpu_snapshot(call: Callable[..., Any]) -> tuple[Any, str]:
    """The `gpu` op's answer, or why there is none (an older daemon has no such op)."""
    try:
        return await call("gpu"), ""
    except ClientError as exc:
        if exc.code in ("unknown-op", "unknown_op"):
            return None, "this daemon does not report GPUs yet"
        return None, exc.message


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class DaemonLink:
    def __init__(self, paths: Paths, config_file: Path | None = None, *,
                 autostart: bool = True, poll_s: float = POLL_S) -> None:
        self.paths = paths
        self.config_file = config_file
        self.autostart = autostart
        self.poll_s = poll_s
        self.client: AsyncClient | None = None

    async def call(self, op: str, **args: Any) -> Any:
        client = self.client
        if client is None:
            raise ClientError("disconnected", "not connected to the daemon",
                              "waiting for it to come back; try again in a moment")
        return await client.call(op, **args)

    def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        """A streaming op on a connection of its own: its events, then
        {"kind": "stream.result", "result": ...}. Closing the iterator closes the connection."""
        return aio.stream(self.paths, op, **args)

    async def run(self, post: Post) -> None:
        attempt = 0
        first = True
        while True:
            client = AsyncClient(self.paths)
            subscription: asyncio.Task[Any] | None = None
            reason, hint = "the daemon closed the connection", ""
            try:
                await client.open(autostart=first and self.autostart)
                # The subscription answers only when the connection ends; its events arrive
                # through client.events(). Held as a task whose outcome is always retrieved.
                subscription = asyncio.create_task(client.call("subscribe", topics=TOPICS))
                subscription.add_done_callback(_quiet)
                hello = await client.call("hello")
                runs = await client.call("runs.list", all=True, limit=20)
                approvals = await client.call("approvals.list")
                profiles = await client.call("profiles")
                gpu, note = await gpu_snapshot(client.call)
                # The network feed as it stands (also what happened while this console was away).
                try:
                    net = await client.call("history", kind="net.", limit=NET_HISTORY)
                except ClientError:
                    net = []  # a daemon that will not say: the feed starts empty, as before
                self.client = client
                attempt = 0
                post(Connected(hello, runs, approvals, profiles, gpu, note, net))
                poller = asyncio.create_task(self._poll(client, post))
                try:
                    async for event in client.events():
                        kind = event.get("kind")
                        if kind == "client.disconnected":
                            break
                        if kind in ("run.output", "subscribed"):
                            continue  # output is read by the run screen on its own connection
                        post(DaemonEvent(event))
                finally:
                    poller.cancel()
            except ClientError as exc:
                reason, hint = exc.message, exc.hint
                if exc.code in FATAL:
                    post(Disconnected(reason, None, attempt, hint))
                    return
            except OSError as exc:
                reason = str(exc)
            finally:
                self.client = None
                await client.close()
                if subscription is not None and not subscription.done():
                    subscription.cancel()
            first = False
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            post(Disconnected(reason, delay, attempt, hint))
            await asyncio.sleep(delay)

    async def _poll(self, client: AsyncClient, post: Post) -> None:
        """Poll, render, re-arm: the next poll is armed only after this one was answered."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                runs = await client.call("runs.list")
                approvals = await client.call("approvals.list")
                hello = await client.call("hello")  # a reload that failed records no event
            except ClientError:
                return
            polled = Polled(runs, approvals, hello)
            post(polled)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(polled.rendered.wait(), 10)
