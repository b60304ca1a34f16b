"""How the gate decides one destination: rules by name, a lookup only when a decision needs
the address (never before a person's yes under "ask", unless an IP allow rule could answer),
rules again with the addresses, one question per destination at a time, and the decision
recorded before it takes effect (fail closed). Gate (proxy.py) serves the connections and
inherits this."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from types import CoroutineType
from typing import Any

from console.gate.common import (
    Asker,
    Conn,
    GateLimits,
    NetAsk,
    Recorder,
    Refusal,
    Resolver,
    Stands,
    Verdict,
    Veto,
    denial,
    ip_text,
    request_sent,
    shown_target,
)
from console.gate.own import OwnAddresses, own_addresses, this_machine
from console.policy.hosts import IPAddress, Target, ip_literal, loopback_addresses
from console.policy.netrules import NetMatch, NetworkRules

__all__ = ["Deciding", "TokenBucket"]

log = logging.getLogger("console.gate.proxy")
_REMEMBERED = 4096  # verdicts kept per gate before the memory starts over
_UNSEEN: Any = object()
_ip_literal = functools.lru_cache(maxsize=1024)(ip_literal)  # pure; asked per request


class Deciding:
    """The decision half of a Gate; the attributes are set by Gate.__init__."""

    run_id: str
    profile: str
    rules: NetworkRules
    limits: GateLimits
    _ask_fn: Asker | None
    _record_fn: Recorder
    _resolve: Resolver
    _pending: dict[tuple[str, int, tuple[str, ...]], asyncio.Task[Verdict]]
    _waiting: dict[tuple[str, int, tuple[str, ...]], int]
    _lookups: TokenBucket
    _decisions: dict[tuple[str, int, tuple[IPAddress, ...] | None], NetMatch]
    _decided_by: NetworkRules | None
    # this_machine's verdicts, kept while the rules and this machine's addresses stay the same
    # objects (a fresh dict is made before the first is kept).
    _own_for: tuple[NetworkRules | None, OwnAddresses | None] = (None, None)
    _own_seen: dict[tuple[str, int, tuple[IPAddress, ...]], NetMatch | None]
    _conns: set[Conn]
    _veto: Veto | None
    _stands: Stands | None

    def denied_now(self, target: Target, address: IPAddress) -> bool:
        """Whether the rules in force deny a connection to this address: one just dialled (a
        reload meanwhile is not seen by replace_rules: it had no upstream yet), or one open.
        This machine's own addresses count as they do for a new connection (review s30: a
        reload that took away the rule naming one left its tunnels open)."""
        return self._by_rules(target, [address]).action == "deny"

    def replace_rules(self, rules: NetworkRules) -> int:
        """New rules (a config reload): every request from now on reads them, and a connection
        open to a destination they deny ends now (recorded `net.closed`, how "policy"): an open
        tunnel must not outlive the rule written to stop it. Destinations they leave to a
        person stay open (the person's yes stands). Returns how many were ended."""
        self.rules = rules
        ended = 0
        for conn in list(self._conns):
            up = conn.upstream
            if up is None or conn.cut:
                continue
            if self.denied_now(up.target, up.address):
                conn.cut = True
                conn.drop()
                ended += 1
        return ended

    # -- the rules' verdict, remembered per rules object --------------------------------------

    def _match(self, rules: NetworkRules, host: str, port: int,
               addrs: list[IPAddress] | None) -> NetMatch:
        """rules.decide, remembered for this rules object: the verdict is a pure function of
        the rules and (host, port, addresses), and a reload replaces the rules object, which
        empties the memory. People's answers and grants are never remembered here: an "ask"
        verdict is asked every time, exactly as before."""
        if rules is not self._decided_by:
            self._decisions = {}
            self._decided_by = rules
        key = (host, port, None if addrs is None else tuple(addrs))
        match = self._decisions.get(key)
        if match is None:
            match = rules.decide(host, port, addrs)
            if len(self._decisions) >= _REMEMBERED:
                self._decisions.clear()
            self._decisions[key] = match
        return match

    def _by_rules(self, target: Target, addrs: list[IPAddress]) -> NetMatch:
        """The rules' verdict on these addresses, this machine's own denied unless a rule
        names them (own.this_machine): every check of addresses reads this one."""
        match = self._match(self.rules, target.host, target.port, addrs)
        if match.action != "deny":
            match = self._this_machine(target, addrs) or match
        return match

    def _this_machine(self, target: Target, addrs: list[IPAddress]) -> NetMatch | None:
        """own.this_machine, remembered like _match (it is asked for every connection, and
        parsing rules' addresses cost a tenth of a tunnel's setup); never when the kernel's
        lists cannot be read (it then says why and denies)."""
        try:
            own = own_addresses()
        except OSError:
            return this_machine(self.rules, target, addrs)
        if self._own_for[0] is not self.rules or self._own_for[1] is not own:
            self._own_for, self._own_seen = (self.rules, own), {}
        key = (target.host, target.port, tuple(addrs))
        seen = self._own_seen.get(key, _UNSEEN)  # one lookup: hashing an address is slow
        if seen is _UNSEEN:
            if len(self._own_seen) >= _REMEMBERED:
                self._own_seen.clear()
            seen = self._own_seen[key] = this_machine(self.rules, target, addrs)
        return seen

    # -- records ------------------------------------------------------------------------------

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        result = self._record_fn(kind, {"run_id": self.run_id, **payload})
        if type(result) is CoroutineType or (result is not None and inspect.isawaitable(result)):
            await result

    async def _record_quietly(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            await self._record(kind, payload)
        except Exception:
            log.exception("gate %s: could not record %s", self.run_id, kind)

    def _refuse(self, method: str, target: Target, m: NetMatch,
                provenance: dict[str, Any] | None) -> Refusal:
        return denial(self.run_id, self.profile, self.rules.suggestion(target.host, target.port),
                      method, target, m, provenance)


    # -- deciding -----------------------------------------------------------------------------

    async def _authorise(self, method: str, raw: str, target: Target,
                         conn: Conn) -> list[IPAddress]:
        """Decide, record, and return the addresses that may be dialled; or raise Refusal.

        A name is looked up only when it must be: never when a rule denies it by name, and
        for "ask" only after a person's yes, unless an allow rule naming an IP or CIDR on
        this port could turn the answer into an allow by address (docs/threat-model.md).
        """
        rules = self.rules
        written, raw = raw, request_sent(method, raw, target)  # asked and recorded as sent
        base = {"host": target.host, "port": target.port, "method": method,
                "target": shown_target(raw)}
        if written != raw:  # the agent's spelling, kept for the record only
            base["written"] = shown_target(written)
        ip = _ip_literal(target.host)
        if ip is not None:
            return await self._by_address(method, raw, target, conn, base, [ip], None)
        local = loopback_addresses(target.host)  # never sent to a resolver
        if local is not None:
            return await self._by_address(method, raw, target, conn, base, local, None)
        pre = self._match(rules, target.host, target.port, None)
        if pre.action == "deny":  # denied by name: never resolved, never leaks to DNS
            await self._decided(base, pre, [], "deny", None)
            raise self._refuse(method, target, pre, None)
        yes: dict[str, Any] | None = None
        if pre.action == "ask" and not self._address_may_allow(target.port):
            verdict = await self._ask_person(conn, method, raw, target, (), pre)
            if not verdict.allow:
                await self._decided(base, pre, [], "deny", verdict.provenance)
                raise self._refuse(method, target, pre, verdict.provenance)
            yes = verdict.provenance
        addrs = await self._lookup(target)
        if isinstance(addrs, str):  # the lookup failed
            if pre.action == "ask" and yes is None:
                # Still put the attempt in front of a person: an agent reaching for an
                # unknown host is worth seeing even when the name does not resolve.
                verdict = await self._ask_person(conn, method, raw, target, (), pre)
                yes = verdict.provenance if verdict.allow else None
                if not verdict.allow:
                    await self._decided(base, pre, [], "deny", verdict.provenance)
                    raise self._refuse(method, target, pre, verdict.provenance)
            if yes is not None:
                await self._decided(base, pre, [], "allow", yes)
            await self._record_quietly("net.error", {**base, "stage": "resolve",
                                                     "error": addrs})
            raise Refusal(502 if "rate" not in addrs else 503,
                          f"Pilothouse gate: could not resolve {target.host} ({addrs}).")
        return await self._by_address(method, raw, target, conn, base, addrs, yes)

    async def _by_address(self, method: str, raw: str, target: Target, conn: Conn,
                          base: dict[str, Any], addrs: list[IPAddress],
                          yes: dict[str, Any] | None) -> list[IPAddress]:
        """The rules again with the addresses; a person's earlier yes covers an "ask" but
        never overrules a deny (by rule, or a name resolving into the local network)."""
        match = self._by_rules(target, addrs)
        action, provenance = match.action, None
        if yes is not None:
            action, provenance = ("deny", {**yes, "overruled": match.reason}) \
                if match.action == "deny" else ("allow", yes)
        elif action == "ask":
            verdict = await self._ask_person(conn, method, raw, target, addrs, match)
            action, provenance = ("allow" if verdict.allow else "deny"), verdict.provenance
            now = self._by_rules(target, addrs)  # reloaded meanwhile?
            if action == "allow" and now.action == "deny":
                match, action, provenance = now, "deny", {**provenance, "overruled": now.reason}
        if action == "allow" and match.action == "ask" and self._veto is not None:
            # A yes about the name came before its lookup (or a grant changed since): the
            # person's deny grants are asked about the very addresses to be dialled.
            veto = self._veto(target.host, target.port, addrs)
            if veto is not None:
                rule = veto.provenance.get("rule")
                match = NetMatch("deny", rule, f"denied by the grant {rule or '(no pattern)'}",
                                 basis="rule")
                action, provenance = "deny", {**(provenance or {}), "overruled": match.reason,
                                              "grant": veto.provenance}
                yes = veto.provenance  # the refusal names the grant, not a person's no
        await self._decided(base, match, addrs, action, provenance)
        if action != "allow":
            raise self._refuse(method, target, match,
                               None if yes is not None else provenance)
        conn.allowed_by = provenance  # None: the rules allowed it (a reload looks at those)
        return addrs

    def recheck_asked(self) -> int:
        """End every open connection a person or a grant allowed whose yes no longer stands
        (`_stands`, the daemon's grants now: the grant it was opened on revoked or run out, a
        deny grant made since), recorded `net.closed` how "policy" as a reload's cut is: a
        tunnel must not outlive the grant it was opened on any more than the rule (review
        h143). The sweeper asks it every second. A check that fails ends the connection."""
        if self._stands is None:
            return 0
        ended = 0
        for conn in list(self._conns):
            up, why = conn.upstream, conn.allowed_by
            if up is None or why is None or conn.cut:
                continue
            if not self.yes_stands(up.target, up.address, why):
                conn.cut = True
                conn.drop()
                ended += 1
        return ended

    def yes_stands(self, target: Target, address: IPAddress, why: dict[str, Any] | None) -> bool:
        """Whether the yes a connection was allowed on (`why`, its provenance; None: the rules
        allowed it) still stands for this address: asked of every open connection, and of one
        just dialled (a grant revoked while it dialled found no upstream to end). A check
        that fails is a no."""
        stands = self._stands
        if why is None or stands is None:
            return True
        try:
            return stands(self.rules, target.host, target.port, address, why)
        except Exception:
            log.exception("gate %s: could not check a yes still stands", self.run_id)
            return False

    def _address_may_allow(self, port: int) -> bool:
        """Could an address turn an "ask" into an allow? Only an allow rule naming an IP or
        CIDR that covers this port can; without one, resolving first would only leak."""
        rules = self.rules
        return any(r.is_address and r.covers_port(port, rules.ports, deny=False)
                   for r in rules.allow)

    async def _lookup(self, target: Target) -> list[IPAddress] | str:
        """Resolve within the run's lookup rate; a reason (str) instead when it fails."""
        if not self._lookups.take():
            return (f"lookup rate limit: more than {self.limits.lookups_per_second:g} "
                    "lookups a second from this run; retry shortly")
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                addrs = await self._resolve(target.host, target.port)
        except (OSError, TimeoutError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return addrs or "no addresses"

    async def _ask_person(self, conn: Conn, method: str, raw: str, target: Target,
                          addrs: Any, match: NetMatch) -> Verdict:
        conn.hold += 1  # a person may take longer than the idle timeout
        try:
            return await self._ask(NetAsk(
                self.run_id, target.host, target.port, tuple(ip_text(a) for a in addrs),
                method, shown_target(raw), match.reason,
                self.rules.suggestion(target.host, target.port)))
        finally:
            conn.hold -= 1
            conn.last = time.monotonic()

    async def _decided(self, base: dict[str, Any], m: NetMatch, addrs: list[IPAddress],
                       action: str, provenance: dict[str, Any] | None) -> None:
        """Record a decision before it takes effect; if that fails, refuse (fail closed)."""
        texts = [ip_text(a) for a in addrs]
        payload = {**base, "address": texts[0] if texts else None,
                   "addresses": texts, "action": action, "rule": m.rule,
                   "source": m.source, "reason": m.reason, "basis": m.basis,
                   "asked": provenance is not None, "provenance": provenance}
        try:
            await self._record("net.decision", payload)
        except Exception as exc:
            log.error("gate %s: decision not recorded, refusing: %s", self.run_id, exc)
            raise Refusal(503, "Pilothouse gate: the decision could not be recorded, so the "
                                "connection is refused (fail closed). Check the daemon's store.",
                           "deny; rule=unrecorded") from None

    async def _ask(self, question: NetAsk) -> Verdict:
        """Ask once per destination at a time; concurrent connections share the answer. The
        addresses shown are part of it: an answer about one address never dials another."""
        key = (question.host, question.port, question.addresses)
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run_ask(question))
            self._pending[key] = task
            task.add_done_callback(
                lambda t: self._pending.pop(key) if self._pending.get(key) is t else None)
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the gate is closing: deny
                return Verdict(False, {"by": "gate", "reason": "gate closed"})
            raise
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]

    def pending_asks(self) -> dict[tuple[str, int], int]:
        """Destinations with a question open, and how many connections wait on each."""
        out: dict[tuple[str, int], int] = {}
        for (host, port, _addresses), waiting in self._waiting.items():
            out[(host, port)] = out.get((host, port), 0) + waiting
        return out

    async def _run_ask(self, question: NetAsk) -> Verdict:
        if self._ask_fn is None:
            return Verdict(False, {"by": "gate", "reason": "no one to ask"})
        try:
            verdict = await asyncio.wait_for(self._ask_fn(question), self.limits.ask_timeout)
        except TimeoutError:
            return Verdict(False, {"by": "timeout", "after_s": self.limits.ask_timeout})
        except Exception as exc:
            log.warning("gate %s: ask failed, denying: %s", self.run_id, exc)
            return Verdict(False, {"by": "gate", "reason": f"ask failed: {exc}"})
        if not isinstance(verdict, Verdict):
            return Verdict(False, {"by": "gate", "reason": "ask returned no Verdict"})
        return verdict


class TokenBucket:
    """`rate` tokens a second, a burst of `burst` (`rate` unless given); take() says whether
    one was left."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(rate if burst is None else burst)
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
