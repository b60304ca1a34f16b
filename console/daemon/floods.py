"""Floods cost O(distinct): repeated rule-decided and denied events become one row per
(run, kind, subject, decision) per second with a count, and a run's durable rows past its
rate become one `store.throttled` row; refused connections one `limits.refused` row.

The first event of each key in a window is written as it happens (security events are still
committed before they take effect); the repeats within that second are counted and written
as one summary row (the same kind, the last event's data, `count`, `aggregated: true`) when
the window closes. What told the repeats apart is kept in it too, per kind (a Fold): the
distinct values of the listed fields (a request line, an address), the first MAX_LISTED of them
and how many more, and the sums of the summed fields (bytes), so a summary never hides a
distinct request behind the last one (review s30). A distinct key past the run's rate is only
throttled when its decision is not an allow: an allow that takes effect always has its own row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Emit = Callable[[str, str | None, str, dict[str, Any]], None]  # kind, run_id, text, data

MAX_LISTED = 16  # distinct repeats a summary row lists; past that, only how many more
_VALUE_CHARS = 300  # of each listed value


@dataclass(frozen=True)
class Fold:
    """How one kind's repeats are summed up: the fields whose distinct values are listed, and
    the numeric fields added up."""

    listed: tuple[str, ...] = ()
    summed: tuple[str, ...] = ()


@dataclass
class _Repeats:
    count: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # the last one's
    distinct: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)  # as shown
    unlisted: int = 0  # distinct ones past MAX_LISTED
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, data: dict[str, Any], fold: Fold | None) -> None:
        self.count += 1
        self.data = data
        if fold is None:
            return
        if fold.listed:
            values = [data.get(f) for f in fold.listed]
            seen = tuple(map(_key, values))  # told apart whole, shown cut
            if seen not in self.distinct:
                if len(self.distinct) < MAX_LISTED:
                    self.distinct[seen] = tuple(map(_shown, values))
                else:
                    self.unlisted += 1  # counted once per repeat past the bound
        for f in fold.summed:
            value = data.get(f)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.sums[f] = self.sums.get(f, 0) + value

    def summary(self, fold: Fold | None) -> dict[str, Any]:
        out = {**self.data, **self.sums, "count": self.count, "aggregated": True}
        if fold is not None and fold.listed:
            out["distinct"] = [dict(zip(fold.listed, shown, strict=True))
                               for shown in self.distinct.values()]
            if self.unlisted:
                out["distinct_unlisted"] = self.unlisted
        return out


def _key(value: Any) -> Any:
    """A value to tell repeats apart by: a long text by its digest (review s30: cut to 300
    characters, two request lines alike that far were one, a token past them lost)."""
    if isinstance(value, str) and len(value) > _VALUE_CHARS:
        return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _VALUE_CHARS:
        return (f"{value[:_VALUE_CHARS]}[... {len(value) - _VALUE_CHARS} more characters, "
                f"sha256 {_key(value)[:16]}]")
    return value


@dataclass
class _Window:
    start: float
    rows: int = 0  # rows written in this window
    repeats: dict[tuple[str, str, str], _Repeats] = field(default_factory=dict)
    seen: set[tuple[str, str, str]] = field(default_factory=set)
    throttled: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class FloodControl:
    def __init__(self, emit: Emit, rate: Callable[[], int], interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 folds: dict[str, Fold] | None = None) -> None:
        self._emit = emit
        self._rate = rate
        self.interval = interval
        self._clock = clock
        self._folds = folds or {}
        self._windows: dict[str | None, _Window] = {}
        self._task: asyncio.Task[None] | None = None

    def _window(self, run_id: str | None) -> _Window:
        now = self._clock()
        w = self._windows.get(run_id)
        if w is not None and now - w.start >= self.interval:
            self.flush(run_id)
            w = None
        if w is None:
            w = self._windows[run_id] = _Window(now)
        return w

    def admit(self, run_id: str | None, kind: str, subject: str, decision: str,
              data: dict[str, Any] | None = None) -> bool:
        """True: write this event now, and call recorded() once it is written. False: it is
        counted into a summary row instead.

        Only a written row makes its key a repeat: a security event whose commit failed (its
        action refused) leaves the key as it was, so the next one is written, or refused, in
        its turn, never allowed as a "repeat" of a row that is not there. Events of a key
        whose first row is still being committed are written too."""
        w = self._window(run_id)
        key = (kind, subject, decision)
        if key in w.seen:
            w.repeats.setdefault(key, _Repeats()).add(data or {}, self._folds.get(kind))
            return False
        if w.rows >= self._rate() and decision != "allow":
            w.throttled += 1
            return False
        w.rows += 1
        return True

    def recorded(self, run_id: str | None, kind: str, subject: str, decision: str) -> None:
        """The row admit() let through is written: later events of its key are repeats."""
        self._window(run_id).seen.add((kind, subject, decision))

    def refused(self, run_id: str, what: str) -> None:
        """A connection refused past a bound (what: agent.sock, gate)."""
        w = self._window(run_id)
        w.refused[what] = w.refused.get(what, 0) + 1

    def flush(self, *run_ids: str | None) -> None:
        """Write the summaries of these runs' windows (every window when none is named) and
        forget them. None is the daemon's own window: events of no run (operator.sock)."""
        for rid in run_ids or list(self._windows):
            w = self._windows.pop(rid, None)
            if w is None:
                continue
            for (kind, subject, decision), repeats in w.repeats.items():
                self._emit(kind, rid, f"{repeats.count} more suppressed: {decision} {subject}"[:500],
                           {**repeats.summary(self._folds.get(kind)), "subject": subject,
                            "decision": decision})
            if w.throttled:
                self._emit("store.throttled", rid,
                           f"{w.throttled} events not stored: past {self._rate()} rows/s "
                           f"for {'this run' if rid is not None else 'the daemon'}", {"count": w.throttled, "rate": self._rate()})
            for what, count in w.refused.items():
                self._emit("limits.refused", rid,
                           f"{count} connections to {what} refused: past this run's bound",
                           {"count": count, "socket": what})

    async def run(self) -> None:
        """Close windows once per interval, so summaries appear without new events."""
        while True:
            await asyncio.sleep(self.interval)
            now = self._clock()
            for rid, w in list(self._windows.items()):
                if now - w.start >= self.interval:
                    self.flush(rid)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
