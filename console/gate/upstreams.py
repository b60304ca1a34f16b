"""The gate's upstream connections: dialled within the run's limit, ended with a record, and
an HTTP one parked when its client connection ends, for the run's next request to the same
checked address (as forward proxies keep their upstream connections alive).

Parking never skips a decision: every request is decided first (deciding.py), and a parked
connection is taken only for the target it was dialled for and only when its address is among
those the new decision allows. One is parked only after a complete exchange the upstream said
it would keep (HTTP/1.1, framed, no `Connection: close`), with nothing unread; it is taken only
while the peer has neither closed it nor sent anything unasked, and never once the gate is
closing; it is ended PARK_SECONDS after its last answer (under the keep-alive timeout of common
servers, or a second under the one its server states), on new rules that deny it, and as the
gate starts closing. Parked ones count as open upstream connections (`tunnels`, the
run's limit, the daemon's descriptor budget) until they end."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from console.config.bounds import FdBudget
from console.gate.common import Conn, Dialer, Refusal, Upstream, dial_failure, ip_text
from console.gate.deciding import Deciding
from console.gate.sockio import SockStream
from console.policy.hosts import IPAddress, Target
from console.policy.netrules import NetworkRules

__all__ = ["CLOSE_GRACE_S", "Dialling", "PARK_SECONDS", "PARKED_MOST", "end_within_grace"]

log = logging.getLogger("console.gate.proxy")

PARK_SECONDS = 4.0  # servers commonly drop an idle keep-alive connection at 5 s (uvicorn, Node)
PARKED_MOST = 8  # parked at once per gate; the oldest ends first
CLOSE_GRACE_S = 5.0  # the gate's close waits this long for connections to end, then cancels
# Requests sent again, once, on a fresh connection when a parked one turns out to have been
# closed by its server as the request went (no byte of an answer came back): only these, and
# only without a body, may be repeated (RFC 9110 9.2.2: safe and idempotent).
REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS"})


class Dialling(Deciding):
    """The upstream half of a Gate (proxy.py); the attributes are set by Gate.__init__."""

    _dial: Dialer
    _closing: bool
    _budget: FdBudget | None
    tunnels: int
    # parked connection -> the timer that ends it; a dict keeps them oldest first
    _parked: dict[Upstream, asyncio.TimerHandle]
    _ending: set[asyncio.Task[None]]

    @property
    def parked(self) -> int:
        """Upstream connections parked now (counted in `tunnels` too)."""
        return len(self._parked)

    async def _open(self, addrs: list[IPAddress], target: Target,
                    allowed_by: dict[str, Any] | None = None) -> Upstream:
        if self.tunnels >= self.limits.max_tunnels and self._parked:
            await self._finish(self._unpark(next(iter(self._parked))), "idle")
        if self.tunnels >= self.limits.max_tunnels:
            raise Refusal(503, f"Pilothouse gate: this run already has {self.tunnels} open "
                                f"connections (limit {self.limits.max_tunnels}); close some.")
        self.tunnels += 1
        errors, why = [], []
        for ip in addrs:
            try:
                if self._closing:  # a decision recorded, or a dial failed, while the gate closes
                    raise Refusal(503, "Pilothouse gate: this run's gate is closing.")
                reader, writer = await self._dial(ip, target.port, self.limits.connect_timeout)
                if self.denied_now(target, ip):  # the rules were reloaded while it dialled
                    writer.close()
                    await self._record_quietly("net.error", {
                        "host": target.host, "port": target.port, "stage": "reload",
                        "error": "denied by the rules reloaded while it was being connected"})
                    raise Refusal(403, f"Pilothouse gate: {target.authority} is denied by the "
                                       "rules reloaded while it was being connected.")
                if not self.yes_stands(target, ip, allowed_by):  # its grant ended while it dialled
                    writer.close()
                    raise await self._grant_ended(target)
                return Upstream(target, ip, reader, writer)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{ip_text(ip)}: {exc or type(exc).__name__}")
                why.append(dial_failure(exc))
            except BaseException:  # cancelled, or the gate closing: the slot is given back
                self.tunnels -= 1
                raise
        self.tunnels -= 1
        await self._record_quietly("net.error", {"host": target.host, "port": target.port,
                                                 "stage": "dial", "error": "; ".join(errors)})
        # The sandbox reads why, not where: the addresses a name resolved to stay in the
        # record (a 403 never says them either: no DNS oracle into the local network). The
        # error's own text names the address (sockio's, asyncio's), so only its errno is told.
        shown = errors if target.ip is not None else list(dict.fromkeys(why))
        raise Refusal(502, f"Pilothouse gate: could not connect to {target.authority} "
                            f"({'; '.join(shown)}).")

    async def _carrier(self, conn: Conn, target: Target, addrs: list[IPAddress]) -> Upstream:
        """The upstream connection a request just allowed goes on, as `conn.upstream`: the one
        the client connection keeps when it may carry this request (_spent), else a parked one
        (_take_parked), else a fresh dial (_open). A held one (kept or parked) carries it only
        while the yes it was allowed on stands, as a dial's is asked again once it completes: a
        grant that ended while the decision was being recorded let the request out on a held
        connection where a fresh dial was refused (review h188)."""
        up, conn.upstream = conn.upstream, None  # a connection ended here is not ended twice
        if up is not None and (how := self._spent(up, target, addrs)) is not None:
            await self._finish(up, how)
            up = None
        if up is None:
            up = self._take_parked(target, addrs)
        if up is None:
            up = await self._open(addrs, target, conn.allowed_by)
        elif not self.yes_stands(target, up.address, conn.allowed_by):
            await self._finish(up, "policy")
            raise await self._grant_ended(target)
        conn.upstream = up
        return up

    async def _grant_ended(self, target: Target) -> Refusal:
        """Record that the grant a request was allowed on ended before the request went, and
        the refusal the client is answered with."""
        await self._record_quietly("net.error", {
            "host": target.host, "port": target.port, "stage": "grant",
            "error": "the grant it was allowed on ended before the request was sent"})
        return Refusal(403, f"Pilothouse gate: the grant that allowed {target.authority} "
                            "ended before the request was sent (revoked, or its time ran "
                            "out); ask again.")

    async def _finish(self, up: Upstream, how: str) -> None:
        self._release(up)
        await self._closed(up, how)

    def _release(self, up: Upstream) -> None:
        """The connection is closed and no longer counts; its record may follow (_closed)."""
        self.tunnels -= 1
        up.writer.close()

    async def _closed(self, up: Upstream, how: str) -> None:
        try:
            await up.writer.wait_closed()
        except Exception:
            pass
        await self._record_quietly("net.closed", {
            "host": up.target.host, "port": up.target.port, "address": ip_text(up.address),
            "bytes_up": up.act.up, "bytes_down": up.act.down, "how": how,
            "duration_s": round(time.monotonic() - up.started, 6)})

    def _spent(self, up: Upstream, target: Target, addrs: list[IPAddress]) -> str | None:
        """Why the upstream a client connection kept may not carry its next request (how it
        ends), or None when it may: another target or an address the new decision did not
        allow, or the server closed it or sent bytes no request asked for. Those bytes (a body
        behind an answer framed bodiless: to a HEAD, a 204, a 304) were read as the next
        request's answer, a whole forged one (review h176); parked ones were already looked at
        so (_take_parked)."""
        if up.target != target or up.address not in addrs:
            return "closed"
        reader = up.reader
        if not isinstance(reader, SockStream):
            return "closed" if reader.at_eof() else None
        if reader.buf:
            return "error"
        return reader.peer_quiet() if reader.settled() else "closed"

    # -- parking ------------------------------------------------------------------------------

    async def _let_go(self, up: Upstream, how: str) -> None:
        """A client connection ended (`how`): its upstream is parked when the client simply
        closed and the upstream may serve again, else ended."""
        if how != "closed" or not self._park(up):
            await self._finish(up, how)

    def _park(self, up: Upstream) -> bool:
        if not (PARKED_MOST and up.reusable and not self._closing
                and isinstance(up.reader, SockStream) and up.reader.settled()):
            return False
        if self._budget is not None and not self._budget.take(1):
            return False  # the client's descriptors go back with it; a parked one holds its own
        # Its server's keep-alive clock runs from the last answer, not from the client's close,
        # and a server that says how long it keeps one is taken at its word, less a second.
        keep = PARK_SECONDS if up.keep_s is None else min(PARK_SECONDS, up.keep_s - 1)
        left = up.act.last + keep - time.monotonic()
        if left <= 0:
            if self._budget is not None:
                self._budget.give(1)
            return False
        if len(self._parked) >= PARKED_MOST:
            self._end_later(self._unpark(next(iter(self._parked))), "idle")
        self._parked[up] = asyncio.get_running_loop().call_later(left, self._expire, up)
        return True

    def _unpark(self, up: Upstream) -> Upstream:
        self._parked.pop(up).cancel()
        if self._budget is not None:
            self._budget.give(1)
        return up

    def _expire(self, up: Upstream) -> None:
        if up in self._parked:
            self._end_later(self._unpark(up), "idle")

    def _end_later(self, up: Upstream, how: str) -> None:
        """End it now (its slot is free at once); only its record waits for a task."""
        self._release(up)
        task = asyncio.ensure_future(self._closed(up, how))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _take_parked(self, target: Target, addrs: list[IPAddress]) -> Upstream | None:
        """A parked connection to this target at one of the allowed addresses, still open and
        quiet; any found closed, or with bytes nobody asked for, is ended on the way. None
        once the gate is closing: nothing goes upstream then."""
        if self._closing:
            return None
        for up in list(self._parked):
            if up.target != target or up.address not in addrs:
                continue
            self._unpark(up)
            how = up.reader.peer_quiet()
            if how is None:
                return up
            self._end_later(up, how)
        return None

    def _drop_parked(self) -> None:
        """The gate starts closing: every parked connection ends now."""
        for up in list(self._parked):
            self._end_later(self._unpark(up), "closed")

    async def _end_parked(self) -> None:
        """The gate closes: every parked connection has ended; their records are waited for."""
        self._drop_parked()
        await end_within_grace(set(self._ending))  # bounded like the connections' own ends

    def replace_rules(self, rules: NetworkRules) -> int:
        """Deciding.replace_rules, and parked connections the new rules deny end too."""
        ended = super().replace_rules(rules)
        for up in list(self._parked):
            if self.denied_now(up.target, up.address):
                self._end_later(self._unpark(up), "policy")
                ended += 1
        return ended


async def end_within_grace(tasks: set[asyncio.Task[Any]]) -> None:
    """The gate closes: wait up to CLOSE_GRACE_S for these tasks to end, then give up on
    those that did not (a recorder may hang)."""
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
        await _give_up_on(stuck)


async def _give_up_on(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel tasks that did not end in time, and wait a moment for them: a cancelled task's
    own cleanup may wait on the same hung callback again (a record in a `finally`), and the
    gate's close must not wait on it for ever (review s33)."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, left = await asyncio.wait(tasks, timeout=1)
        if left:
            log.warning("gate: %d task(s) still ending after their cancellation", len(left))
