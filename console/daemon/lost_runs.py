"""What a daemon that died left of its runs, cleaned by the next one's reconcile: processes
that outlived it, and approval requests its history still shows open."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import psutil

from console.policy import Provenance
from store.decisions import open_requests


def kill_leftovers(pids: list[int]) -> list[int]:
    """Kill what is left of a lost run. A recorded pid is only trusted while its process is a
    sandbox launcher or one of the run's own children: pids are recycled."""
    killed = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.name() not in ("bwrap", "docker-init", "tini") and proc.ppid() != 1:
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
