"""One absolute-form HTTP/1.1 exchange through an already-authorised upstream connection.

The request is rewritten for the origin: origin-form path, Host from the checked target (the
client's Host header is dropped, never trusted), hop-by-hop and Proxy-* headers removed,
framing re-declared. The response comes back the same way, its body relayed as it arrives and
copied to a usage meter when the endpoint is metered.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from console.gate.common import Upstream, host_header
from console.gate.http1 import (
    Head,
    HttpError,
    body_framing,
    filtered_headers,
    parse_status_line,
    read_head,
    relay_chunked,
    relay_exact,
    relay_until_eof,
    render,
)
from console.gate.sockio import SockStream
from console.gate.usage import HeldBytes, Usage, UsageMeter
from console.policy.hosts import Target

__all__ = ["Outcome", "exchange"]

MAX_DROPPED_INTERIM = 32  # 1xx answers read and dropped for one HTTP/1.0 request
# 1xx answers passed to an HTTP/1.1 client before the loop gets a turn. A drain waits only once
# the client's socket is full, and a client that reads as fast as they come never fills it:
# 18-byte `HTTP/1.1 100 x` heads, 14,000 to a read, held the daemon's loop 0.6 s (review h157).
INTERIM_PER_TURN = 16


@dataclass(frozen=True, slots=True)
class Outcome:
    """`keep`: the client connection may carry another request; `upstream_keep`: the upstream
    connection may be reused, for `keep_s` seconds when its server said (Keep-Alive: timeout);
    `usage`: tokens when metered."""

    keep: bool
    upstream_keep: bool
    status: int
    usage: Usage | None
    keep_s: float | None = None


class AnswerCut(Exception):
    """The answer broke off after its head (the client hung up, or upstream did): `usage` holds
    the tokens the meter saw pass through, which the client did receive. Codex, for one, closes
    its stream the moment the final event arrives."""

    def __init__(self, cause: BaseException, status: int, usage: Usage | None) -> None:
        super().__init__(str(cause))
        self.cause, self.status, self.usage = cause, status, usage


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: Head,
                   up: Upstream, target: Target, path: str, framing: str, length: int, *,
                   client_keep: bool, metered: bool, max_header_bytes: int,
                   observer: Any = None, held: HeldBytes | None = None) -> Outcome:
    """Send one request upstream and relay its response; raises HttpError/OSError midway.
    `observer` (a gate.trace.RequestTrace) sees the request body and the answer's bytes."""
    method, version = req.start[0], req.start[2]
    act = up.act
    drop = frozenset({"accept-encoding", "expect"}) if metered else frozenset({"expect"})
    headers = [("Host", host_header(target)), *filtered_headers(req, drop=drop)]
    if metered:
        headers.append(("Accept-Encoding", "identity"))  # so the meter can read the body
    if framing == "length":
        headers.append(("Content-Length", str(length)))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
    # No 1xx to an HTTP/1.0 client (RFC 9110 15.2): it would read one as the answer.
    interim_ok = version != "HTTP/1.0"
    if interim_ok and "100-continue" in req.tokens("expect") and framing != "none":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # answered here, not forwarded
    head = render(f"{method} {path} HTTP/1.1", headers)
    up.writer.write(head)
    act.up += len(head)

    def tap_up(data: bytes) -> None:
        act.last = time.monotonic()
        act.up += len(data)
        if observer is not None:
            observer.request_body(data)

    if framing == "length":
        await relay_exact(reader, up.writer, length, tap_up)
    elif framing == "chunked":
        await relay_chunked(reader, up.writer, tap_up)
    await up.writer.drain()
    dropped = passed = 0
    while True:
        lines = await read_head(up.reader, max_header_bytes)
        if lines is None:
            raise HttpError(502, "upstream closed the connection without a response")
        resp = parse_status_line(lines)
        status = int(resp.start[1])
        if status == 101 or not 100 <= status < 200:
            break
        act.last = time.monotonic()
        if not interim_ok:  # read and dropped; no client's reading paces them, so a bound does
            dropped += 1
            if dropped > MAX_DROPPED_INTERIM:
                raise HttpError(502, f"upstream sent more than {MAX_DROPPED_INTERIM} interim "
                                "(1xx) answers")
            await asyncio.sleep(0)  # other connections' turn, as a drain would give it
            continue
        interim = render(f"HTTP/1.1 {status} {resp.start[2]}", filtered_headers(resp))
        act.down += len(interim)
        writer.write(interim)
        await writer.drain()  # an upstream sending interim answers without end waits for the client
        passed += 1
        if passed % INTERIM_PER_TURN == 0:
            await asyncio.sleep(0)  # and one the client keeps up with waits for the others
    if status == 101:
        raise HttpError(502, "upstream switched protocols; use CONNECT for that")
    rframing, rlength = body_framing(resp, request=False, status=status, method=method)
    decode = rframing == "chunked" and version == "HTTP/1.0"
    keep = client_keep and rframing != "eof"
    keep_s, keep_max = keep_alive_params(resp)
    # A server's `Keep-Alive: max=N` is read both ways servers mean it (N more requests, or N
    # in all, counting this one): the stricter, so a connection it is about to close is not
    # sent a request again (that costs a fresh dial, never a resend).
    upstream_keep = (rframing != "eof" and resp.start[0] == "HTTP/1.1"
                     and "close" not in resp.tokens("connection")
                     and (keep_max is None or up.exchanges + 1 < keep_max))
    out = filtered_headers(resp)
    if rframing == "length":
        out.append(("Content-Length", str(rlength)))
    elif rframing == "chunked" and not decode:
        out.append(("Transfer-Encoding", "chunked"))
    elif rframing == "none" and (declared := bodiless_length(resp, status)) is not None:
        out.append(("Content-Length", declared))
    if not keep:
        out.append(("Connection", "close"))
    rhead = render(f"HTTP/1.1 {status} {resp.start[2]}", out)
    act.down += len(rhead)
    # A sized body already read along with the head goes out in the same send as the head
    # (one wake-up of the client, not two); otherwise the head goes at once, as before.
    prefix = b""
    if rframing == "length" and isinstance(up.reader, SockStream) and up.reader.buf:
        prefix = rhead
    else:
        writer.write(rhead)
    meter = None
    if metered and (resp.get("content-encoding") or "identity").lower() == "identity":
        meter = UsageMeter(resp.get("content-type") or "",
                           chunked=rframing == "chunked" and not decode, pool=held)

    def tap_down(data: bytes) -> None:
        act.last = time.monotonic()
        act.down += len(data)
        if meter is not None:
            meter.feed(data)
        if observer is not None:
            observer.response_body(data)

    try:
        if rframing == "length":
            await relay_exact(up.reader, writer, rlength, tap_down, prefix=prefix)
        elif rframing == "chunked":
            await relay_chunked(up.reader, writer, tap_down, decode=decode)
        elif rframing == "eof":
            await relay_until_eof(up.reader, writer, tap_down)
        await writer.drain()
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        raise AnswerCut(exc, status, meter.finish() if meter is not None else None) from exc
    finally:
        if meter is not None:  # ended, cut or cancelled: the run's bound gets it back
            meter.release()
    return Outcome(keep, upstream_keep, status, meter.finish() if meter is not None else None,
                   keep_s)


def bodiless_length(resp: Head, status: int) -> str | None:
    """The Content-Length a bodiless answer (to HEAD, a 204 or a 304) may pass on: one plain
    number, never on a 204 (RFC 9110 8.6). Its body is never read, so body_framing never
    checked it: copied as written, conflicting values or junk framed the client's next answer
    on the same connection differently than the gate did (review h143)."""
    values = {v.strip() for v in resp.get_all("content-length")}
    if status == 204 or len(values) != 1:
        return None
    value = values.pop()
    return value if re.fullmatch(r"[0-9]{1,18}", value) else None


def keep_alive_params(resp: Head) -> tuple[float | None, int | None]:
    """(the seconds a server says it keeps an idle connection, the requests it says it takes
    on it): `Keep-Alive: timeout=5, max=100`; None where it says nothing readable."""
    timeout = most = None
    for token in resp.tokens("keep-alive"):
        name, _, value = token.partition("=")
        name, value = name.strip(), value.strip()
        if value.isdigit() and len(value) <= 9:  # said twice: the shorter
            if name == "timeout":
                timeout = min(float(value), timeout if timeout is not None else float(value))
            elif name == "max":
                most = min(int(value), most if most is not None else int(value))
    return timeout, most
