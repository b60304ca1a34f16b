"""What a daemon that died left of its runs, cleaned by the next one's reconcile: processes
that outlived it, and approval requests its history still shows open."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import psutil

from console.policy import Provenance
from store.decisions import open_requests


def kill_leftovers(pids: list[int], cgroup: str) -> list[int]:
    """Kill what is left of a lost run. The pids come from the history, which is not proof (a
    forged row can name any process, a Flatpak app runs under a `bwrap` too, and pids are
    recycled): a process is killed, with its children, only when the kernel puts it in the
    run's own cgroup (`cgroup`, the leaf name the backend made). A run without cgroups leaves
    nothing to kill: bubblewrap dies with the daemon (--die-with-parent)."""
    killed = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if not any(g.endswith("/" + cgroup) or ("/" + cgroup + "/") in g for g in _cgroups(pid)):
                continue
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    p.send_signal(signal.SIGKILL)
                    killed.append(p.pid)
                except psutil.Error:
                    pass
        except psutil.Error:
            continue
    return killed


def recorded_pids(text: str | None) -> list[int]:
    """A run's pids as its row holds them (a JSON list); whatever else a row holds is none."""
    import json

    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [p for p in value if type(p) is int and p > 1] if isinstance(value, list) else []


def _cgroups(pid: int) -> list[str]:
    """The cgroup paths of a process, as /proc/PID/cgroup lists them."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n").split(":", 2)[-1] for line in fh]
    except OSError:
        return []


async def close_lost_requests(writer: Any, run_id: str) -> None:
    """A lost run's requests still open in the history are closed there (cancelled): its agent
    got no answer but the deny its helper gives when the daemon goes, and nobody can decide
    them now. Before, `policy why` showed them pending for good."""
    left = await asyncio.wrap_future(writer.call(lambda conn: open_requests(conn, run_id)))
    prov = Provenance("cancelled", detail="the daemon stopped before it was decided").to_dict()
    for req in left:
        await writer.acommit(
            "approval.cancelled", run_id=run_id, actor="daemon",
            text=f"cancelled {req.get('kind', '')} {req.get('subject', '')}: the daemon "
                 "stopped before it was decided"[:500],
            data={k: req.get(k) for k in ("id", "run_id", "profile", "kind", "subject")}
            | {"allow": False, "provenance": prov})
