"""The history: query, export, verify the audit chain, prune."""

from __future__ import annotations

import time
from typing import Any

from console import wire
from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send, arg, record_denied
from console.daemon.peers import Peer
from console.protocol import LIVE_STATES, Failure
from store import audit, history


def _filters(args: Args) -> dict[str, Any]:
    return {
        "run_id": arg(args, "run", str, None),
        "kind": arg(args, "kind", str, None),
        "search": arg(args, "search", str, None),
        "since": arg(args, "since", (int, float), None),
        "until": arg(args, "until", (int, float), None),
        "decision": arg(args, "decision", str, None),
    }


async def history_op(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Events newest first, as many as one answer holds. With `paged`, {rows, more}: `more`
    says whether older events match (one more is read to know), so a reader never takes an
    answer cut short by a large row for the end of the history."""
    f = _filters(args)
    limit = min(arg(args, "limit", int, 100), 5000)
    if limit < 1:
        raise Failure("bad-args", "limit must be 1 or more")
    before = arg(args, "before_id", int, None)
    paged = arg(args, "paged", bool, False)
    await core.store.flush(searchable=f["search"] is not None, lines_of=())  # events only

    def page(db: Any) -> wire.Encoded:  # in the reader's thread: 5,000 rows are ms of JSON
        rows = history.query_events(db, before_id=before, limit=limit + paged, **f)
        kept, text = wire.fitted(rows[:limit])  # one answer: fewer rows when they are large
        if not paged:
            return wire.Encoded(kept, text)
        more = len(kept) < len(rows)
        return wire.Encoded({"rows": kept, "more": more},
                            f'{{"rows":{text},"more":{"true" if more else "false"}}}')

    try:
        return await core.store.read(page)
    except ValueError as exc:
        raise Failure("bad-args", str(exc)) from None


async def export_op(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Streams matching events oldest first as events of kind export.rows, up to 1000 at a
    time (fewer when they are large: wire.ANSWER_MAX_BYTES a message)."""
    f = _filters(args)
    await core.store.flush(searchable=f["search"] is not None, lines_of=())  # events only
    total = 0
    after: int | None = None
    while True:
        batch = await core.store.read(
            lambda db, after=after: history.query_events_after(db, after_id=after, limit=1000, **f)
        )
        if not batch:
            return {"rows": total}
        total += len(batch)
        after = batch[-1]["id"]
        for rows in wire.batched(batch):  # each part one message a client can read
            await send(wire.event({"kind": "export.rows", "rows": rows}))


async def audit_verify(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    await core.store.flush()
    key, witness = core.store.key, core.store.witness_file
    result = await core.store.read(lambda db: audit.verify(db, key, witness=witness,
                                                                 live_states=LIVE_STATES))
    return result.as_dict()


async def prune(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Prune is the owner's act (an approver only with [limits] approvers_may_prune), and
    history younger than prune_confirm_age needs confirm=true (`--yes`)."""
    older = arg(args, "older_than_s", (int, float))
    if older <= 0:
        raise Failure("bad-args", "older_than must be more than zero")
    bounds = core.config.cfg.bounds
    if peer.role != "operator" and not bounds.approvers_may_prune:
        # Folded as a watcher's attempts are: an approver's 2,000 refused prunes were 2,000
        # chained rows (review s13b2).
        await record_denied(core, peer, "prune")
        raise Failure("not-allowed", f"{peer.user} may not prune the history (role: "
                      f"{peer.role}); only the daemon's owner may",
                      "ask the owner, or set approvers_may_prune = true under [limits]")
    if older < bounds.prune_confirm_age and not arg(args, "confirm", bool, False):
        days = bounds.prune_confirm_age / 86400
        raise Failure("confirm", f"pruning history younger than {days:g} days deletes recent "
                      "evidence", "run it again with --yes to confirm")
    await core.store.record_security(
        "store.prune", actor=peer.user, text=f"prune of events older than {older:.0f}s by {peer.user}",
        data={"older_than_s": older, "by": peer.user, "role": peer.role,
              "confirmed": bool(args.get("confirm"))},
    )
    return await core.store.prune(time.time() - older)


OPS: OpTable = {
    "history": Op(history_op),
    "export": Op(export_op),
    "audit.verify": Op(audit_verify),
    "prune": Op(prune, decides=True),
}
