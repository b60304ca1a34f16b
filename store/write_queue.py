"""What waits for the store's writer: events and calls in their order, and each run's output
lines in a queue of their own.

One run's flood of output must not hold up what is queued after it: an approval waits on the
commit of its decision, another run's lines, a `logs` of another run (session 45: decisions
waited 2.5 s p50 behind a flood's 100,000 queued lines). So a batch takes events first and
then lines from every run in turn. Each run's lines have their own bound, and all runs' lines
together one too: past it, a run holding its share (the bound over the runs with lines queued)
is refused, a run below it is not, so a flood drops its own lines, not a quieter run's, and N
flooding runs hold about twice the bound, not N times it (review h205).

Two things still need lines given before them. A run's end (its output seal, SEAL) vouches for
every line of the run given before it: those lines go into the batch first, and while they do,
only plain events of other runs pass the seal (nothing passes a call or a second seal, so each
run's own order holds). A read (`lines_in`) waits for the lines of the runs it reads: its mark
is how many lines each run had been given when it asked.

Lines still get a turn while commits keep coming: a batch holding a waited item takes a few
lines (a tenth of a batch) once they have been passed over for `max_delay` (review h205: under
a steady stream of decisions every batch held one, and a quiet run's lines were never stored).

All of it under the writer's lock, which producers take for a line (the writer drops a run's
emptied queue: a line added to a dropped one would be lost) and for an item somebody waits for;
bulk events are appended without it, and the writer changes the events in place. The count of
queued lines is kept as a number, so the writer and `stats()` read it without walking the runs
while a producer adds one (that walk killed the writer thread, review h205).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import deque
from collections.abc import Collection
from typing import Any

from store.batch import EV, OUT, SEAL, fail_items

Item = tuple[Any, ...]
DUE_SHARE = 10  # lines passed over for max_delay: a tenth of a batch rides with waited items


class RunLines:
    """One run's queued lines; `given` and `taken` count them over the queue's life."""

    __slots__ = ("given", "queued", "taken")

    def __init__(self) -> None:
        self.queued: deque[Item] = deque()
        self.given = self.taken = 0


Mark = list[tuple[RunLines, int]]  # (a run's lines, how many it had been given)


class WriteQueue:
    """The writer's queue. `lock` is the writer's: callers marked (locked) hold it."""

    def __init__(self, lock: threading.Lock, *, bound: int, max_delay: float) -> None:
        """`bound`: the events queued at most, and each run's lines (all runs': see add_line)."""
        self.lock = lock
        self.max_events = self.max_lines = bound
        self.max_delay = max_delay
        self.events: deque[Item] = deque()
        self.urgent = 0  # queued items somebody waits for
        self.lines = 0  # queued lines, every run's
        self._lines_turn = time.monotonic()  # when lines last went into a batch
        self._runs: dict[str, RunLines] = {}
        self._seal_marks: dict[int, Mark] = {}  # id(seal item): the lines it must follow
        self._reads: list[tuple[Mark, concurrent.futures.Future[None]]] = []

    @property
    def pressing(self) -> bool:
        """Somebody waits: an item's commit, or a read for lines."""
        return self.urgent > 0 or bool(self._reads)

    def __len__(self) -> int:
        return len(self.events) + self.lines

    # --- producers -----------------------------------------------------------------------------

    def add_event(self, item: Item) -> int:
        """A bulk event (no lock needed: the writer changes the events in place); how many
        wait now, 0 when they are at their bound (it is dropped)."""
        events = self.events
        if len(events) >= self.max_events:
            return 0
        events.append(item)
        return len(events)

    def add_line(self, run_id: str, item: Item) -> int:
        """A line of run_id's output (locked); how many of its lines wait now, 0 when that
        run's lines are at their bound, or when every run's lines together are and this run
        holds its share of them (it is dropped)."""
        lines = self._runs.get(run_id)
        held = 0 if lines is None else len(lines.queued)
        if held >= self.max_lines or (self.lines >= self.max_lines and held >= self.max_lines
                                      // (len(self._runs) + (lines is None))):
            return 0
        if lines is None:
            lines = self._runs[run_id] = RunLines()
        lines.queued.append(item)
        lines.given += 1
        self.lines += 1
        return len(lines.queued)

    def add_waited(self, item: Item, *, first: bool = False) -> None:
        """An item somebody waits for (locked): never dropped. A seal notes its run's lines."""
        if item[0] == SEAL and (lines := self._runs.get(item[2])) is not None:
            self._seal_marks[id(item)] = [(lines, lines.given)]
        if first:
            self.events.appendleft(item)
        else:
            self.events.append(item)
        self.urgent += 1

    def lines_in(self, run_ids: Collection[str] | None) -> concurrent.futures.Future[None]:
        """(locked) A future resolved once the lines given so far by run_ids (None: every run)
        are committed; `settle` resolves it after the batch that takes the last of them."""
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        if isinstance(run_ids, str):  # one run's id, not its characters' (review h205)
            run_ids = (run_ids,)
        runs = self._runs.values() if run_ids is None else filter(None, map(self._runs.get, run_ids))
        mark = [(lines, lines.given) for lines in runs if lines.taken < lines.given]
        if mark:
            self._reads.append((mark, fut))
        else:
            fut.set_result(None)
        return fut

    # --- the writer ----------------------------------------------------------------------------

    def take(self, most: int) -> list[Item]:
        """Up to `most` items for one batch: events in order (a seal after its run's earlier
        lines), then, if nobody waits on any of them, lines from every run in turn (a few
        when somebody does, once the lines have waited `max_delay`)."""
        out: list[Item] = []
        now = time.monotonic()
        with self.lock:
            while self.events and len(out) < most:
                item = self.events[0]
                if item[0] == SEAL and self._seal_waits(item, out, most):
                    break
                out.append(self.events.popleft())
                if item[0] != OUT and item[-1] is not None:
                    self.urgent -= 1
            if not self.lines:
                self._lines_turn = now  # none waits: the clock starts at the next one
            elif not any(it[0] != OUT and it[-1] is not None for it in out):
                self._take_lines(out, most)
                self._lines_turn = now
            elif now - self._lines_turn >= self.max_delay:  # a few, beside what is waited on
                self._take_lines(out, min(most, len(out) + max(1, most // DUE_SHARE)))
                self._lines_turn = now
        return out

    def settle(self) -> None:
        """After a batch (committed or failed): resolve the reads whose lines are all in."""
        with self.lock:
            waiting = []
            for mark, fut in self._reads:
                if any(lines.taken < upto for lines, upto in mark):
                    waiting.append((mark, fut))
                elif not fut.done():
                    fut.set_result(None)
            self._reads = waiting

    def fail(self, err: Exception) -> None:
        """(locked) Everyone waiting gets err; everything queued goes."""
        fail_items(list(self.events), err)
        self.events.clear()
        self.urgent = self.lines = 0
        self._runs.clear()
        self._seal_marks.clear()
        for _, fut in self._reads:
            if not fut.done():
                fut.set_exception(err)
        self._reads = []

    def _seal_waits(self, seal: Item, out: list[Item], most: int) -> bool:
        """A seal at the head whose run's earlier lines are still queued: the events of other
        runs behind it go first, then as many of those lines as fit. True while some are left
        (the seal waits for a later batch)."""
        mark = self._seal_marks.get(id(seal))
        if mark is None:
            return False
        (lines, upto), = mark
        if lines.taken < upto:
            self._pass_sealing(seal[2], out, most)
            self._move(seal[2], lines, min(upto - lines.taken, most - len(out)), out)
            if lines.taken < upto:
                return True
        del self._seal_marks[id(seal)]
        return False

    def _pass_sealing(self, run_id: str, out: list[Item], most: int) -> None:
        """A seal waits for its lines: plain events of other runs behind it go ahead, up to the
        first call or seal, which nothing passes. In place: producers append bulk events
        without the lock."""
        events, kept = self.events, [self.events.popleft()]
        while events and len(out) < most:
            item = events[0]
            if item[0] != EV:
                break
            events.popleft()
            if item[2] == run_id:
                kept.append(item)
            else:
                out.append(item)
                if item[-1] is not None:
                    self.urgent -= 1
        events.extendleft(reversed(kept))

    def _take_lines(self, out: list[Item], most: int) -> None:
        """Fill `out` with lines, an equal share from every run that has some."""
        runs = self._runs
        while runs and len(out) < most:
            share = max(1, (most - len(out)) // len(runs))
            for run_id in list(runs):
                self._move(run_id, runs[run_id], min(share, most - len(out)), out)
                if len(out) >= most:
                    break

    def _move(self, run_id: str, lines: RunLines, count: int, out: list[Item]) -> None:
        queued = lines.queued
        count = min(count, len(queued))
        out.extend(queued.popleft() for _ in range(count))
        lines.taken += count
        self.lines -= count
        if not queued and self._runs.get(run_id) is lines:  # a later line starts a new one;
            del self._runs[run_id]  # the marks that hold this one see it all taken
