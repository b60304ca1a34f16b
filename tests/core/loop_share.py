"""Where a daemon's CPU went: its loop thread (the main thread) against all its threads, over a
with-block. Counted in the kernel's ticks, never timed, so a test can say "this work ran off the
loop" on a slow machine as well as on a fast one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def cpu_ticks(path: str) -> int:
    """utime + stime of a process or thread, from its /proc stat line."""
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class LoopShare:
    def __init__(self, pid: int) -> None:
        self._loop, self._all = f"/proc/{pid}/task/{pid}/stat", f"/proc/{pid}/stat"
        self.loop = self.total = 0

    def __enter__(self) -> LoopShare:
        self.loop, self.total = -cpu_ticks(self._loop), -cpu_ticks(self._all)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop += cpu_ticks(self._loop)
        self.total += cpu_ticks(self._all)

    def repeat_until(self, least: int, work: Callable[[], T], rounds: int = 6) -> list[T]:
        """`work`'s results, run again until the daemon has spent `least` ticks inside the
        block (at most `rounds` times): a faster machine does the same work in fewer ticks,
        too few to tell where they went."""
        results = [work()]
        while len(results) < rounds and cpu_ticks(self._all) + self.total < least:
            results.append(work())
        return results

    def assert_off_loop(self, what: str, *, least: int, at_most: float) -> None:
        """`what` took at least `least` ticks (enough to tell), and the loop thread at most
        the share `at_most` of them."""
        assert self.total >= least, f"{what} took {self.total} ticks: too few to tell where"
        assert self.loop < at_most * self.total, (
            f"the daemon's loop thread did {self.loop} of the {self.total} ticks {what} took")
