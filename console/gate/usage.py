"""Token usage from inference responses, read as the bytes pass through the gate.

The meter is a tap, not a filter: the proxy forwards every byte first and then hands a copy
here, so a slow or confused parse can never hold a token stream back or change it. Any error
turns the meter off for that response (it then reports nothing) instead of raising into the
proxy. Memory is bounded: streamed events are parsed line by line with a line cap, and a plain
JSON body is kept whole only up to `max_buffer`; past that only its head and tail are kept,
which is where `model` and `usage` sit in every server we know of.

Shapes understood (the latest value of each field wins, since several servers repeat cumulative
usage in every chunk):
- OpenAI-compatible JSON: `{"model": ..., "usage": {"prompt_tokens", "completion_tokens",
  "total_tokens"}}`; the Responses API (`response.usage` with input/output tokens) and
  Anthropic-style `input_tokens`/`output_tokens` map onto the same fields.
- Server-sent events: `data: {...}` events including the final usage chunk that
  `stream_options.include_usage` adds, and `data: [DONE]`.
- Ollama: `prompt_eval_count` / `eval_count` in a JSON body or the last NDJSON line.
- llama.cpp's native `/completion`: `tokens_evaluated` / `tokens_predicted` (and
  `tokens_cached`), in the JSON body or the last event of a stream.
- TGI's native `/generate` and `/generate_stream`: `details.generated_tokens`; the prompt's
  length only when the client asked for `decoder_input_details` (the `prefill` list).
Cached prompt tokens: `prompt_tokens_details.cached_tokens` (OpenAI chat),
`input_tokens_details.cached_tokens` (Responses), `cache_read_input_tokens` (Anthropic).
Anthropic's prompt is `input_tokens` + `cache_creation_input_tokens` + `cache_read_input_tokens`
(its input_tokens leave both out; OpenAI's include the cached part).
A count above MAX_TOKENS (10**8, tenfold any context window) is not believed: that field
reads as unreported. Bodies with a Content-Encoding (gzip, br) are not metered; the proxy asks metered endpoints for
`identity` so that this is the exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_TOKENS", "ChunkedDecoder", "HeldBytes", "Usage", "UsageMeter", "token_count"]

_HEAD_TAIL = 64 * 1024
# More tokens than any model's context holds, tenfold: a count above it is not believed (the
# field reads as unreported). Unbounded, one JSON integer of 400 digits overflowed SQLite's
# INTEGER and every float the GPU ledger makes of it, and a trillion made the export hang.
MAX_TOKENS = 100_000_000
# JSON bytes one run's meters keep whole at once; past them a meter keeps its head and tail.
# Per answer alone (max_buffer), a run holding 64 answers just short of 4 MiB kept 256 MiB of
# the daemon's memory for as long as it liked (review h143; the request side: trace.py).
METERS_HELD_PER_RUN = 16 * 1024 * 1024


class HeldBytes:
    """What a run's meters hold, against one bound (a gate has one)."""

    __slots__ = ("held", "most")

    def __init__(self, most: int = METERS_HELD_PER_RUN) -> None:
        self.held, self.most = 0, most

    def take(self, n: int) -> bool:
        if self.held + n > self.most:
            return False
        self.held += n
        return True

    def give(self, n: int) -> None:
        self.held = max(0, self.held - n)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens for one response. Fields a server did not report are None."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    model: str | None
    cached_tokens: int | None = None  # prompt tokens the server served from its cache


class ChunkedDecoder:
    """Incremental HTTP/1.1 chunked transfer-coding decoder (body bytes in, payload out).

    Bounded: size lines and trailer lines longer than 4 KiB are an error, as is anything that
    does not follow the grammar; `done` turns true after the last-chunk and trailers.
    """

    _MAX_LINE = 4096

    def __init__(self) -> None:
        self._state = "size"  # size | data | data_crlf | trailer | done
        self._remaining = 0
        self._line = bytearray()
        self.done = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        i, n = 0, len(data)
        while i < n and not self.done:
            if self._state == "data":
                take = min(self._remaining, n - i)
                out += data[i : i + take]
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "data_crlf"
                continue
            nl = data.find(b"\n", i)
            end = n if nl < 0 else nl
            self._line += data[i:end]
            if len(self._line) > self._MAX_LINE:
                raise ValueError("chunked framing line too long")
            if nl < 0:
                break
            i = nl + 1
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            self._line_done(line)
        return bytes(out)

    def _line_done(self, line: bytes) -> None:
        if self._state == "size":
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
                raise ValueError(f"bad chunk size {size_text[:20]!r}")
            self._remaining = int(size_text, 16)
            self._state = "data" if self._remaining else "trailer"
        elif self._state == "data_crlf":
            if line:
                raise ValueError("chunk data not followed by CRLF")
            self._state = "size"
        elif self._state == "trailer" and not line:
            self._state = "done"
            self.done = True


