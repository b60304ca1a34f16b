"""Per-request records of inference traffic through the gate, for the workload benchmark.

For every request to a metered inference endpoint the gate calls `TraceRecorder.begin()` and
hands the returned `RequestTrace` the request body as it is relayed (`request_body`), each
piece of the answer (`response_body`: only the first one's time is kept) and the end
(`finish`). What is stored, one row in `trace_requests` per request:

- start, first byte of the answer, end (wall clock); method, endpoint, HTTP status;
- model, streamed or not, max tokens (whichever spelling the API uses);
- prompt, completion and cached tokens from the usage meter;
- the lane: `RUN/N`, N the lowest slot of that run with no request in flight when this one
  started, so sub-agents calling in parallel show up as separate lanes; think time is start
  minus the previous end in the same lane;
- prefix reuse: each canonicalised message block (system, tools, each message; sorted-key
  compact JSON) as a chained keyed hash with its length in characters. Two requests that
  share the first k blocks share the first k hashes. The key is the installation's, so a
  hash cannot be checked against guessed text elsewhere. Content itself is stored only when
  the recorder is built with `store_content=True`. At most MAX_BLOCKS blocks: the messages
  past them are one block, so a body of a million tiny messages costs no more than one.
- every value is one SQLite takes (counts within 0..MAX_TOKENS, text without lone
  surrogates): a refused value would undo the whole batch, other runs' rows included. Rows
  lost anyway (the store refused the batch, the writer closed) are counted in `lost` and
  logged.

The gate's request path pays for two callbacks that append to a bounded buffer; parsing the
body and hashing happen in a worker thread after the answer ended, and rows reach the store
writer in batches (every FLUSH_S), not one commit each. The bus hears
`inference.start` and `inference.end` (not stored: the row is), so the GPU ledger knows a
request is in flight while its answer streams.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.gate.usage import Usage, token_count
from store import values
from store.trace_requests import insert_trace_rows

__all__ = ["RequestShape", "RequestTrace", "TraceRecorder", "request_shape"]

log = logging.getLogger("pilothouse.gate.trace")

MAX_BODY = 8 * 1024 * 1024  # a larger request body is recorded without its shape
# Request body bytes one run's requests in flight hold at once: past them a request is recorded
# without its shape. Without it, 64 requests kept just short of their end held 512 MB of the
# daemon's memory (review s33).
MAX_HELD_PER_RUN = 16 * 1024 * 1024
# Bodies waiting for the row builder, at most: past them a request is recorded without its
# shape (fast refusals of 8 MB bodies arrive faster than one thread parses them).
MAX_WAITING_BODIES = 8
ENDED_MAX = 100_000  # ended runs remembered (to refuse their late rows); the oldest go first
FLUSH_S = 0.25  # rows are handed to the store writer together at most this late
FORGET_LANES_S = 3600.0  # a run idle this long starts its lanes afresh (no think time)
MAX_BLOCKS = 4096  # message blocks hashed per request; the messages past them are one block
_MAX_TOKENS_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "n_predict",
                    "num_predict", "max_new_tokens")


@dataclass(frozen=True, slots=True)
class RequestShape:
    model: str | None = None
    stream: bool | None = None
    max_tokens: int | None = None
    blocks: list[tuple[str, int]] = field(default_factory=list)  # (prefix hash, characters)
    content: list[str] | None = None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _items(out: list[str], items: list[Any]) -> None:
    """One block per item; past MAX_BLOCKS (a body of a million one-byte messages) the rest
    is one block, so neither the work nor the stored row grows with the count of items."""
    room = max(1, MAX_BLOCKS - 3 - len(out))  # leave room for "prompt", "inputs", the tail
    if len(items) <= room:
        out += [_canonical(item) for item in items]
    else:
        out += [_canonical(item) for item in items[:room - 1]]
        out.append(_canonical(items[room - 1:]))


def _blocks_of(body: dict[str, Any]) -> list[str]:
    """The prompt as an ordered list of canonical blocks (at most MAX_BLOCKS), whatever the
    API."""
    out: list[str] = []
    if "tools" in body:
        out.append(_canonical({"tools": body["tools"]}))
    if "system" in body:  # Anthropic
        out.append(_canonical({"role": "system", "content": body["system"]}))
    if isinstance(body.get("instructions"), str):  # Responses
        out.append(_canonical({"role": "system", "content": body["instructions"]}))
    for key in ("messages", "input"):
        items = body.get(key)
        if isinstance(items, list):
            _items(out, items)
        elif isinstance(items, str):
            out.append(_canonical({"role": "user", "content": items}))
    for key in ("prompt", "inputs"):  # completions, llama.cpp, Ollama generate, TGI
        if isinstance(body.get(key), str):
            out.append(_canonical({"prompt": body[key]}))
    return out


def _max_tokens(body: dict[str, Any]) -> int | None:
    for holder in (body, body.get("parameters"), body.get("options")):
        if isinstance(holder, dict):
            for key in _MAX_TOKENS_KEYS:
                value = holder.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    return token_count(value)
    return None


def request_shape(body: bytes, key: bytes, *, keep_content: bool = False) -> RequestShape:
    """What the benchmark needs of one request body; an empty shape for a body that is not
    a JSON object."""
    try:  # nested past the recursion limit is RecursionError, not ValueError
        obj = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        return RequestShape()
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    stream = obj.get("stream") if isinstance(obj.get("stream"), bool) else None
    blocks, chain = [], b""
    try:
        texts = _blocks_of(obj)
    except (ValueError, RecursionError):
        texts = []
    for text in texts:
        h = hashlib.blake2b(chain + text.encode("utf-8", "surrogatepass"), key=key[:64],
                            digest_size=8).hexdigest()
        blocks.append((h, len(text)))
        chain = h.encode()
    return RequestShape(model and model[:200], stream, _max_tokens(obj), blocks,
                        texts if keep_content else None)


class RequestTrace:
    """One request in flight. The gate calls request_body / response_body as bytes pass,
    then finish() once; none of them raises."""

    __slots__ = ("_body", "_done", "_over", "_recorder", "endpoint", "first_byte", "lane",
                 "method", "request_id", "run_id", "started", "think_s")

    def __init__(self, recorder: TraceRecorder, run_id: str, method: str, endpoint: str,
                 lane: str, think_s: float | None, started: float) -> None:
        self._recorder = recorder
        self.request_id = uuid.uuid4().hex
        self.run_id, self.method, self.endpoint = run_id, method, endpoint
        self.lane, self.think_s, self.started = lane, think_s, started
        self.first_byte: float | None = None
        self._body = bytearray()
        self._over = False
        self._done = False

    def request_body(self, data: bytes) -> None:
        if self._over:
            return
        if (len(self._body) + len(data) > MAX_BODY
                or not self._recorder.hold(self.run_id, len(data))):
            self._over = True
            self._recorder.release(self.run_id, len(self._body))
            self._body.clear()
            return
        self._body += data

    def response_body(self, data: bytes) -> None:
        if self.first_byte is None and data:
            self.first_byte = self._recorder.clock()

    def finish(self, usage: Usage | None, status: int | None) -> None:
        """The answer ended (usage None: unread, failed or cut). Only the first call counts."""
        if self._done:
            return
        self._done = True
        self._recorder.release(self.run_id, len(self._body))
        try:
            self._recorder.finish(self, usage, status, bytes(self._body))
        except Exception:  # recording must never break the proxied exchange
            log.exception("trace: could not record request %s", self.request_id)


class _Lanes:
    """Per run: slots, each free or busy, with the end of its last request."""

    def __init__(self) -> None:
        self.busy: list[bool] = []
        self.last_end: list[float | None] = []

    def take(self) -> int:
        for i, busy in enumerate(self.busy):
            if not busy:
                self.busy[i] = True
                return i
        self.busy.append(True)
        self.last_end.append(None)
        return len(self.busy) - 1

    def give(self, slot: int, end: float) -> None:
        self.busy[slot] = False
        self.last_end[slot] = end

    def idle_since(self) -> float | None:
        """When the last request ended, if none is in flight."""
        if any(self.busy):
            return None
        return max((e for e in self.last_end if e is not None), default=None)


class TraceRecorder:
    """One per daemon, shared by every run's gate. `writer` is the StoreWriter (or None:
    nothing stored), `bus` gets inference.start / inference.end (or None)."""

    def __init__(self, writer: Any, bus: Any = None, *, key: bytes = b"", profile_of:
                 Callable[[str], str | None] | None = None, store_content: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer, self.bus = writer, bus
        self.key = hashlib.blake2b(b"pilothouse trace prefix hashes" + key).digest()
        self.profile_of = profile_of or (lambda run_id: None)
        self.store_content = store_content
        self.clock = clock
        self._lanes: dict[str, _Lanes] = {}
        self._slots: dict[str, tuple[str, int]] = {}  # request_id -> (run, slot)
        self.recorded = 0
        self.lost = 0  # rows that never reached the store (each said in the log)
        self.unshaped = 0  # rows recorded without their request's shape: the builder was behind
        self._waiting = 0  # bodies handed to the builder and not yet parsed
        self._held: dict[str, int] = {}  # run -> body bytes its requests in flight hold
        self._begun = 0
        self._last_build: asyncio.Future[None] | None = None  # the newest row handed to _builder
        self._ended: dict[str, None] = {}  # runs whose rows went to their end (oldest first)
        self._rows: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        # Rows are built one at a time, on a thread of their own: parsing an 8 MB body of tiny
        # objects takes hundreds of MB for a moment, so several at once in the loop's shared
        # pool multiplied that, and held the threads the store's reads run on.
        self._builder = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pilothouse-trace")

    def begin(self, run_id: str, method: str, endpoint: str) -> RequestTrace:
        now = self.clock()
        self._begun += 1
        if self._begun % 256 == 0:
            self._forget_idle(now)
        lanes = self._lanes.setdefault(run_id, _Lanes())
        slot = lanes.take()
        last = lanes.last_end[slot]
        think = max(0.0, now - last) if last is not None else None
        trace = RequestTrace(self, run_id, method, endpoint, f"{run_id}/{slot}", think, now)
        self._slots[trace.request_id] = (run_id, slot)
        self._publish({"kind": "inference.start", "run_id": run_id,
                       "request_id": trace.request_id, "ts": now, "lane": trace.lane})
        return trace

    def hold(self, run_id: str, n: int) -> bool:
        """Count n more body bytes held by a request of run_id in flight, if within the run's
        bound (the gate's loop is the only caller, as of release)."""
        held = self._held.get(run_id, 0) + n
        if held > MAX_HELD_PER_RUN:
            return False
        self._held[run_id] = held
        return True

    def release(self, run_id: str, n: int) -> None:
        left = self._held.get(run_id, 0) - n
        if left > 0:
            self._held[run_id] = left
        else:
            self._held.pop(run_id, None)

    def held(self, run_id: str) -> int:
        """Body bytes run_id's requests in flight hold now."""
        return self._held.get(run_id, 0)

    def finish(self, trace: RequestTrace, usage: Usage | None, status: int | None,
               body: bytes) -> None:
        end = self.clock()
        run_id, slot = self._slots.pop(trace.request_id, (trace.run_id, -1))
        if slot >= 0:
            self._lanes[run_id].give(slot, end)
        self._publish({"kind": "inference.end", "run_id": run_id,
                       "request_id": trace.request_id, "ts": end})
        self.recorded += 1
        if self.writer is None:
            return
        profile = self.profile_of(run_id)
        with self._lock:
            kept = bool(body) and self._waiting < MAX_WAITING_BODIES
            self._waiting += kept
            self.unshaped += bool(body) and not kept
        if not kept:
            body = b""

        def build() -> None:
            try:
                shape = request_shape(body, self.key, keep_content=self.store_content)
            finally:
                if kept:
                    with self._lock:
                        self._waiting -= 1
            row = trace_row(trace, shape, usage, status, end, profile)
            with self._lock:
                late = run_id in self._ended
                if not late:
                    self._rows.append(row)
                first = len(self._rows) == 1 and not late
            if late:  # its run's rows were handed over for its end's seal: stored, it would
                self._lose(1, RuntimeError("its run had ended"))  # break that seal
                return
            if first and loop is not None:
                try:  # rows go to the store together, not one commit (and fsync) each
                    loop.call_soon_threadsafe(loop.call_later, FLUSH_S, self.flush)
                    return
                except RuntimeError:  # the loop is closing
                    pass
            if loop is None:
                self.flush()

        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
            try:
                build()
            except Exception as exc:
                self._lose(1, exc)
            return
        try:
            future = loop.run_in_executor(self._builder, build)
        except RuntimeError as exc:  # the builder is shut down (the daemon is stopping)
            with self._lock:
                self._waiting -= kept
            self._lose(1, exc)
            return
        future.add_done_callback(lambda f: f.cancelled() or f.exception() is None or
                                 self._lose(1, f.exception()))
        self._last_build = future

    def flush(self) -> None:
        """Hand the rows built so far to the store writer (one transaction)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows and self.writer is not None:
            try:
                stored = self.writer.call(lambda db: insert_trace_rows(db.conn, rows))
            except Exception as exc:  # the writer closed: the rows are lost, say so once
                self._lose(len(rows), exc)
                return
            # The insert runs later, in the writer: a refusal there (a full disk) is only in
            # this future, and must be counted and said like any other loss.
            stored.add_done_callback(lambda f: f.cancelled() or f.exception() is None
                                     or self._lose(len(rows), f.exception()))

    async def drain(self, run_id: str, timeout: float = 10.0) -> None:
        """A run ended: every row built so far handed to the store writer, so its end, queued
        next, seals all of its rows (store/trace_requests.py); a row of it built later is
        not stored (counted lost). The builder is one thread, first in first out: once the
        last build handed to it is done, so is every one before it (the run's included)."""
        if self.writer is None:
            return
        last = self._last_build
        if last is not None and not last.done():
            with contextlib.suppress(Exception):  # timed out (a slow body): its row is late
                await asyncio.wait_for(asyncio.shield(last), timeout)
        with self._lock:
            self._ended[run_id] = None
            while len(self._ended) > ENDED_MAX:
                del self._ended[next(iter(self._ended))]
        self.flush()

    def _lose(self, n: int, exc: BaseException | None) -> None:
        with self._lock:
            self.lost += n
        log.warning("%d trace row(s) not stored (%d lost so far): %s", n, self.lost, exc)

    def _forget_idle(self, now: float) -> None:
        """Runs end without telling the recorder: drop the lanes of runs long idle."""
        for run_id, lanes in list(self._lanes.items()):
            since = lanes.idle_since()
            if since is not None and now - since > FORGET_LANES_S:
                del self._lanes[run_id]

    def _publish(self, event: dict[str, Any]) -> None:
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.publish(event)


def trace_row(trace: RequestTrace, shape: RequestShape, usage: Usage | None,
              status: int | None, end: float, profile: str | None) -> tuple[Any, ...]:
    """One row in COLUMNS order, every value one SQLite takes (text without lone surrogates,
    counts within 0..MAX_TOKENS): a value it refuses would lose the whole batch of rows, other
    runs' included."""
    u = usage
    return (trace.request_id, trace.run_id, profile, trace.lane, trace.started,
            trace.first_byte, end, trace.think_s, trace.method, values.text(trace.endpoint),
            status, values.opt(u.model if u and u.model else shape.model),
            None if shape.stream is None else int(shape.stream), token_count(shape.max_tokens),
            token_count(u.prompt_tokens) if u else None,
            token_count(u.completion_tokens) if u else None,
            token_count(u.cached_tokens) if u else None,
            json.dumps(shape.blocks, separators=(",", ":")),
            values.text(json.dumps(shape.content, ensure_ascii=False))
            if shape.content is not None else None)
