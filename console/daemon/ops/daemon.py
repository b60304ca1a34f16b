"""The daemon itself: who it is (hello), stopping it, and the event stream (subscribe)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from console import __version__, wire
from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send, arg
from console.daemon.peers import Peer
from console.protocol import Failure
from store import StoreError

log = logging.getLogger("pilothouse.ops")


async def hello(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    cfg = core.config.cfg
    return {
        "daemon": __version__, "protocol": wire.VERSION, "pid": os.getpid(),
        "user": peer.user, "role": peer.role, "home": str(core.paths.runtime_dir.parent),
        "uptime_s": round(time.time() - core.life.started_at, 1), "config_files": cfg.files,
        "config_error": core.reloader.error,
        "config_file": cfg.user_file,  # where its rules come from (may not exist yet)
        "trace_rows_lost": core.trace.lost,  # metered requests the store refused (logged)
    }


async def daemon_stop(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Always stops: new work is refused from here on, and a store that cannot record the
    request (full, locked) is logged, not a reason to keep running."""
    core.life.stopping = True
    recorded: bool | None = True
    try:
        await core.store.record_security(
            "daemon.stop", actor=peer.user, text=f"stop requested by {peer.user}", timeout=10)
    except StoreError as exc:  # None: not confirmed (store/waits.StoreUncertain), may land
        recorded = None if getattr(exc, "uncertain", False) else False
        log.error("daemon stop by %s %s (stopping anyway): %s", peer.user,
                  "not confirmed as recorded" if recorded is None else "not recorded", exc)
    asyncio.get_running_loop().call_later(0.05, core.life.request_stop)
    return {"stopping": True, "recorded": recorded}


async def subscribe(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Events until the connection closes. topics: any of protocol.Topic (the part of a kind
    before the dot), an exact kind such as run.state, or * for all."""
    topics = arg(args, "topics", list, ["*"])
    if not all(isinstance(t, str) for t in topics):
        raise Failure("bad-args", "topics must be a list of names (run, approval, ... or *)")
    sub = core.bus.subscribe(topics, run_id=arg(args, "run", str, None))
    await send(wire.event({"kind": "subscribed", "topics": topics}))
    try:
        while True:
            await send(wire.event(await sub.get()))
    finally:
        core.bus.unsubscribe(sub)


OPS: OpTable = {
    "hello": Op(hello),
    "daemon.stop": Op(daemon_stop, decides=True, owner_only=True),
    "subscribe": Op(subscribe),
}