_MODEL_RE = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_OLLAMA_RE = {
    "prompt_tokens": re.compile(rb'"(?:prompt_eval_count|tokens_evaluated)"\s*:\s*(\d{1,12})'),
    "completion_tokens": re.compile(
        rb'"(?:eval_count|tokens_predicted|generated_tokens)"\s*:\s*(\d{1,12})'),
}
# Top-level counts of native APIs: key -> field (Ollama, then llama.cpp's /completion).
_NATIVE_KEYS = (("prompt_eval_count", "prompt_tokens"), ("eval_count", "completion_tokens"),
                ("tokens_evaluated", "prompt_tokens"), ("tokens_predicted", "completion_tokens"),
                ("tokens_cached", "cached_tokens"))


def token_count(value: Any) -> int | None:
    """A token count the figures believe: an int in 0..MAX_TOKENS, else unknown (None).
    The meter, the trace rows, the export and the summaries all read counts through this."""
    return (value if isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_TOKENS else None)


ANTHROPIC_CACHE_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens")


class UsageMeter:
    """Feed it a response body as it passes; `finish()` says what the response cost.

    `content_type` picks the parser (event-stream, NDJSON, or JSON; anything else is sniffed
    from the first byte). With `chunked=True` the bytes fed are the raw chunked body.
    """

    def __init__(
        self,
        content_type: str = "",
        *,
        chunked: bool = False,
        max_buffer: int = 4 * 1024 * 1024,
        max_line: int = 1024 * 1024,
        pool: HeldBytes | None = None,
    ) -> None:
        ct = content_type.split(";", 1)[0].strip().lower()
        self._mode = ("sse" if ct == "text/event-stream" else
                      "lines" if ct in ("application/x-ndjson", "application/jsonl",
                                        "application/json-seq") else
                      "json" if ct.endswith("json") else "sniff")
        self._chunked = ChunkedDecoder() if chunked else None
        self._max_buffer = max_buffer
        self._max_line = max_line
        self._line = bytearray()
        self._skipping_line = False
        self._event: list[bytes] = []
        self._event_bytes = 0  # an event's data lines, bounded like a line (max_line)
        self._buf = bytearray()
        self._head = b""
        self._truncated = False
        self._fields: dict[str, Any] = {}
        self.failed = False
        self._pool, self._taken = pool, 0  # the run's bound; what this meter took of it

    # -- feeding ------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Never raises: a response we cannot read is simply not metered."""
        if self.failed or not data:
            return
        try:
            self._feed(data)
            if self._pool is not None:
                self._held_now()
        except Exception:
            self.failed = True
            self.release()

    def _holding(self) -> int:
        """Bytes kept that grow with the answer: a whole body, a line, an event's data."""
        return (0 if self._truncated else len(self._buf)) + len(self._line) + self._event_bytes

    def _held_now(self) -> None:
        """Take what this meter keeps from its run's bound; refused, keep only what is bounded
        per answer: the body's head and tail, no line or event in progress (their usage, if
        they carried any, is not read)."""
        pool, now = self._pool, self._holding()
        assert pool is not None
        if now > self._taken and not pool.take(now - self._taken):
            if not self._truncated:
                self._head = bytes(self._buf[:_HEAD_TAIL])
                del self._buf[:-_HEAD_TAIL]
                self._truncated = True
            if self._line:
                self._line.clear()
                self._skipping_line = True
            self._event, self._event_bytes = [], 0
            now = self._holding()
        if now < self._taken:
            pool.give(self._taken - now)
        self._taken = now

    def _feed(self, data: bytes) -> None:
        if self._chunked is not None:
            data = self._chunked.feed(data)
            if not data:
                return
        if self._mode == "sniff":
            stripped = data.lstrip()
            if not stripped:
                return
            self._mode = "json" if stripped[:1] in (b"{", b"[") else "sse"
        if self._mode == "json":
            self._keep(data)
        self._lines(data)

    def _keep(self, data: bytes) -> None:
        if not self._truncated:
            self._buf += data
            if len(self._buf) > self._max_buffer:
                self._head = bytes(self._buf[:_HEAD_TAIL])
                del self._buf[:-_HEAD_TAIL]
                self._truncated = True
        else:
            self._buf += data
            if len(self._buf) > 2 * _HEAD_TAIL:
                del self._buf[:-_HEAD_TAIL]

    def _lines(self, data: bytes) -> None:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            if not self._skipping_line:
                if len(self._line) + len(piece) > self._max_line:
                    self._skipping_line = True
                    self._line.clear()
                else:
                    self._line += piece
            if nl < 0:
                return
            if self._skipping_line:
                self._skipping_line = False
            else:
                self._on_line(bytes(self._line).rstrip(b"\r"))
            self._line.clear()
            start = nl + 1

    def _on_line(self, line: bytes) -> None:
        if self._mode == "sse":
            if not line:
                self._dispatch_event()
            elif line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                self._event_bytes += len(value) + 1
                if self._event_bytes > self._max_line:  # data lines without end: not metered,
                    self._event, self._event_bytes = [], 0  # never kept (the event is dropped)
                    return
                self._event.append(value)
            return
        text = line.strip()
        if text.startswith(b"{") and text.endswith(b"}"):
            self._take_json(text)

    def _dispatch_event(self) -> None:
        if not self._event:
            return
        payload = b"\n".join(self._event).strip()
        self._event, self._event_bytes = [], 0
        if payload and payload != b"[DONE]":
            self._take_json(payload)

    def _take_json(self, text: bytes) -> None:
        try:
            obj = json.loads(text)
        except ValueError:
            return
        self._take(obj)

    def _take(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        for holder in (obj, obj.get("response"), obj.get("message")):
            if not isinstance(holder, dict):
                continue
            if isinstance(holder.get("model"), str):
                self._fields["model"] = holder["model"][:200]
            usage = holder.get("usage")
            if isinstance(usage, dict):
                self._take_usage(usage)
        for key, name in _NATIVE_KEYS:
            if token_count(obj.get(key)) is not None:
                self._fields[name] = obj[key]
        details = obj.get("details")  # TGI
        if isinstance(details, dict) and token_count(details.get("generated_tokens")) is not None:
            self._fields["completion_tokens"] = details["generated_tokens"]
            prefill = details.get("prefill")
            if isinstance(prefill, list) and prefill:
                self._fields["prompt_tokens"] = len(prefill)

    def _take_usage(self, usage: dict[str, Any]) -> None:
        for name, keys in (("prompt_tokens", ("prompt_tokens", "input_tokens")),
                           ("completion_tokens", ("completion_tokens", "output_tokens")),
                           ("total_tokens", ("total_tokens",))):
            for key in keys:
                if token_count(usage.get(key)) is not None:
                    self._fields[name] = usage[key]
                    break
        for holder, key in ((usage.get("prompt_tokens_details"), "cached_tokens"),
                            (usage.get("input_tokens_details"), "cached_tokens"),
                            (usage, "cache_read_input_tokens")):
            if isinstance(holder, dict) and token_count(holder.get(key)) is not None:
                self._fields["cached_tokens"] = holder[key]
        # Anthropic counts cache writes and reads apart from input_tokens (OpenAI's input
        # includes its cached part): the prompt is all three.
        for key in ANTHROPIC_CACHE_KEYS:
            if token_count(usage.get(key)) is not None:
                self._fields[key] = usage[key]

    # -- result -------------------------------------------------------------------------------

    def release(self) -> None:
        """Give back what this meter took of its run's bound (the answer ended)."""
        if self._pool is not None:
            self._pool.give(self._taken)
        self._taken = 0

    def finish(self) -> Usage | None:
        """Flush what is pending and return the usage seen, or None if there was none."""
        if self.failed:
            return None
        try:
            if self._line and not self._skipping_line:
                self._on_line(bytes(self._line).rstrip(b"\r"))
                self._line.clear()
            if self._mode == "sse":
                self._dispatch_event()
            if self._mode == "json" and not self._has_counts():
                self._finish_json()
        except Exception:
            return None
        if not self._has_counts():
            return None
        f = self._fields
        prompt, completion = f.get("prompt_tokens"), f.get("completion_tokens")
        if prompt is not None and any(k in f for k in ANTHROPIC_CACHE_KEYS):
            prompt += sum(f.get(k, 0) for k in ANTHROPIC_CACHE_KEYS)
        total = f.get("total_tokens")
        if total is None and prompt is not None and completion is not None:
            total = prompt + completion
        return Usage(prompt, completion, total, f.get("model"), f.get("cached_tokens"))

    def _has_counts(self) -> bool:
        return any(k in self._fields for k in ("prompt_tokens", "completion_tokens",
                                               "total_tokens"))

    def _finish_json(self) -> None:
        if not self._truncated:
            self._take_json(bytes(self._buf))
            return
        tail = bytes(self._buf)
        pos = tail.rfind(b'"usage"')
        if pos >= 0:
            colon = tail.find(b":", pos + 7)
            if colon >= 0:
                text = tail[colon + 1 :].decode("utf-8", "replace").lstrip()
                try:
                    usage, _ = json.JSONDecoder().raw_decode(text)
                except ValueError:
                    usage = None
                if isinstance(usage, dict):
                    self._take_usage(usage)
        for name, pattern in _OLLAMA_RE.items():
            found = pattern.findall(tail)
            if found and token_count(int(found[-1])) is not None:
                self._fields[name] = int(found[-1])
        if "model" not in self._fields:
            m = _MODEL_RE.search(self._head) or _MODEL_RE.search(tail)
            if m:
                self._fields["model"] = m.group(1).decode("utf-8", "replace")
