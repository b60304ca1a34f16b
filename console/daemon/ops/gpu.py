"""GPU and throughput: the live snapshot, and one run's report (tokens, energy, cost, and
counts of its approvals and network)."""

from __future__ import annotations

from typing import Any

from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send, arg
from console.daemon.ops.runs import run_get
from console.daemon.peers import Peer
from console.protocol import LIVE_STATES
from store.integrity import runs_off
from store.run_activity import run_activity


async def gpu(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    return core.gpu.snapshot()


async def report(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    run_id = arg(args, "run", str)
    await core.store.flush(searchable=False, lines_of=())  # events and the runs row only
    run = await run_get(core, peer, {"run": run_id}, send)
    metering = await core.gpu.areport(run_id)
    activity = await core.store.read(lambda db: run_activity(db, run_id))
    # The row shown is not chained: say so when its recorded start or end says otherwise.
    warning = await core.store.read(lambda db: runs_off(db.conn, run_id, live_states=LIVE_STATES))
    return {"run": run, "metering": metering, "activity": activity, "warning": warning}


OPS: OpTable = {
    "gpu": Op(gpu),
    "report": Op(report),
}
