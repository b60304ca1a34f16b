"""Bounds on what one run can make the daemon hold: connections, request heads, durable rows,
lookups, and the process's file descriptors.

The `[limits]` table of the config sets them (docs/reviews.md, "Bounds", lists each bound and the
figure measured under the matching attack):

    [limits]
    agent_connections = 32     # open connections per run on agent.sock
    gate_connections = 128     # open client connections per run on gate.sock and the bridge
    teammate_connections = 16  # open operator.sock connections per teammate (not the owner)
    teammate_runs = 8          # live runs per teammate (not the owner)
    head_bytes = "32k"         # one request head at the gate
    head_timeout = "10s"       # time to send a request head
    send_timeout = "30s"       # an operator.sock client that takes no output for this long is closed
    events_per_second = 20     # durable rule-decided/denied rows per run per second
    lookups_per_second = 20    # DNS lookups per run per second
    ask_burst = 64             # asks on agent.sock a run may make at once, then
    asks_per_second = 10       # this many a second (past them an ask is denied at once)
    prune_confirm_age = "7d"   # pruning history younger than this needs --yes
    approvers_may_prune = false

Past a connection bound the connection is answered "too many connections" and closed; one
aggregated `limits.refused` event per second says how many. Process-wide, an fd budget
(the soft RLIMIT_NOFILE, raised to the hard limit at start, less a reserve) is shared by every
run, so no run can take the daemon to its fd limit and operator.sock always answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

log = logging.getLogger("pilothouse.bounds")

FD_RESERVE = 128  # fds kept for operator.sock, SQLite readers, sandboxes' pipes, logs


@dataclass(frozen=True)
class Bounds:
    agent_connections: int = 32
    gate_connections: int = 128
    teammate_connections: int = 16
    teammate_runs: int = 8
    head_bytes: int = 32 * 1024
    head_timeout: float = 10.0
    send_timeout: float = 30.0
    events_per_second: int = 20
    lookups_per_second: int = 20
    ask_burst: int = 64
    asks_per_second: int = 10
    prune_confirm_age: float = 7 * 86400.0
    approvers_may_prune: bool = False


_SIZES = {"head_bytes"}
_DURATIONS = {"head_timeout", "send_timeout", "prune_confirm_age"}
_FLAGS = {"approvers_may_prune"}


def parse_bounds(data: dict[str, Any], base: Bounds, parse_size: Callable[[Any], int],
                 parse_duration: Callable[[Any], float]) -> Bounds:
    """The [limits] table over `base`. Raises KeyError for an unknown key and ValueError
    (with the key as its first argument) for a bad value."""
    known = {f.name for f in fields(Bounds)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in known:
            raise KeyError(key)
        try:
            if key in _SIZES:
                value: Any = parse_size(raw)
            elif key in _DURATIONS:
                value = parse_duration(raw)
            elif key in _FLAGS:
                if not isinstance(raw, bool):
                    raise ValueError("must be true or false")
                value = raw
            else:
                if not isinstance(raw, int) or isinstance(raw, bool):
                    raise ValueError("must be a whole number")
                value = raw
        except ValueError as exc:
            raise ValueError(key, f"{key}: {exc}") from None
        if key not in _FLAGS and value <= 0:
            raise ValueError(key, f"{key} must be more than zero")
        values[key] = value
    return Bounds(**{**{f.name: getattr(base, f.name) for f in fields(Bounds)}, **values})


# --- file descriptors --------------------------------------------------------------------------


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) as they now are."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the fd limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


class FdBudget:
    """Connection fds the whole daemon may hold: the soft fd limit less a reserve. Every run's
    sockets draw from it, so a flood on one run is refused before accept() starts failing."""

    def __init__(self, total: int | None = None, reserve: int = FD_RESERVE) -> None:
        if total is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            total = soft - reserve if soft != resource.RLIM_INFINITY else 1 << 20
        self.total = max(16, total)
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int = 1) -> bool:
        with self._lock:
            if self.used + n > self.total:
                return False
            self.used += n
            return True

    def give(self, n: int = 1) -> None:
        with self._lock:
            self.used = max(0, self.used - n)


_budget: FdBudget | None = None


def fd_budget() -> FdBudget:
    """The process's budget, made on first use (after raise_fd_limit at daemon start)."""
    global _budget
    if _budget is None:
        _budget = FdBudget()
    return _budget


# --- capped servers ----------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def capped(handler: Handler, cap: Callable[[], int], refusal: bytes,
           on_refused: Callable[[], None], budget: FdBudget | None = None) -> Handler:
    """A connection handler that admits at most cap() connections at once (and only while
    the fd budget lasts); the others get `refusal` and are closed at once."""
    active = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        spend = budget if budget is not None else fd_budget()
        if active >= cap() or not spend.take():
            on_refused()
            with contextlib.suppress(Exception):
                writer.write(refusal)
                writer.close()
            return
        active += 1
        try:
            await handler(reader, writer)
        finally:
            active -= 1
            spend.give()

    return serve
