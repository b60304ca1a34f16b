"""HTTP/1.1 message framing for the gate: strict heads, bounded reads, exact body relays.

The gate sits between a hostile client and servers it does not control, so it parses heads
strictly (no obs-fold, no space before the colon, no conflicting Content-Length, no
Transfer-Encoding other than a lone `chunked`) and re-serialises everything it forwards: what
the next hop sees is canonical, whatever the sender wrote. Bodies are relayed as they arrive
(never buffered whole) and read exactly to their framed end, so a pipelined next request is
never swallowed.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "HttpError",
    "Head",
    "read_head",
    "parse_request_line",
    "parse_status_line",
    "body_framing",
    "relay_exact",
    "relay_chunked",
    "relay_until_eof",
    "filtered_headers",
    "render",
    "EMPTY_LINES_MOST",
]

METHOD_MOST = 32  # WebDAV's longest is 17
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_HEADER_LINES = 256
# Empty lines skipped before a head (RFC 9112 2.2 asks for at least one; clients that send one
# send one). Skipped without bound, a connection sending nothing but newlines had the gate
# read its whole head allowance a line at a time without a turn of the loop: 200 KiB of
# them on each of 100 connections held the daemon's loop, every run's gate, 5.5 s (review h157).
EMPTY_LINES_MOST = 8
# RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ), and RFC 9110 5.5 a field
# value is the same: any other control is refused (a \x0b or ESC was passed on as written:
# review h176; no parser is known to end a line at one, none need read one either).
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CHUNK_LINE_MAX = 4096
_PIECE = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) plus framing and Host, which the gate writes itself.
_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length", "host",
})

Tap = Callable[[bytes], None] | None


class HttpError(Exception):
    """A message the gate refuses; `status` is what the client is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Head:
    """A parsed request or response head. Names keep their case for forwarding."""

    start: tuple[str, str, str]  # (method, target, version) or (version, status, reason)
    headers: list[tuple[str, str]]

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[-1] if values else None

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every `name` header, lower case."""
        return {t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()}


async def read_head(reader: asyncio.StreamReader, max_bytes: int) -> list[bytes] | None:
    """Lines of one message head without their endings; None on EOF before any byte.

    Raises HttpError 431 past `max_bytes` (or a line past the reader's own limit) and 400 on
    EOF inside a head. Leading empty lines are skipped, as RFC 9112 2.2 allows, up to
    EMPTY_LINES_MOST of them (400 past that).
    """
    lines: list[bytes] = []
    total = empty = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if not lines and not exc.partial.strip():
                return None
            raise HttpError(400, "connection closed inside a message head") from None
        except asyncio.LimitOverrunError:
            raise HttpError(431, "a header line is too long") from None
        total += len(line)
        if total > max_bytes:
            raise HttpError(431, f"message head larger than {max_bytes} bytes")
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if not line:
            if lines:
                return lines
            empty += 1
            if empty > EMPTY_LINES_MOST:
                raise HttpError(400, f"more than {EMPTY_LINES_MOST} empty lines before a "
                                "message head")
            continue
        lines.append(line)
        if len(lines) > _MAX_HEADER_LINES:
            raise HttpError(431, f"more than {_MAX_HEADER_LINES} header lines")


def _headers(lines: list[bytes] | tuple[bytes, ...]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise HttpError(400, "obsolete line folding in headers")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, f"malformed header line {line[:40]!r}")
        value = value.strip(b" \t")
        if _CTL.search(value):
            raise HttpError(400, f"control character in header {name.decode()!r}")
        out.append((name.decode("ascii"), value.decode("latin-1")))
    return out


# Request heads repeat (an agent's client sends the same CONNECT head for the same host all
# day) and parsing one is pure, so short heads' parses are remembered (a refused head raises
# and is not); each caller gets its own Head, the headers list copied.
_REMEMBER_HEAD_LINES, _REMEMBER_HEAD_BYTES = 8, 512


@functools.lru_cache(maxsize=256)
def _parsed_request(lines: tuple[bytes, ...]) -> Head:
    return _parse_request_line(lines)


def parse_request_line(lines: list[bytes]) -> Head:
    """`METHOD SP target SP HTTP/1.x` and the headers. The target is decoded as UTF-8 so an
    IDN host reaches normalisation intact."""
    if len(lines) <= _REMEMBER_HEAD_LINES and sum(map(len, lines)) <= _REMEMBER_HEAD_BYTES:
        head = _parsed_request(tuple(lines))
        return Head(head.start, list(head.headers))
    return _parse_request_line(lines)


def _parse_request_line(lines: list[bytes] | tuple[bytes, ...]) -> Head:
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if len(method) > METHOD_MOST:  # recorded, and shown on a card: its length is bounded
        raise HttpError(400, f"request method longer than {METHOD_MOST} characters")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505 if version.startswith(b"HTTP/") else 400,
                        "only HTTP/1.0 and HTTP/1.1 are spoken here")
    try:
        target_text = target.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "request target is not UTF-8") from None
    return Head((method.decode("ascii"), target_text, version.decode("ascii")),
                _headers(lines[1:]))


def parse_status_line(lines: list[bytes]) -> Head:
    version, _, rest = lines[0].partition(b" ")
    status, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not re.fullmatch(rb"[1-5][0-9]{2}", status):
        raise HttpError(502, "upstream sent a malformed status line")
    if _CTL.search(reason):  # copied to the client: a bare CR there ends a line for some
        raise HttpError(502, "upstream sent a control character in its status line")
    return Head((version.decode("ascii"), status.decode("ascii"),
                 reason.decode("latin-1")), _headers(lines[1:]))


def body_framing(head: Head, *, request: bool, status: int = 0,
                 method: str = "") -> tuple[str, int]:
    """How the body ends: ("none"|"length"|"chunked"|"eof", length). RFC 9112 6.3, with
    every ambiguity refused rather than resolved (request smuggling lives in ambiguities)."""
    bad = 400 if request else 502
    if not request and (method == "HEAD" or status < 200 or status in (204, 304)):
        return "none", 0
    te = head.get_all("transfer-encoding")
    cl = head.get_all("content-length")
    if te:
        codings = [t.strip().lower() for v in te for t in v.split(",") if t.strip()]
        if cl:
            raise HttpError(bad, "both Transfer-Encoding and Content-Length")
        if codings == ["chunked"]:
            return "chunked", 0
        if request or (codings and codings[-1] == "chunked"):
            raise HttpError(bad if request else 502,
                            f"unsupported Transfer-Encoding {', '.join(codings)}")
        return "eof", 0
    if cl:
        values = {v.strip() for v in cl}
        if len(values) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(values))):
            raise HttpError(bad, "invalid or conflicting Content-Length")
        n = int(next(iter(values)))
        return ("length", n) if n else ("none", 0)
    return ("none", 0) if request else ("eof", 0)


def filtered_headers(head: Head, *, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop, Proxy-*, framing and Host, and anything `Connection` names."""
    named = head.tokens("connection") | head.tokens("proxy-connection")
    return [(k, v) for k, v in head.headers
            if (low := k.lower()) not in _HOP and low not in named and low not in drop
            and not low.startswith("proxy-")]


def render(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Chunks relayed before the loop gets a turn: one read holds thousands of one-byte chunks,
# each parsed and forwarded without waiting, while every other connection of the daemon waits.
_CHUNKS_PER_TURN = 64
# Trailer field lines after the last chunk, at most (as many as a head may have): each is read
# and dropped without waiting, so without a bound one body's trailer held the loop for as long
# as the client kept sending two-byte lines (review s16).
_MAX_TRAILER_LINES = _MAX_HEADER_LINES


async def relay_exact(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int,
                      tap: Tap = None, what: str = "a body", *, prefix: bytes = b"") -> int:
    """Forward exactly n body bytes as they arrive; `prefix` (a head) goes out with the first
    piece."""
    left = n
    while left:
        data = await reader.read(min(left, _PIECE))
        if not data:
            raise HttpError(502, f"connection closed inside {what}")
        left -= len(data)
        writer.write(prefix + data if prefix else data)
        prefix = b""
        if tap:
            tap(data)
        await writer.drain()
    return n


async def _chunk_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise HttpError(502, "connection closed inside a chunked body") from None
    except asyncio.LimitOverrunError:
        raise HttpError(400, "chunk framing line too long") from None
    if len(line) > _CHUNK_LINE_MAX:
        raise HttpError(400, "chunk framing line too long")
    return line.rstrip(b"\r\n")


async def relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        tap: Tap = None, *, decode: bool = False) -> int:
    """Forward a chunked body, re-framed canonically (extensions and trailers dropped).
    With `decode`, write only the payload (for an HTTP/1.0 peer). Returns payload bytes."""
    total = chunks = 0
    while True:
        chunks += 1
        if chunks % _CHUNKS_PER_TURN == 0:
            await asyncio.sleep(0)  # a body of tiny chunks must not hold the loop (below)
        size_text = (await _chunk_line(reader)).split(b";", 1)[0].strip(b" \t")
        if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", size_text):
            raise HttpError(400, f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            trailers = 0
            while await _chunk_line(reader):  # trailer fields: dropped
                trailers += 1
                if trailers > _MAX_TRAILER_LINES:
                    raise HttpError(400, f"more than {_MAX_TRAILER_LINES} trailer lines")
            if not decode:
                writer.write(b"0\r\n\r\n")
                if tap:
                    tap(b"0\r\n\r\n")
            await writer.drain()
            return total
        frame = f"{size:x}\r\n".encode()
        if not decode:
            writer.write(frame)
            if tap:
                tap(frame)
        await relay_exact(reader, writer, size, tap, "a chunk")
        total += size
        if await _chunk_line(reader):
            raise HttpError(400, "chunk data not followed by CRLF")
        if not decode:
            writer.write(b"\r\n")
            if tap:
                tap(b"\r\n")


async def relay_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          tap: Tap = None) -> int:
    total = 0
    while data := await reader.read(_PIECE):
        total += len(data)
        writer.write(data)
        if tap:
            tap(data)
        await writer.drain()
    return total
