"""In-process publish/subscribe of events, from the daemon's parts to operator connections.

Events are plain dicts with a "kind" ("run.state", "run.output", "approval.requested", ...);
the part of the kind before the first dot is its topic, one of console.protocol.Topic.
Each subscriber has a bounded queue: a slow reader (a TUI over a bad SSH link) loses the
oldest bulk events and is told how many, never slows the daemon down or grows its memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from console.protocol import topic_of

# A subscriber names topics (protocol.Topic) or exact kinds ("run.state"), so a console can
# take run states without every output line.
ALL = "*"


@dataclass(eq=False)
class Subscription:
    topics: frozenset[str]
    run_id: str | None = None  # only events of this run (plus run-less events) when set
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(10_000))
    dropped: int = 0
    held: dict[str, Any] | None = None  # taken from the queue while a drop notice went first

    def wants(self, event: dict[str, Any]) -> bool:
        kind = str(event.get("kind", ""))
        topic = topic_of(kind)
        if ALL not in self.topics and topic not in self.topics and kind not in self.topics:
            return False
        return self.run_id is None or event.get("run_id") in (None, self.run_id)

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Make room by dropping the oldest event; the reader learns of the gap.
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            self.dropped += 1
            self.queue.put_nowait(event)

    async def get(self) -> dict[str, Any]:
        if self.held is not None:
            event, self.held = self.held, None
            return event
        event = await self.queue.get()
        if self.dropped:
            lost, self.dropped = self.dropped, 0
            self.held = event  # in order, right after the notice
            return {"kind": "bus.dropped", "count": lost}
        return event


class Bus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, topics: Iterable[str] = (ALL,), run_id: str | None = None) -> Subscription:
        sub = Subscription(frozenset(topics) or frozenset({ALL}), run_id)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, event: dict[str, Any]) -> None:
        for sub in tuple(self._subs):
            if sub.wants(event):
                sub.offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
