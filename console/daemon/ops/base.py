"""What every operation module shares: the handler's shape, its table entry, and reading args.

A handler gets the daemon's typed parts (`Core`), the peer (from SO_PEERCRED) and the request's
args, and returns a JSON-able result or raises Failure. Streaming handlers push events through
`send` before returning their final result.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from console.daemon.core import Core
from console.daemon.peers import Peer
from console.protocol import Failure

Args = dict[str, Any]
INT64 = (-(2**63), 2**63 - 1)
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Core, Peer, Args, Send], Awaitable[Any]]


@dataclass(frozen=True)
class Op:
    handler: Handler
    decides: bool = False  # changes state: only operators and approvers
    # Reads what a watcher may not see (the owner's config file around a rule to save): only
    # operators and approvers, as for `decides`, but nothing changes (review h135).
    approvers_only: bool = False
    # Ends or changes what is not the caller's alone (every run, the owner's included; the
    # owner's config in force): the daemon's own user or root only; an approver decides,
    # starts and stops runs, not the daemon or its config (reviews s42, h173).
    owner_only: bool = False


OpTable = dict[str, Op]


def arg(args: Args, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """args[name], checked against `kind`; `default` when absent (missing and no default:
    bad-args)."""
    if name not in args or args[name] is None:
        if default is ...:
            raise Failure("bad-args", f"missing argument {name!r}")
        return default
    value = args[name]
    # JSON's true is Python's 1: `"older_than_s": true` pruned what was older than a second
    # (review h190). A boolean is taken only where one is asked for.
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        raise Failure("bad-args", f"argument {name!r} has the wrong type")
    # Numbers as SQLite and the history's JSON take them: a 2**70 id or a NaN age reached
    # them and came back as an "internal" error with a traceback in the log (review s17).
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        raise Failure("bad-args", f"argument {name!r} is out of range", "give a 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise Failure("bad-args", f"argument {name!r} must be a finite number, not {value}")
    return value


async def record_denied(core: Core, peer: Peer, name: str, scope: str | None = None) -> None:
    """A teammate's refused attempt at an op (a watcher's at a deciding op, an approver's
    prune, or decision or revoke of a standing `scope`): its own row, or counted into this second's
    summary for (user, op) as an agent's floods are (floods.py), so a teammate cannot fill the
    history and the disk. The op is refused either way."""
    subject, data = f"{peer.user}: {name}", {"op": name, "role": peer.role, "user": peer.user}
    if scope is not None:
        data["scope"] = scope
    if not core.recording.admit(None, "operator.denied_op", subject, "deny", data):
        return
    await core.store.record_security("operator.denied_op", actor=peer.user,
                                     text=f"{peer.user} ({peer.role}) tried {name}"
                                     + (f" with scope {scope}" if scope else ""), data=data)
    core.recording.recorded(None, "operator.denied_op", subject, "deny")
