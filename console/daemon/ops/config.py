"""The config in force: reload it, list its profiles."""

from __future__ import annotations

from typing import Any

from console.config.load import ConfigError
from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send
from console.daemon.peers import Peer
from console.protocol import Failure


async def config_reload(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    try:
        return await core.reloader.reload(peer.user, "reload")
    except ConfigError as exc:
        raise Failure("bad-config", str(exc), "fix the file; the old config stays in force") from None


async def profiles(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    return [
        {"name": p.name, "command": p.command, "sandbox": p.sandbox, "image": p.image,
         "description": p.description, "source": p.source, "env": p.env}
        for p in sorted(core.config.cfg.profiles.values(), key=lambda p: p.name)
    ]


OPS: OpTable = {
    # The owner's file, put in force when the owner says (the daemon also reloads it when it
    # changes): an approver's 200 reloads were 200 chained rows only the owner may prune, each
    # closing and opening operator.sock to the team again (review h173).
    "config.reload": Op(config_reload, decides=True, owner_only=True),
    "profiles": Op(profiles),
}
