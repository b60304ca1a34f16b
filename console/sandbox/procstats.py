"""CPU and memory of a set of host processes, via psutil (shared by the backends).

cpu_percent needs the same psutil.Process object between calls (it measures since the last
call), so a ProcStats keeps them, keyed by pid, and drops the ones that are gone.
"""

from __future__ import annotations

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
