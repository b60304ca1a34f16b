"""The bounded hand-over between the run screen's output worker and its Log.

The worker puts every batch the daemon sends; the screen takes what is there on a timer and
writes it in one call. The spool keeps at most `bound` lines: under a flood faster than the
screen draws, the oldest lines are dropped and counted, so memory stays flat however fast a run
writes, and the person is told exactly how many lines they did not get.

Dropped lines are counted from two sources, both exact: lines this spool pushed out, and gaps in
the daemon's line numbers (a `run.output` event says which line of the run it starts with, so
batches the daemon's bus skipped for a slow reader show up as a jump).

`put` says when the reader should be told (one message in flight at most: the flag is cleared
only when the screen takes the lines), so the app's message queue cannot grow with the flood.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class OutputSpool:
    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._lines: deque[str] = deque(maxlen=bound)
        self.reset()

    def reset(self) -> None:
        """Forget everything (the output is about to be read again from the start)."""
        self._lines.clear()
        self._dropped = 0  # lines lost since the last take
        self._next: int | None = None  # the daemon's number for the run's next line
        self._told = False  # a message is on its way to the screen
        self.total = 0  # lines of the run accounted for: kept, dropped here or by the daemon
        self.dropped = 0  # lines dropped in all
        self.peak = 0  # most lines ever held at once
        self.wakes = 0  # messages the worker was asked to post
        self.takes = 0  # times the screen took the lines

    def put(self, lines: Sequence[str], first: int | None = None) -> bool:
        """Hold `lines` (the run's lines numbered from `first`, when the daemon says).
        True when the screen should be told (nothing is on its way yet)."""
        if first is not None:
            if self._next is not None and first > self._next:
                gap = first - self._next  # the daemon skipped these for a slow reader
                self._drop(gap)
                self.total += gap
            self._next = max(first + len(lines), self._next or 0)
        overflow = len(self._lines) + len(lines) - self.bound
        if overflow > 0:
            self._drop(overflow)  # the deque pushes out the oldest as it extends
        self._lines.extend(lines)
        self.total += len(lines)
        self.peak = max(self.peak, len(self._lines))
        if self._told:
            return False
        self._told = True
        self.wakes += 1
        return True

    def _drop(self, count: int) -> None:
        self._dropped += count
        self.dropped += count

    def take(self) -> tuple[list[str], int]:
        """The lines held and how many were dropped before them since the last take."""
        lines = list(self._lines)
        self._lines.clear()
        dropped, self._dropped = self._dropped, 0
        self._told = False
        self.takes += 1
        return lines, dropped
