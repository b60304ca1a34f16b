"""The gate: one HTTP forward proxy per run, the sandbox's only way out.

Two request shapes are served: CONNECT host:port (a byte tunnel, used for TLS) and
absolute-form HTTP/1.1 (`GET http://host/path`, plain HTTP with keep-alive). Each destination
is decided on the request target alone, never on a Host header or anything inside the tunnel:

    parse + normalise  ->  host rules (a denied name is never even looked up)
    resolve once       ->  rules again with the addresses  ->  ask a person if they say "ask"
    record the decision (fail closed)  ->  dial exactly the checked addresses, nothing else

Inside a CONNECT tunnel the TLS ClientHello is read before it is forwarded; an SNI naming
another host closes the tunnel. Requests to configured inference endpoints are metered (usage.py)
as their responses pass. The class serves any StreamReader/StreamWriter pair, so the daemon's
unix socket and the in-sandbox bridge both hand connections to `handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from console.bounds import FdBudget
from console.gate.common import (
    REASONS,
    Asker,
    Conn,
    Dialer,
    GateLimits,
    NetAsk,
    Recorder,
    Refusal,
    Resolver,
    Upstream,
    Verdict,
    denial,
    dial_address,
    system_resolver,
)
from console.gate.forward import exchange
from console.gate.hosts import (
    BadTarget,
    IPAddress,
    Target,
    normalise_host,
    parse_absolute_url,
    parse_connect_target,
)
from console.gate.http1 import Head, HttpError, body_framing, parse_request_line, read_head, render
from console.gate.rules import NetMatch, NetworkRules
from console.gate.splice import pump, splice
from console.gate.tls import MAX_HELLO_BYTES, parse_client_hello

__all__ = ["Gate", "GateLimits", "NetAsk", "Verdict", "dial_address", "system_resolver"]

log = logging.getLogger(__name__)
HEAD_READ_LIMIT = 16 * 1024  # the client reader's buffer bound; heads are limited separately


class _SniMismatch(Exception):
    """The ClientHello names another host than the CONNECT target."""


class Gate:
    """The egress proxy of one run. See the module docstring for the decision path.

    `rules` may be replaced on a live gate (config reload); each request reads it once.
    `meter` lists (host, port) inference endpoints whose responses are metered for tokens.
    `dial` exists so tests can route a checked address to a local server; it receives exactly
    the address that was checked.
    """

    def __init__(
        self,
        run_id: str,
        rules: NetworkRules,
        *,
        ask: Asker | None,
        record: Recorder,
        resolver: Resolver = system_resolver,
        limits: GateLimits = GateLimits(),  # noqa: B008 - frozen, shared safely
        meter: Iterable[tuple[str, int]] = (),
        profile: str | None = None,
        dial: Dialer = dial_address,
        on_refused: Callable[[], None] | None = None,
        budget: FdBudget | None = None,
    ) -> None:
        self.run_id = run_id
        self.rules = rules
        self.limits = limits
        self.profile = profile or "NAME"
        self._ask_fn = ask
        self._record_fn = record
        self._resolve = resolver
        self._dial = dial
        self.meter = {(self._meter_host(h), int(p)) for h, p in meter}
        self._pending: dict[tuple[str, int], asyncio.Task[Verdict]] = {}
        self._waiting: dict[tuple[str, int], int] = {}
        self._servers: list[asyncio.Server] = []
        self._conns: set[Conn] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.tunnels = 0
        self._closing = False
        self._on_refused = on_refused
        self._budget = budget
        self._lookups = TokenBucket(limits.lookups_per_second)

    @staticmethod
    def _meter_host(host: str) -> str:
        try:
            return ipaddress.ip_address(host.strip("[]")).compressed
        except ValueError:
            return normalise_host(host)

    # -- lifecycle ----------------------------------------------------------------------------

    async def serve_unix(self, path: str) -> asyncio.Server:
        """Listen on the run's gate.sock (the caller owns the folder and its permissions)."""
        server = await asyncio.start_unix_server(
            self.handle, path=path, limit=max(HEAD_READ_LIMIT, self.limits.max_header_bytes))
        self._servers.append(server)
        return server

    async def close(self) -> None:
        """Stop listening, deny pending asks, and end every connection."""
        self._closing = True
        for server in self._servers:
            server.close()
        for task in list(self._pending.values()):
            task.cancel()
        conns = list(self._conns)
        for conn in conns:
            conn.drop()
        tasks = {c.task for c in conns if c.task is not None and c.task is not
                 asyncio.current_task()}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:  # e.g. a record callback that never returns
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection until it closes or goes idle. Past max_connections
        (or the daemon's fd budget: a connection may hold two, client and upstream) it is
        answered 503 and closed at once."""
        budget = self._budget
        if len(self._conns) >= self.limits.max_connections or (
                budget is not None and not budget.take(2)):
            if self._on_refused is not None:
                self._on_refused()
            await self._respond(writer, Refusal(503, (
                f"Pilothouse gate: this run has as many connections open as it may "
                f"({self.limits.max_connections}); close some and retry.")))
            writer.close()
            return
        try:
            await self._handle(reader, writer)
        finally:
            if budget is not None:
                budget.give(2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(asyncio.current_task(), writer)
        self._conns.add(conn)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())
        try:
            await self._serve(reader, writer, conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            conn.how = "error"
        except asyncio.CancelledError:
            if not self._closing:
                raise  # someone else's cancellation (a timeout, a task group): honour it
        except Exception:  # a bug must end one connection, never the gate
            conn.how = "error"
            log.exception("gate %s: connection failed", self.run_id)
        finally:
            self._conns.discard(conn)
            if conn.upstream is not None:
                await self._finish(conn.upstream, "idle" if conn.idle else conn.how)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _sweep(self) -> None:
        """Drop connections on which nothing moved for idle_timeout (checked a few times per
        timeout, at most once a second)."""
        idle = self.limits.idle_timeout
        while self._conns:
            await asyncio.sleep(min(1.0, idle / 4))
            now = time.monotonic()
            for conn in list(self._conns):
                last = conn.last
                if conn.upstream is not None and conn.upstream.act.last > last:
                    last = conn.upstream.act.last
                if not conn.hold and not conn.idle and now - last >= idle:
                    conn.idle = True
                    conn.drop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     conn: Conn) -> None:
        first = True
        while True:
            try:
                # The whole head within head_timeout: a trickled head holds a buffer.
                async with asyncio.timeout(self.limits.head_timeout):
                    lines = await read_head(reader, self.limits.max_header_bytes)
                if lines is None:
                    return
                req = parse_request_line(lines)
            except TimeoutError:
                if first:  # an idle keep-alive connection just ends; a first head is answered
                    await self._reject(writer, 408, f"request head not sent within "
                                       f"{self.limits.head_timeout:g}s", "", "")
                return
            except HttpError as exc:
                await self._reject(writer, exc.status, exc.message, "", "")
                return
            first = False
            conn.last = time.monotonic()
            if req.start[0] == "CONNECT":
                if conn.upstream is not None:
                    await self._finish(conn.upstream, "closed")
                    conn.upstream = None
                await self._connect(reader, writer, req, conn)
                return
            if not await self._http(reader, writer, req, conn):
                return

    # -- records ------------------------------------------------------------------------------

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        result = self._record_fn(kind, {"run_id": self.run_id, **payload})
        if inspect.isawaitable(result):
            await result

    async def _record_quietly(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            await self._record(kind, payload)
        except Exception:
            log.exception("gate %s: could not record %s", self.run_id, kind)

    # -- answers ------------------------------------------------------------------------------

    async def _respond(self, writer: asyncio.StreamWriter, r: Refusal) -> None:
        body = (r.body.rstrip("\n") + "\n").encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Length", str(len(body))), ("Connection", "close")]
        if r.decision:
            headers.append(("X-Pilothouse-Decision", r.decision))
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(render(f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Error')}",
                                headers) + body)
            await writer.drain()

    async def _reject(self, writer: asyncio.StreamWriter, status: int, reason: str,
                      method: str, target: str) -> None:
        """A malformed request: answered, recorded, never dialled."""
        await self._record_quietly("net.rejected", {"method": method, "target": target[:2048],
                                                    "status": status, "reason": reason})
        await self._respond(writer, Refusal(status, f"Pilothouse gate: bad request: {reason}"))

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
        base = {"host": target.host, "port": target.port, "method": method,
                "target": raw[:2048]}
        if target.ip is not None:
            return await self._by_address(method, raw, target, conn, base, [target.ip], None)
        pre = rules.decide(target.host, target.port, None)
        if pre.action == "deny":  # denied by name: never resolved, never leaks to DNS
            await self._decided(base, pre, [], "deny", None)
            raise self._refuse(method, target, pre, None)
        yes: dict[str, Any] | None = None
        local = _loopback_name(target.host)
        if pre.action == "ask" and local is None and not self._address_may_allow(target.port):
            verdict = await self._ask_person(conn, method, raw, target, (), pre)
            if not verdict.allow:
                await self._decided(base, pre, [], "deny", verdict.provenance)
                raise self._refuse(method, target, pre, verdict.provenance)
            yes = verdict.provenance
        addrs = local if local is not None else await self._lookup(target)
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
        match = self.rules.decide(target.host, target.port, addrs)
        action, provenance = match.action, None
        if yes is not None:
            action, provenance = ("deny", {**yes, "overruled": match.reason}) \
                if match.action == "deny" else ("allow", yes)
        elif action == "ask":
            verdict = await self._ask_person(conn, method, raw, target, addrs, match)
            action, provenance = ("allow" if verdict.allow else "deny"), verdict.provenance
        await self._decided(base, match, addrs, action, provenance)
        if action != "allow":
            raise self._refuse(method, target, match,
                               None if yes is not None else provenance)
        return addrs

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
                self.run_id, target.host, target.port, tuple(str(a) for a in addrs),
                method, raw[:2048], match.reason, self.rules.suggestion(target.host, target.port)))
        finally:
            conn.hold -= 1
            conn.last = time.monotonic()

    async def _decided(self, base: dict[str, Any], m: NetMatch, addrs: list[IPAddress],
                       action: str, provenance: dict[str, Any] | None) -> None:
        """Record a decision before it takes effect; if that fails, refuse (fail closed)."""
        payload = {**base, "address": str(addrs[0]) if addrs else None,
                   "addresses": [str(a) for a in addrs], "action": action, "rule": m.rule,
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
        """Ask once per (host, port) at a time; concurrent connections share the answer."""
        key = (question.host, question.port)
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
        return dict(self._waiting)

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

    # -- upstream connections -----------------------------------------------------------------

    async def _open(self, addrs: list[IPAddress], target: Target) -> Upstream:
        if self.tunnels >= self.limits.max_tunnels:
            raise Refusal(503, f"Pilothouse gate: this run already has {self.tunnels} open "
                                f"connections (limit {self.limits.max_tunnels}); close some.")
        self.tunnels += 1
        errors = []
        for ip in addrs:
            try:
                reader, writer = await self._dial(ip, target.port, self.limits.connect_timeout)
            except (OSError, TimeoutError) as exc:
                errors.append(f"{ip}: {exc or type(exc).__name__}")
                continue
            return Upstream(target, ip, reader, writer)
        self.tunnels -= 1
        await self._record_quietly("net.error", {"host": target.host, "port": target.port,
                                                 "stage": "dial", "error": "; ".join(errors)})
        raise Refusal(502, f"Pilothouse gate: could not connect to {target.authority} "
                            f"({'; '.join(errors)}).")

    async def _finish(self, up: Upstream, how: str) -> None:
        self.tunnels -= 1
        up.writer.close()
        with contextlib.suppress(Exception):
            await up.writer.wait_closed()
        await self._record_quietly("net.closed", {
            "host": up.target.host, "port": up.target.port, "address": str(up.address),
            "bytes_up": up.act.up, "bytes_down": up.act.down, "how": how,
            "duration_s": round(time.monotonic() - up.started, 6)})

    # -- CONNECT ------------------------------------------------------------------------------

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       req: Head, conn: Conn) -> None:
        raw = req.start[1]
        try:
            target = parse_connect_target(raw)
        except BadTarget as exc:
            await self._reject(writer, 400, exc.reason, "CONNECT", raw)
            return
        try:
            addrs = await self._authorise("CONNECT", raw, target, conn)
            conn.upstream = up = await self._open(addrs, target)
        except Refusal as r:
            await self._respond(writer, r)
            return
        conn.how = "error"  # until the splice says otherwise; handle() closes the upstream
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        conn.how = await splice(self._client_to_upstream(reader, up, target),
                                pump(up.reader, writer, up.act, up=False))

    async def _client_to_upstream(self, reader: asyncio.StreamReader, up: Upstream,
                                  target: Target) -> None:
        """Hold the client's first bytes until the ClientHello is whole, check its SNI, then
        forward everything. Non-TLS tunnels pass untouched (server-first protocols too: the
        other direction is already running)."""
        buf = b""
        while True:
            data = await reader.read(MAX_HELLO_BYTES)
            up.act.last = time.monotonic()
            buf += data
            hello = parse_client_hello(buf)
            if hello.status != "need_more" or not data:
                break
        if hello.status == "malformed" or (hello.status == "ok" and hello.sni is not None
                                           and not self._sni_matches(hello.sni, target)):
            await self._record_quietly("net.sni_mismatch", {
                "host": target.host, "port": target.port, "sni": (hello.sni or "")[:255],
                "detail": hello.detail or "the TLS server name differs from the CONNECT target"})
            raise _SniMismatch(hello.sni)
        if buf:
            up.act.up += len(buf)
            up.writer.write(buf)
            await up.writer.drain()
        if data:
            await pump(reader, up.writer, up.act, up=True)
        elif up.writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                up.writer.write_eof()

    @staticmethod
    def _sni_matches(sni: str, target: Target) -> bool:
        try:
            return normalise_host(sni) == target.host
        except BadTarget:
            return False

    # -- absolute-form HTTP -------------------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    req: Head, conn: Conn) -> bool:
        """Forward one request; True when the client connection may carry another."""
        method, raw, version = req.start
        if not raw.lower().startswith("http://"):
            reason = ("origin-form request: this is a proxy, send the absolute URL "
                      "(http://host/path); for https use CONNECT (set HTTPS_PROXY)"
                      if raw.startswith("/") or raw == "*" else
                      "only http:// URLs are proxied; use CONNECT for TLS")
            await self._reject(writer, 400, reason, method, raw)
            return False
        try:
            target, path = parse_absolute_url(raw)
            framing, length = body_framing(req, request=True)
            if framing == "chunked" and version == "HTTP/1.0":
                raise HttpError(400, "chunked body in an HTTP/1.0 request")
        except (BadTarget, HttpError) as exc:
            await self._reject(writer, getattr(exc, "status", 400), str(exc), method, raw)
            return False
        try:
            addrs = await self._authorise(method, raw, target, conn)
            up = conn.upstream
            if up is not None and (up.target != target or up.address not in addrs
                                   or up.reader.at_eof()):
                await self._finish(up, "closed")
                conn.upstream = up = None
            if up is None:
                conn.upstream = up = await self._open(addrs, target)
        except Refusal as r:
            await self._respond(writer, r)
            return False
        client_keep = version == "HTTP/1.1" and "close" not in req.tokens("connection")
        up.act.last = time.monotonic()
        down_before = up.act.down
        try:
            outcome = await exchange(
                reader, writer, req, up, target, path, framing, length, client_keep=client_keep,
                metered=(target.host, target.port) in self.meter,
                max_header_bytes=self.limits.max_header_bytes)
        except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
            conn.upstream = None
            await self._finish(up, "error")
            status = exc.status if isinstance(exc, HttpError) else 502
            if up.act.down == down_before:  # nothing of this response reached the client
                await self._respond(writer, Refusal(status, f"Pilothouse gate: {exc}"))
            return False
        if outcome.usage is not None:
            u = outcome.usage
            await self._record_quietly("tokens", {
                "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens, "model": u.model,
                "endpoint": f"{target.authority}{path.split('?')[0]}",
                "host": target.host, "port": target.port, "status": outcome.status})
        conn.last = time.monotonic()
        if not outcome.upstream_keep:
            conn.upstream = None
            await self._finish(up, "closed")
        return outcome.keep


_LOOPBACK = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def _loopback_name(host: str) -> list[IPAddress] | None:
    """`localhost` and names under it are loopback by definition (RFC 6761 6.3): answered
    here, never sent to a resolver."""
    return list(_LOOPBACK) if host == "localhost" or host.endswith(".localhost") else None


class TokenBucket:
    """`rate` tokens a second, a burst of `rate`; take() says whether one was left."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
