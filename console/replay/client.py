"""A lean OpenAI-compatible chat client for the replay: asyncio streams, one keep-alive
connection per lane, no proxy, timings taken as the bytes arrive.

Per request it records the start, the first token (the first event carrying content), the
time of each content event (for inter-token latency), the end, and the usage the server
reports (prompt, completion, cached tokens). Plain http:// only: the replay targets a local
server (127.x or a name the person gives); nothing here reads HTTP_PROXY.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from console.gate.usage import token_count

MAX_HEAD = 64 * 1024
# An answer's body (or one server-sent event) held at most: the server is one the person named,
# but what it sends must not grow this process without bound.
MAX_ANSWER = 64 * 1024 * 1024
MAX_EVENT = 4 * 1024 * 1024  # one server-sent event (a chunk of a streamed answer)
MAX_TOKEN_EVENTS = 1_000_000  # content events of one streamed answer: each keeps its time
_HEX = frozenset(b"0123456789abcdefABCDEF")


class ClientError(Exception):
    pass


@dataclass
class Result:
    start: float
    end: float = 0.0
    first_token: float | None = None
    token_times: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    error: str | None = None
    sent_tokens: int | None = None  # the prompt length asked for (the trace's input_length)

    @property
    def ttft(self) -> float | None:
        return self.first_token - self.start if self.first_token is not None else None

    @property
    def output_tokens(self) -> int:
        if self.completion_tokens is not None:
            return self.completion_tokens
        return len(self.token_times)


class Endpoint:
    """Where to send: http://HOST:PORT/PREFIX (the /v1 base of an OpenAI-compatible server)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ClientError(f"{url}: give the server's base URL as http://HOST:PORT/v1")
        self.host, self.port = parts.hostname, parts.port or 80
        self.netloc = parts.netloc
        self.path = parts.path.rstrip("/") + "/chat/completions"


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, endpoint: Endpoint, timeout_s: float = 600.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def chat(self, model: str, text: str, max_tokens: int, *, stream: bool = True,
                   extra: dict[str, Any] | None = None) -> Result:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}],
                                "max_tokens": max_tokens, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(extra or {})
        result = Result(time.perf_counter())
        try:
            await asyncio.wait_for(self._exchange(json.dumps(body).encode(), result),
                                   self.timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ClientError,
                ValueError, TimeoutError) as exc:
            result.error = str(exc) or type(exc).__name__
            await self.close()
        result.end = time.perf_counter()
        asked = body.get("max_tokens")
        if isinstance(asked, int) and (result.completion_tokens or 0) > asked:
            # More output than asked for is no server's count (review h144: 10**8 claimed for
            # max_tokens 4 made tok/s and $/Mtok figures a person would quote): unreported, so
            # the figures count the content events received, as for an absurd count (h136).
            result.completion_tokens = None
        return result

    async def _exchange(self, payload: bytes, result: Result) -> None:
        ep = self.endpoint
        if self._writer is None or self._reader is None or self._reader.at_eof():
            self._reader, self._writer = await asyncio.open_connection(ep.host, ep.port)
        reader, writer = self._reader, self._writer
        writer.write(f"POST {ep.path} HTTP/1.1\r\nHost: {ep.netloc}\r\n"
                     "Content-Type: application/json\r\nAccept-Encoding: identity\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ClientError("response head too large") from None
        if len(head) > MAX_HEAD:
            raise ClientError("response head too large")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        keep = headers.get("connection", "").lower() != "close"
        sse = headers.get("content-type", "").startswith("text/event-stream")
        events = _Events(result) if sse else None
        body = bytearray()

        def take(data: bytes) -> None:
            if events is not None:
                events.feed(data)
            else:
                if len(body) + len(data) > MAX_ANSWER:
                    raise ClientError(f"answer too large (over {MAX_ANSWER:,} bytes)")
                body.extend(data)

        if "chunked" in headers.get("transfer-encoding", "").lower():
            # One read per arrival, not three awaits per chunk: the framing is decoded here.
            decoder = ChunkedBody()
            while not decoder.done:
                data = await reader.read(65536)
                if not data:
                    raise ClientError("the server closed the connection mid-answer")
                take(decoder.feed(data))
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                data = await reader.read(min(left, 65536))
                if not data:
                    raise ClientError("the server closed the connection mid-answer")
                left -= len(data)
                take(data)
        else:
            keep = False
            while chunk := await reader.read(65536):
                take(chunk)
        if not keep:
            await self.close()
        if len(status) < 2 or status[1] != "200":
            raise ClientError(f"HTTP {' '.join(status[1:])}: {bytes(body[:200])!r}")
        if events is not None:
            events.feed(b"\n\n")
        else:
            obj = _object(bytes(body))
            result.first_token = time.perf_counter()  # a whole answer: first byte is the end
            _usage(result, obj.get("usage"))


def _object(raw: bytes) -> dict[str, Any]:
    """An answer (or event) as a JSON object, or a ClientError: `[]` raised AttributeError and
    deep nesting RecursionError out of chat(), and the whole sweep stopped (review h144)."""
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise ClientError("the answer's JSON is nested too deep to read") from None
    if not isinstance(obj, dict):
        raise ClientError(f"the answer is JSON but not an object ({type(obj).__name__})")
    return obj


def _usage(result: Result, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    # Counts as the meter believes them (0..MAX_TOKENS, no bool): a negative or absurd count
    # reads as unreported, so the figures fall back on what was sent and received.
    for key in ("prompt_tokens", "completion_tokens"):
        if key in usage:
            setattr(result, key, token_count(usage[key]))
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and "cached_tokens" in details:
        result.cached_tokens = token_count(details["cached_tokens"])


class ChunkedBody:
    """HTTP/1.1 chunked framing, decoded with a few slices per read (no per-line state
    machine: the replay client's CPU per token is one of its figures)."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # payload bytes of the current chunk still to come
        self.skip = 0  # CRLF bytes after a chunk's payload still to skip
        self.trailer = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        self.buf = b""
        out: list[bytes] = []
        i, n = 0, len(buf)
        while i < n and not self.done:
            if self.left:
                take = min(self.left, n - i)
                out.append(buf[i:i + take])
                i += take
                self.left -= take
                if not self.left:
                    self.skip = 2
            elif self.skip:
                step = min(self.skip, n - i)
                i += step
                self.skip -= step
            elif self.trailer:
                if buf.startswith(b"\r\n", i):
                    self.done = True
                    i += 2
                else:
                    end = buf.find(b"\r\n", i)
                    if end < 0:
                        if n - i > MAX_HEAD:  # bounded as a head is (review h137)
                            raise ClientError("bad chunked framing")
                        self.buf = buf[i:]
                        break
                    i = end + 2  # a trailer field: ignored
            else:
                end = buf.find(b"\r\n", i)
                if end < 0:
                    if n - i > 1024:
                        raise ClientError("bad chunked framing")
                    self.buf = buf[i:]
                    break
                digits = buf[i:end].split(b";", 1)[0].rstrip(b" \t")
                if not digits or len(digits) > 15 or not _HEX.issuperset(digits):
                    raise ClientError("bad chunked framing")  # int() takes -6, +5, 0x5, 5_0
                size = int(digits, 16)
                i = end + 2
                if size:
                    self.left = size
                else:
                    self.trailer = True
        return b"".join(out)


class _Events:
    """Server-sent events: content chunks are timed, the usage chunk read."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.buf = b""

    def feed(self, data: bytes) -> None:
        self.buf = (self.buf + data).replace(b"\r\n", b"\n")
        if len(self.buf) > MAX_EVENT and b"\n\n" not in self.buf:
            raise ClientError(f"server-sent event too large (over {MAX_EVENT:,} bytes)")
        while True:
            end = self.buf.find(b"\n\n")
            if end < 0:
                return
            event, self.buf = self.buf[:end], self.buf[end + 2:]
            for line in event.split(b"\n"):
                line = line.rstrip(b"\r")
                if line.startswith(b"data:"):
                    self._data(line[5:].strip())

    def _data(self, payload: bytes) -> None:
        if not payload or payload == b"[DONE]":
            return
        now = time.perf_counter()
        if b'"usage"' in payload and b'"usage":null' not in payload:
            obj = _object(payload)
            _usage(self.result, obj.get("usage"))
            if not obj.get("choices"):
                return
        # Content chunks are timed without parsing them whole: the client's CPU per token
        # is what the replay must keep small. A chunk counts when its delta has non-empty
        # content (or reasoning content).
        if _has_content(payload):
            if self.result.first_token is None:
                self.result.first_token = now
            if len(self.result.token_times) >= MAX_TOKEN_EVENTS:  # a server that never stops
                raise ClientError(f"more than {MAX_TOKEN_EVENTS:,} content events in one answer")
            self.result.token_times.append(now)


def _has_content(payload: bytes) -> bool:
    for key in (b'"content":', b'"reasoning_content":'):
        at = payload.find(key)
        while at >= 0:
            rest = payload[at + len(key):at + len(key) + 8].lstrip()
            if rest[:1] == b'"' and rest[1:2] != b'"':
                return True
            at = payload.find(key, at + 1)
    return False
