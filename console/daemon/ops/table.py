"""The one table of operations served on operator.sock, merged from each area's own table.

docs/protocol.md lists them. A name in two areas' tables is a mistake caught at import.
"""

from __future__ import annotations

import logging
from typing import Any

from console.daemon.core import Core
from console.daemon.ops import approvals, config, daemon, gpu, history, policy, runs
from console.daemon.ops.base import Args, OpTable, Send, record_denied
from console.daemon.peers import Peer
from console.protocol import Failure
from store import StoreError
from store.waits import StoreStuck, StoreUncertain

log = logging.getLogger("pilothouse.daemon")

AREAS: tuple[OpTable, ...] = (daemon.OPS, config.OPS, runs.OPS, history.OPS, gpu.OPS,
                              approvals.OPS, policy.OPS)


def merge(tables: tuple[OpTable, ...]) -> OpTable:
    merged: OpTable = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        if twice:
            raise RuntimeError(f"operations defined twice: {sorted(twice)}")
        merged.update(table)
    return merged


OPERATIONS: OpTable = merge(AREAS)


async def dispatch(core: Core, peer: Peer, name: str, args: Args, send: Send) -> Any:
    entry = OPERATIONS.get(name)
    if entry is None:
        raise Failure("unknown-op", f"unknown operation {name!r}", "see docs/protocol.md")
    if entry.decides and core.life.stopping and name != "daemon.stop":
        raise Failure("stopping", f"the daemon is stopping; {name} was not done",
                      "start it again (pilothouse daemon) once it has stopped")
    if (entry.decides or entry.approvers_only) and not peer.may_decide:
        await record_denied(core, peer, name)
        raise Failure(
            "not-allowed",
            f"{peer.user} may watch but not {name} (role: {peer.role})",
            "ask the owner to list you in [team] approvers",
        )
    if entry.owner_only and peer.role != "operator":
        await record_denied(core, peer, name)
        raise Failure("not-allowed", f"{peer.user} may not {name} (role: {peer.role}): it is "
                      "the daemon owner's alone", "ask the owner of the daemon to do it")
    try:
        return await entry.handler(core, peer, args, send)
    except StoreError as exc:  # the disk, not a bug: refused (fail closed), said plainly
        log.error("%s refused: the store failed: %s", name, exc)
        where = (f"check the disk where the history lives ({core.paths.data_dir}: free space, "
                 f"permissions) with `pilothouse doctor`, and the daemon log "
                 f"({core.paths.daemon_log})")
        if isinstance(exc, StoreStuck):  # not the disk: the writer did not answer in time
            where = f"the daemon log ({core.paths.daemon_log}) says why the store is stuck"
        if entry.decides and isinstance(exc, StoreUncertain):  # store/waits.py: not "not recorded"
            raise Failure("record-failed", f"{name} was not done, but its record may still "
                          f"be committed ({exc})", f"nothing was applied; {where}") from None
        if entry.decides:
            raise Failure("record-failed", f"{name} was not done: it could not be recorded "
                          f"({exc})", f"nothing was applied; {where}") from None
        raise Failure("store-failed", f"{name} could not be answered: the history could not "
                      f"be read ({exc})", where) from None
