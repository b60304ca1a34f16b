"""The gate: one HTTP forward proxy per run, the sandbox's only way out.

Two request shapes are served: CONNECT host:port (a byte tunnel, used for TLS) and
absolute-form HTTP/1.1 (`GET http://host/path`, plain HTTP with keep-alive). Each destination
is decided on the request target alone, never on a Host header or anything inside the tunnel:

    parse + normalise  ->  host rules (a denied name is never even looked up)
    "ask": a person sees the name first; resolved only after a yes (deciding.py says when an
    IP allow rule makes it resolve first)  ->  rules again with the addresses
    record the decision (fail closed)  ->  dial exactly the checked addresses, nothing else

Per run, bounded (GateLimits, from the config's [limits]): client connections open at once,
a request head's size and the time to send it, upstream connections, lookups per second.

Inside a CONNECT tunnel the TLS ClientHello is read before it is forwarded; an SNI naming
another host closes the tunnel. Requests to configured inference endpoints are metered (usage.py)
as their responses pass. The class serves any StreamReader/StreamWriter pair, so the daemon's
unix socket and the in-sandbox bridge both hand connections to `handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from console.config.bounds import FdBudget
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
    Stands,
    TurnAway,
    Upstream,
    Verdict,
    Veto,
    dial_address,
    lookups_in_threads,
    meter_host,
    read_absolute,
    read_connect,
    shown_target,
    system_resolver,
)
from console.gate.deciding import TokenBucket
from console.gate.forward import AnswerCut, exchange
from console.gate.http1 import Head, HttpError, body_framing, parse_request_line, read_head, render
from console.gate.readiness import Readiness
from console.gate.sockio import Listener, SockStream, held_now
from console.gate.splice import CAN_SPLICE, SplicedTunnel, pump, splice
from console.gate.tls import MAX_HELLO_BYTES, HelloCheck, SniMismatch
from console.gate.upstreams import REPLAYABLE, Dialling, end_within_grace
from console.gate.usage import HeldBytes
from console.policy.hosts import REASON_SHOWN, BadTarget, Target
from console.policy.netrules import NetworkRules
from console.text import clipped

__all__ = ["Gate", "GateLimits", "NetAsk", "Verdict", "dial_address", "system_resolver"]

log = logging.getLogger(__name__)
HEAD_READ_LIMIT = 16 * 1024  # the client reader's buffer bound; heads are limited separately
REQUESTS_PER_TURN = 8  # requests served on one connection before the loop gets a turn
SWEEP_MOST_S = 1.0  # the longest between looks at the open connections (idle, grants)


class Gate(Dialling):
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
        resolver: Resolver | None = None,  # None: the system's, in threads of its own
        limits: GateLimits = GateLimits(),  # noqa: B008 - frozen, shared safely
        meter: Iterable[tuple[str, int]] = (),
        profile: str | None = None,
        dial: Dialer = dial_address,
        trace: Any = None,  # a gate.trace.TraceRecorder: per-request records of metered calls
        on_refused: Callable[[], None] | None = None,
        budget: FdBudget | None = None,
        veto: Veto | None = None,  # the daemon's deny grants, asked with the addresses
        stands: Stands | None = None,  # whether an open connection's yes still stands
    ) -> None:
        self.run_id, self.rules, self.limits, self.profile = run_id, rules, limits, profile or "NAME"
        self._ask_fn, self._record_fn, self._veto, self._stands = ask, record, veto, stands
        self._resolve, self._lookup_threads = lookups_in_threads(resolver, limits)
        self._dial = dial
        self.meter = {(meter_host(h), int(p)) for h, p in meter}
        self.trace = trace
        self._pending: dict[tuple[str, int], asyncio.Task[Verdict]] = {}
        self._waiting: dict[tuple[str, int], int] = {}
        self._servers: list[asyncio.Server | Listener] = []
        self._conns: set[Conn] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.tunnels = 0
        self._parked, self._ending = {}, set()
        self._closing = False
        self._turn_away = TurnAway()
        self._on_refused = on_refused
        self._budget = budget
        self._lookups = TokenBucket(limits.lookups_per_second)
        self._meters_held = HeldBytes()  # what its metered answers keep (usage.py)
        self._decisions = {}
        self._decided_by = None
        self._readiness: Readiness | None = None  # made with the first spliced tunnel

    # -- lifecycle ----------------------------------------------------------------------------

    async def serve_unix(self, path: str) -> Listener:
        """Listen on the run's gate.sock (the caller owns the folder and its permissions)."""
        server = Listener.unix(path, self.handle, self._head_limit())
        self._servers.append(server)
        return server

    async def serve_socket(self, sock: socket.socket) -> Listener:
        """Accept on an already listening socket (the sandbox bridge's)."""
        server = Listener(sock, self.handle, self._head_limit())
        self._servers.append(server)
        return server

    def _head_limit(self) -> int:
        return max(HEAD_READ_LIMIT, self.limits.max_header_bytes)

    async def close(self) -> None:
        """Stop listening, deny pending asks, and end every connection."""
        self._closing = True
        self._drop_parked()
        for server in self._servers:
            server.close()
        await self._turn_away.close()  # refused connections still waiting are answered now
        for task in list(self._pending.values()):
            task.cancel()
        conns = list(self._conns)
        for conn in conns:
            conn.drop()
        tasks = {c.task for c in conns if c.task not in (None, asyncio.current_task())}
        await end_within_grace(tasks)  # a record callback may never return
        await self._end_parked()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        if self._readiness is not None:
            self._readiness.close()
            self._readiness = None
        if self._lookup_threads is not None:  # a thread still waiting on a server ends with it
            self._lookup_threads.shutdown(wait=False, cancel_futures=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection until it closes or goes idle. Past max_connections
        (or the daemon's fd budget: a connection may hold two, client and upstream) it is
        answered 503 and closed at once."""
        budget = self._budget
        if len(self._conns) >= self.limits.max_connections or (
                budget is not None and not budget.take(2)):
            if self._on_refused is not None:
                self._on_refused()
            await self._turn_away.wait_for_request(reader, budget)
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
                await self._let_go(conn.upstream, conn.ended_how())
            writer.close()
            try:  # not contextlib.suppress: three Python calls a connection on the hot path
                await writer.wait_closed()
            except Exception:
                pass

    async def _sweep(self) -> None:
        """Drop connections on which nothing moved for idle_timeout (checked a few times per
        timeout, at most once a second)."""
        idle = self.limits.idle_timeout
        while self._conns:
            await asyncio.sleep(min(SWEEP_MOST_S, idle / 4))
            self.recheck_asked()  # a grant revoked or run out, a deny grant made
            now = time.monotonic()
            for conn in list(self._conns):
                up = conn.upstream
                last = max(conn.last, up.act.last) if up is not None else conn.last
                if not conn.hold and not conn.idle and now - last >= idle:
                    conn.idle = True
                    conn.drop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     conn: Conn) -> None:
        first, served = True, 0
        while True:
            served += 1
            if served % REQUESTS_PER_TURN == 0:  # pipelined requests answered ahead of time
                await asyncio.sleep(0)  # must not hold every other connection's turn
            try:
                # The whole head within head_timeout: a trickled head holds a buffer. A head
                # already here whole cannot make read_head wait, so it needs no timer.
                if isinstance(reader, SockStream) and reader.head_ready():
                    lines = await read_head(reader, self.limits.max_header_bytes)
                else:
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
        """A malformed request: answered, recorded (what the sandbox wrote cut short: it
        chooses the length, review s33), never dialled."""
        await self._record_quietly("net.rejected", {
            "method": method, "target": clipped(target, REASON_SHOWN), "status": status,
            "reason": clipped(reason, REASON_SHOWN)})
        await self._respond(writer, Refusal(status, f"Pilothouse gate: bad request: {reason}"))

    # -- CONNECT ------------------------------------------------------------------------------

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       req: Head, conn: Conn) -> None:
        raw = req.start[1]
        try:
            target = read_connect(raw)
        except BadTarget as exc:
            await self._reject(writer, 400, exc.reason, "CONNECT", raw)
            return
        try:
            addrs = await self._authorise("CONNECT", raw, target, conn)
            conn.upstream = up = await self._open(addrs, target, conn.allowed_by)
        except Refusal as r:
            await self._respond(writer, r)
            return
        conn.how = "error"  # until the splice says otherwise; handle() closes the upstream
        early = b"" if isinstance(reader, SockStream) else held_now(reader, MAX_HELLO_BYTES)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        # A client gone at once (its hello sent behind the head) still has those bytes checked
        # by the tunnel, and a foreign hello recorded: not passed over as the 200 failed.
        try:
            await writer.drain()
        except ConnectionError:
            pass
        if CAN_SPLICE and isinstance(reader, SockStream) and isinstance(up.reader, SockStream):
            conn.how = await self._spliced(reader, up, target)
            return
        # A refusal is recorded after both directions end: recorded inside one, it would be
        # cancelled if the other failed meanwhile.
        check = HelloCheck.naming(target.host)
        answered = asyncio.Event()
        check.on_server = answered.set
        conn.how = await splice(self._client_to_upstream(reader, up, check, answered, early),
                                pump(up.reader, writer, up.act, up=False, hello=check))
        if check.refused:
            await self._record_hello_refused(check, target)

    async def _spliced(self, client: SockStream, up: Upstream, target: Target) -> str:
        """The tunnel between two of the gate's own sockets: both directions run as loop
        callbacks, no tasks (splice.SplicedTunnel: recv/send for short exchanges, splice(2) for
        bulk). The answer direction runs from the start (server-first protocols); the client's
        direction holds its first bytes until the hello check passes them (tls.HelloCheck),
        starting with what came in behind the CONNECT head. If either fails, the tunnel shuts
        both sockets."""
        upstream = up.reader
        assert isinstance(upstream, SockStream)
        if self._readiness is None:
            self._readiness = Readiness()
        tunnel = SplicedTunnel(client.sock, upstream.sock, up.act, self._readiness, self._budget)
        check = HelloCheck.naming(target.host)
        check.on_server = lambda: tunnel.server_answered(check)
        try:
            tunnel.start_down(watch=check)
            tunnel.start_up(check, client.take_buffered())
            how = await tunnel.result  # tunnel.wait(), one coroutine less
            if tunnel.refused is not None:
                await self._record_hello_refused(tunnel.refused, target)
                return "error"
            return how
        finally:
            # A sender whose EOF a direction read leaves nothing to discard.
            client.eof, upstream.eof = (client.eof or tunnel.read_eof(up=True),
                                        upstream.eof or tunnel.read_eof(up=False))
            tunnel.stop()
            check.on_server = None  # it and its callback refer to each other (stop says why)

    async def _client_to_upstream(self, reader: asyncio.StreamReader, up: Upstream,
                                  check: HelloCheck, answered: asyncio.Event,
                                  early: bytes) -> None:
        if await self._forward_hello(reader, up, check, early):
            if check.holds_client:  # its next bytes wait for the server's first answer
                await answered.wait()
            if not await pump(reader, up.writer, up.act, up=True, hello=check):
                raise SniMismatch(check.hello.sni if check.hello else None)  # a second hello
        elif up.writer.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                up.writer.write_eof()

    async def _forward_hello(self, reader: Any, up: Upstream, check: HelloCheck,
                             early: bytes) -> bool:
        """Hold the client's first bytes (`early`: those taken before the 200) until the hello
        check decides (tls.HelloCheck), and forward them; True while the client has more to
        send. A refusal raises."""
        while True:
            data, early = early or await reader.read(MAX_HELLO_BYTES), b""
            up.act.last = time.monotonic()
            if check.feed(data):
                break
        if check.refused:
            raise SniMismatch(check.hello.sni if check.hello else None)
        if check.buf:
            up.writer.write(bytes(check.buf))
            await up.writer.drain()
            up.act.up += len(check.buf)
        return bool(data)

    async def _record_hello_refused(self, check: HelloCheck, target: Target) -> None:
        hello = check.hello
        assert hello is not None
        await self._record_quietly("net.sni_mismatch", {
            "host": target.host, "port": target.port, "sni": (hello.sni or "")[:255],
            "detail": hello.detail or "the TLS server name differs from the CONNECT target"})

    # -- absolute-form HTTP -------------------------------------------------------------------

    async def _record_usage(self, u: Any, status: int, target: Target, path: str,
                            started: float, rec: Any) -> None:  # fmt: skip
        await self._record_quietly("tokens", {
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens, "model": u.model,
            "endpoint": shown_target(f"{target.authority}{path.split('?')[0]}"),  # review h157
            "host": target.host, "port": target.port, "status": status,
            "started": started, "request_id": rec.request_id if rec else None})

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
            target, path = read_absolute(raw)
            framing, length = body_framing(req, request=True)
            if framing == "chunked" and version == "HTTP/1.0":
                raise HttpError(400, "chunked body in an HTTP/1.0 request")
        except (BadTarget, HttpError) as exc:
            await self._reject(writer, getattr(exc, "status", 400), str(exc), method, raw)
            return False
        try:
            addrs = await self._authorise(method, raw, target, conn)
            up = await self._carrier(conn, target, addrs)
        except Refusal as r:
            await self._respond(writer, r)
            return False
        client_keep = version == "HTTP/1.1" and "close" not in req.tokens("connection")
        up.act.last = time.monotonic()
        down_before = up.act.down
        metered, started = (target.host, target.port) in self.meter, time.time()
        rec = self.trace.begin(self.run_id, method, shown_target(  # the sandbox's length: cut
            f"{target.authority}{path.split('?')[0]}")) if metered and self.trace is not None \
            else None
        # A connection that served before may have been closed by its server as this request
        # went: a request that may be repeated is sent once more on a fresh one, when not one
        # byte came back.
        again = (up.exchanges > 0 and method in REPLAYABLE and framing == "none"
                 and isinstance(up.reader, SockStream))
        heard = up.reader.received if again else 0
        up.reusable = False  # until this exchange completes and the server says it keeps it
        try:
            while True:
                try:
                    outcome = await exchange(
                        reader, writer, req, up, target, path, framing, length,
                        client_keep=client_keep, metered=metered,
                        max_header_bytes=self.limits.max_header_bytes, observer=rec,
                        held=self._meters_held)
                    break
                except (HttpError, OSError, asyncio.IncompleteReadError):
                    if not again or up.reader.received != heard:
                        raise
                again, conn.upstream = False, None
                await self._finish(up, "closed")
                conn.upstream = up = await self._open(addrs, target, conn.allowed_by)
                down_before = up.act.down
        except Refusal as r:  # no fresh connection for the repeat
            if rec is not None:
                rec.finish(None, None)
            await self._respond(writer, r)
            return False
        except (AnswerCut, HttpError, OSError, asyncio.IncompleteReadError) as exc:
            usage = exc.usage if isinstance(exc, AnswerCut) else None
            if usage is not None:  # the client got these tokens before the answer broke off
                await self._record_usage(usage, exc.status, target, path, started, rec)
            if rec is not None:
                rec.finish(usage, exc.status if isinstance(exc, AnswerCut) else None)
            exc = exc.cause if isinstance(exc, AnswerCut) else exc
            conn.upstream = None
            await self._finish(up, "error")
            status = exc.status if isinstance(exc, HttpError) else 502
            if up.act.down == down_before:  # nothing of this response reached the client
                await self._respond(writer, Refusal(status, f"Pilothouse gate: {exc}"))
            return False
        except BaseException:
            if rec is not None:
                rec.finish(None, None)  # cancelled (the gate closing): the request is over
            raise
        if outcome.usage is not None:
            await self._record_usage(outcome.usage, outcome.status, target, path, started, rec)
        if rec is not None:
            rec.finish(outcome.usage, outcome.status)
        conn.last = time.monotonic()
        up.exchanges += 1
        up.reusable, up.keep_s = outcome.upstream_keep, outcome.keep_s
        if not outcome.upstream_keep:
            conn.upstream = None
            await self._finish(up, "closed")
        return outcome.keep
