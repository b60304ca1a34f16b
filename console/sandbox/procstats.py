"""CPU and memory of a set of host processes, via psutil (shared by the backends).

cpu_percent needs the same psutil.Process object between calls (it measures since the last
call), so a ProcStats keeps them, keyed by pid, and drops the ones that are gone.
"""

from __future__ import annotations

from typing import Any

import psutil


def tree(pid: int | None) -> list[int]:
    """pid and all its descendants that exist now."""
    if pid is None:
        return []
    try:
        top = psutil.Process(pid)
        return [top.pid, *(c.pid for c in top.children(recursive=True))]
    except psutil.Error:
        return []


class ProcStats:
    def __init__(self) -> None:
        self._ps: dict[int, psutil.Process] = {}

    def sample(self, pids: list[int]) -> dict[str, float | int | None]:
        cpu = 0.0
        rss = 0
        live: dict[int, psutil.Process] = {}
        for pid in pids:
            p = self._ps.get(pid)
            try:
                if p is None:
                    p = psutil.Process(pid)
                    p.cpu_percent(None)  # the first call only primes the counter
                else:
                    cpu += p.cpu_percent(None)
                rss += p.memory_info().rss
                live[pid] = p
            except psutil.Error:
                continue
        self._ps = live
        return {"cpu_percent": cpu, "rss_bytes": rss, "pids": len(live)}


class SubprocessHandle:
    """What the backends that run a local child process (bwrap, none) share: the merged
    output pipe, the pids of the run (its process tree and its cgroups), and their stats."""

    backend = ""

    def __init__(self, proc: Any, limits: Any, notes: list[str] | None = None) -> None:
        self.proc = proc
        self.pid: int = proc.pid
        assert proc.stdout is not None
        self.output = proc.stdout
        self.netns_pid: int | None = None
        self.notes: list[str] = list(notes or [])
        self.limits = limits
        self._stats = ProcStats()

    def host_pids(self) -> list[int]:
        return sorted(set(tree(self.pid)) | set(self.limits.pids()))

    def stats(self) -> dict[str, float | int | None]:
        return self._stats.sample(self.host_pids())
