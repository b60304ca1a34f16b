"""In-process publish/subscribe of events, from the daemon's parts to operator connections.

Events are plain dicts with a "kind" ("run.state", "run.output", "approval.requested", ...);
the part of the kind before the first dot is its topic, one of console.protocol.Topic.
Each subscriber has a bounded queue, in events and in the bytes of output they hold: a slow
reader (a TUI over a bad SSH link, or a watcher who never reads) loses the oldest bulk events
and is told how many, never slows the daemon down or grows its memory. (Bounded in events
alone, 10,000 `run.output` events held every line an agent printed in the last minutes: a
watcher who never read pinned 280 MB of a run's 200 MB of output, review s13b2.)
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
QUEUE_EVENTS = 10_000
QUEUE_BYTES = 8 * 1024 * 1024  # output text one subscriber's queue may hold
EVENT_BYTES = 256  # what any event is counted as, besides its output lines


def weight(event: dict[str, Any]) -> int:
    """About what an event holds in memory: its output lines' text, plus a constant."""
    lines = event.get("lines")
    if isinstance(lines, list):
        return EVENT_BYTES + sum(len(line) for line in lines if isinstance(line, str))
    return EVENT_BYTES


@dataclass(eq=False)
class Subscription:
    topics: frozenset[str]
    run_id: str | None = None  # only events of this run (plus run-less events) when set
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_EVENTS))
    dropped: int = 0
    queued_bytes: int = 0  # weight() of what the queue holds
    held: dict[str, Any] | None = None  # taken from the queue while a drop notice went first

    def wants(self, event: dict[str, Any]) -> bool:
        kind = str(event.get("kind", ""))
        topic = topic_of(kind)
        if ALL not in self.topics and topic not in self.topics and kind not in self.topics:
            return False
        return self.run_id is None or event.get("run_id") in (None, self.run_id)

    def offer(self, event: dict[str, Any], size: int | None = None) -> None:
        size = weight(event) if size is None else size
        # Make room by dropping the oldest events; the reader learns of the gap.
        while not self.queue.empty() and (self.queue.full()
                                          or self.queued_bytes + size > QUEUE_BYTES):
            self.queued_bytes = max(0, self.queued_bytes - weight(self.queue.get_nowait()))
            self.dropped += 1
        self.queue.put_nowait(event)
        self.queued_bytes += size

    async def get(self) -> dict[str, Any]:
        if self.held is not None:
            event, self.held = self.held, None
            return event
        event = await self.queue.get()
        self.queued_bytes = max(0, self.queued_bytes - weight(event))
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
        size = weight(event)
        for sub in tuple(self._subs):
            if sub.wants(event):
                sub.offer(event, size)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
