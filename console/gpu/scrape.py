"""Token counters scraped from local inference servers' Prometheus endpoints.

The gate sees the tokens of requests that pass through it, when each response ends. A server's
own counters see every client, as tokens are produced. Both are useful: the gate's say which
run used what, the server's say what the GPU was doing. Counters used (summed over label sets,
e.g. one per model):

| server    | prompt tokens                   | generated tokens                    | moves       |
|-----------|---------------------------------|-------------------------------------|-------------|
| vLLM      | vllm:prompt_tokens_total        | vllm:generation_tokens_total        | per step    |
| SGLang    | sglang:prompt_tokens_total      | sglang:generation_tokens_total      | per step    |
| llama.cpp | llamacpp:prompt_tokens_total    | llamacpp:tokens_predicted_total     | per request |
| TGI       | tgi_request_input_length_sum    | tgi_request_generated_tokens_sum    | per request |

Requests finished and time to first token, where the server counts them (deltas the same way;
TTFT is the histogram's _sum over its _count, a mean per scrape interval):

| server    | requests                         | time to first token (histogram)          |
|-----------|----------------------------------|------------------------------------------|
| vLLM      | vllm:request_success_total       | vllm:time_to_first_token_seconds         |
| SGLang    | sglang:num_requests_total        | sglang:time_to_first_token_seconds       |
| TGI       | tgi_request_success              | (none)                                   |

(llama.cpp serves /metrics only when started with --metrics. TGI's are the `_sum` series of the
per-request histograms `tgi_request_input_length` and `tgi_request_generated_tokens`, which
grow when a request finishes.)

Counters become deltas per series; a series that goes down was reset (the server restarted) and
its new value is the delta. The first scrape of a target is the baseline: tokens counted before
Pilothouse looked are not attributed to anyone. The HTTP client is a plain GET over asyncio with
a short timeout, never through a proxy (the daemon's environment may name one).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from console.gate.usage import ChunkedDecoder

log = logging.getLogger("pilothouse.gpu")

FAMILIES: dict[str, tuple[str, str]] = {
    "vllm": ("vllm:prompt_tokens_total", "vllm:generation_tokens_total"),
    "sglang": ("sglang:prompt_tokens_total", "sglang:generation_tokens_total"),
    "llama.cpp": ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total"),
    "tgi": ("tgi_request_input_length_sum", "tgi_request_generated_tokens_sum"),
}
# kind -> (requests counter, TTFT histogram _sum, TTFT histogram _count); "" when not served.
REQUEST_FAMILIES: dict[str, tuple[str, str, str]] = {
    "vllm": ("vllm:request_success_total", "vllm:time_to_first_token_seconds_sum",
             "vllm:time_to_first_token_seconds_count"),
    "sglang": ("sglang:num_requests_total", "sglang:time_to_first_token_seconds_sum",
               "sglang:time_to_first_token_seconds_count"),
    "llama.cpp": ("", "", ""),
    "tgi": ("tgi_request_success", "", ""),
}
MAX_BYTES = 8 * 1024 * 1024
# A counter past 2**53 no longer counts single tokens as a float, and several near the float
# limit summed to inf (round(inf) raised out of Scraper.scrape and ended the scraper): such a
# series is not read, like NaN and infinity.
MAX_COUNTER = float(2**53)
MAX_BACKOFF_S = 30.0

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


# --- the text format ---------------------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _float(text: str) -> float:
    low = text.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    return float(text)  # "NaN" parses; anything else raises ValueError


def _labels(line: str, pos: int) -> tuple[Labels, int]:
    """Parse `{a="x",b="y"}` starting at the "{"; returns the labels and the index after "}"."""
    out: list[tuple[str, str]] = []
    pos += 1
    while True:
        while pos < len(line) and line[pos] in " \t,":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return tuple(out), pos + 1
        m = _LABEL_NAME.match(line, pos)
        if not m:
            raise ValueError("bad label")
        pos = m.end()
        value: list[str] = []
        while True:
            if pos >= len(line):
                raise ValueError("unterminated label value")
            ch = line[pos]
            if ch == "\\" and pos + 1 < len(line):
                value.append(_ESCAPES.get(line[pos + 1], "\\" + line[pos + 1]))
                pos += 2
            elif ch == '"':
                pos += 1
                break
            else:
                value.append(ch)
                pos += 1
        out.append((m.group(1), "".join(value)))


def parse_line(line: str) -> Sample | None:
    """One sample line; None for blanks and comments (# HELP, # TYPE, # EOF). Raises
    ValueError for a line that is neither."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    m = _NAME.match(line)
    if not m:
        raise ValueError("no metric name")
    name, pos = m.group(0), m.end()
    labels: Labels = ()
    if pos < len(line) and line[pos] == "{":
        labels, pos = _labels(line, pos)
    rest = line[pos:].split()
    if not rest or len(rest) > 2:  # value, then an optional timestamp
        raise ValueError("expected a value")
    return Sample(name, labels, _float(rest[0]))


def parse_text(text: str) -> tuple[list[Sample], int]:
    """All samples of an exposition, and how many lines could not be read (skipped)."""
    samples, bad = [], 0
    for line in text.splitlines():
        try:
            s = parse_line(line)
        except ValueError:
            bad += 1
            continue
        if s is not None:
            samples.append(s)
    return samples, bad


def detect(samples: list[Sample]) -> str | None:
    names = {s.name for s in samples}
    for kind, (prompt, gen) in FAMILIES.items():
        if prompt in names or gen in names:
            return kind
    return None


# --- counters ----------------------------------------------------------------------------------


class CounterDeltas:
    """Per-series counter deltas with reset handling; the first observation is a baseline."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, Labels], float] | None = None

    def update(self, samples: list[Sample], names: tuple[str, ...]) -> dict[str, float]:
        current = {(s.name, s.labels): s.value for s in samples
                   if s.name in names and 0 <= s.value <= MAX_COUNTER}
        deltas = dict.fromkeys(names, 0.0)
        if self._last is not None:
            for key, value in current.items():
                prev = self._last.get(key)
                if prev is None:
                    deltas[key[0]] += value  # a series born since the last scrape
                elif value >= prev:
                    deltas[key[0]] += value - prev
                else:
                    deltas[key[0]] += value  # reset: it counted up again from zero
        self._last = current
        return deltas


# --- HTTP --------------------------------------------------------------------------------------


def target_url(item: str) -> str:
    """"host:port" (as in [gate] inference) or a full http:// URL; /metrics by default."""
    if "://" not in item:
        item = f"http://{item}"
    parts = urlsplit(item)
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{path}{query}"


class ScrapeError(Exception):
    pass


async def fetch(url: str, timeout: float = 1.5) -> str:
    """GET url (plain http only) and return the body as text. Raises ScrapeError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ScrapeError(f"{url}: only http://host:port URLs can be scraped")
    host, port = parts.hostname, parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        return await asyncio.wait_for(_get(host, port, path, parts.netloc), timeout)
    except TimeoutError:
        raise ScrapeError(f"{url}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ScrapeError(f"{url}: {exc.strerror or exc}") from None


async def _get(host: str, port: int, path: str, netloc: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nAccept: text/plain\r\n"
                     "Accept-Encoding: identity\r\nConnection: close\r\n"
                     "User-Agent: pilothouse-gpu\r\n\r\n".encode())
        await writer.drain()
        raw = bytearray()
        while len(raw) <= MAX_BYTES:
            chunk = await reader.read(65536)
            if not chunk:
                break
            raw += chunk
        if len(raw) > MAX_BYTES:
            raise ScrapeError(f"http://{netloc}{path}: response larger than {MAX_BYTES} bytes")
    finally:
        writer.close()
    head, sep, body = bytes(raw).partition(b"\r\n\r\n")
    if not sep:
        raise ScrapeError(f"http://{netloc}{path}: not an HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/") or status[1] != "200":
        raise ScrapeError(f"http://{netloc}{path}: answered {' '.join(status[1:])[:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise ScrapeError(f"http://{netloc}{path}: compressed response")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            body = ChunkedDecoder().feed(body)
        except ValueError as exc:
            raise ScrapeError(f"http://{netloc}{path}: bad chunked body ({exc})") from None
    elif "content-length" in headers and headers["content-length"].isdigit():
        body = body[: int(headers["content-length"])]
    return body.decode("utf-8", "replace")


# --- the scraper -------------------------------------------------------------------------------

OnDelta = Callable[[str, int, int, float], None]  # url, prompt, generated, ts


@dataclass
class Target:
    url: str
    kind: str | None = None
    error: str | None = None
    last_ok: float | None = None
    scrapes: int = 0
    failures: int = 0
    prompt_tokens: int = 0  # counted since Pilothouse started looking
    generation_tokens: int = 0
    skipped_lines: int = 0
    next_at: float = 0.0
    deltas: CounterDeltas = field(default_factory=CounterDeltas)
    requests: int | None = None  # finished requests since Pilothouse started looking
    ttft_sum_s: float = 0.0
    ttft_count: int = 0
    ttft_last_s: float | None = None  # mean TTFT over the last interval that had requests

    def public(self) -> dict[str, Any]:
        return {"url": self.url, "kind": self.kind, "ok": self.error is None and
                self.last_ok is not None, "error": self.error, "last_ok": self.last_ok,
                "prompt_tokens": self.prompt_tokens, "generation_tokens": self.generation_tokens,
                "requests": self.requests,
                "ttft_mean_s": self.ttft_sum_s / self.ttft_count if self.ttft_count else None,
                "ttft_last_s": self.ttft_last_s}


class Scraper:
    """Scrapes every target each `interval_s` (backing off on failure) and reports deltas."""

    def __init__(self, targets: list[str], *, interval_s: float = 2.0, timeout_s: float = 1.5,
                 on_delta: OnDelta | None = None, clock: Callable[[], float] = time.time) -> None:
        self.targets = [Target(target_url(t)) for t in dict.fromkeys(targets)]
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.on_delta = on_delta
        self._clock = clock

    async def scrape(self, target: Target) -> tuple[int, int] | None:
        """One scrape; returns (prompt, generated) deltas or None when it failed."""
        now = self._clock()
        try:
            text = await fetch(target.url, self.timeout_s)
            samples, bad = parse_text(text)
            kind = detect(samples)
            if kind is None:
                raise ScrapeError(f"{target.url}: no token counters (vLLM, SGLang, llama.cpp "
                                  "with --metrics, TGI) in the response")
        except Exception as exc:  # ScrapeError, or a bug in parsing odd text: never fatal
            target.error = str(exc) if isinstance(exc, ScrapeError) else f"{target.url}: {exc!r}"
            target.failures += 1
            target.next_at = now + min(MAX_BACKOFF_S,
                                       self.interval_s * 2 ** min(target.failures, 5))
            return None
        if kind != target.kind:
            target.deltas = CounterDeltas()  # a different server on that port: new baseline
            target.kind = kind
        names = FAMILIES[kind]
        extra = tuple(n for n in REQUEST_FAMILIES[kind] if n)
        d = target.deltas.update(samples, names + extra)
        prompt, gen = round(d[names[0]]), round(d[names[1]])
        self._requests(target, kind, samples, d)
        target.error, target.failures, target.last_ok = None, 0, now
        target.scrapes += 1
        target.skipped_lines = bad
        target.prompt_tokens += prompt
        target.generation_tokens += gen
        target.next_at = now + self.interval_s
        if self.on_delta is not None:
            try:
                self.on_delta(target.url, prompt, gen, now)
            except Exception:
                log.exception("scrape consumer failed")
        return prompt, gen

    @staticmethod
    def _requests(target: Target, kind: str, samples: list[Sample],
                  d: dict[str, float]) -> None:
        req, ttft_sum, ttft_count = REQUEST_FAMILIES[kind]
        names = {s.name for s in samples}
        if req and req in names:
            target.requests = (target.requests or 0) + round(d[req])
        if ttft_sum and ttft_count in names:
            n = round(d[ttft_count])
            if n > 0:
                target.ttft_sum_s += d[ttft_sum]
                target.ttft_count += n
                target.ttft_last_s = d[ttft_sum] / n

    async def run(self) -> None:
        """Until cancelled. Targets are scraped concurrently, each on its own schedule."""
        while True:
            now = self._clock()
            due = [t for t in self.targets if t.next_at <= now]
            if due:
                await asyncio.gather(*(self.scrape(t) for t in due))
            wake = min((t.next_at for t in self.targets), default=now + self.interval_s)
            await asyncio.sleep(max(0.05, wake - self._clock()))

    def status(self) -> list[dict[str, Any]]:
        return [t.public() for t in self.targets]
