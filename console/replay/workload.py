"""A trace file as lanes of requests to replay, and the synthetic prompts that stand in for
the recorded ones.

Lanes. A pilothouse trace names each request's lane (run/slot): its requests are replayed in
order, one at a time, with the recorded think time between the end of one and the start of
the next. A mooncake trace has no lanes: its requests form one lane in timestamp order, with
no think time (aiperf replays it by timestamp instead; `bench/replay.py` compares the two on
the same server).

Concurrency N runs N lanes at once: lane i replays recorded lane i mod L. Copies of a lane
(i >= L) are other users running the same workflow: blocks that only one recorded lane used
are salted per copy (no cache sharing between users), blocks that several lanes used (a
shared system prompt, tool definitions) stay shared.

Prompts. Each hash id becomes `block_size` words drawn from a fixed list of short English words
by a generator seeded with the id (and the copy's salt where salted); the last block is cut so
the prompt has `input_length` words. Prompts that share leading ids share a prefix, so a
server's prefix cache sees the recorded reuse. A word is about one token for common
tokenizers; the server's own count comes back in the usage and is what the figures use.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.gate.usage import MAX_TOKENS

WORDS = ("the of and to in is it you that he was for on are as with his they at be this "
         "have from or one had by word but not what all were we when your can said there "
         "use an each which she do how their if will up other about out many then them "
         "these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find "
         "long down day did get come made may part").split()


class TraceError(ValueError):
    """The trace file cannot be replayed; the message says which line and why."""


@dataclass
class Request:
    input_length: int
    output_length: int
    hash_ids: list[int] = field(default_factory=list)
    think_s: float | None = None
    stream: bool = True


@dataclass
class Lane:
    name: str
    requests: list[Request]


@dataclass
class Workload:
    lanes: list[Lane]
    block_size: int
    source_format: str
    shared_ids: frozenset[int] = frozenset()

    @property
    def requests(self) -> int:
        return sum(len(lane.requests) for lane in self.lanes)


# Tokens in one request, at most: the meter's and the export's bound (tenfold any context
# window). A file may come from anywhere, and each prompt is built whole before it is sent.
MAX_LENGTH = MAX_TOKENS


def _int(obj: dict[str, Any], key: str, line: int, minimum: int = 0,
         maximum: int = MAX_LENGTH) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise TraceError(f"line {line}: {key} must be an integer from {minimum} to {maximum:,}, "
                         f"not {value!r}")
    return value


def load(path: str | Path, block_size: int | None = None) -> Workload:
    """Read a mooncake or pilothouse JSONL trace. Raises TraceError, OSError."""
    lanes: dict[str, list[Request]] = {}
    fmt, size = "mooncake", block_size
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                raise TraceError(f"line {n}: not JSON ({exc.msg})") from None
            except RecursionError:
                raise TraceError(f"line {n}: JSON nested too deep to read") from None
            if not isinstance(obj, dict):
                raise TraceError(f"line {n}: expected a JSON object")
            ids = obj.get("hash_ids") or []
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise TraceError(f"line {n}: hash_ids must be a list of integers")
            req = Request(_int(obj, "input_length", n, 1), _int(obj, "output_length", n, 1),
                          ids)
            if len(ids) > req.input_length:  # each id stands for a block of one token or more
                raise TraceError(f"line {n}: hash_ids has more ids ({len(ids):,}) than "
                                 f"input_length has tokens ({req.input_length:,})")
            if "lane" in obj:
                fmt = "pilothouse"
                think = obj.get("think_s")
                if isinstance(think, int | float) and not 0 <= think < math.inf:
                    raise TraceError(f"line {n}: think_s must be a finite number of seconds "
                                     f">= 0, not {think!r}")
                req.think_s = float(think) if isinstance(think, int | float) else None
                req.stream = obj.get("stream") is not False
                if "block_size" in obj:
                    block = _int(obj, "block_size", n, 1)
                    size = size if size is not None else block
            lane = str(obj.get("lane") or obj.get("session_id") or "trace")
            lanes.setdefault(lane, []).append(req)
    if not lanes:
        raise TraceError("the trace has no requests")
    seen: Counter[int] = Counter()
    for reqs in lanes.values():
        seen.update({i for r in reqs for i in r.hash_ids})
    shared = frozenset(i for i, c in seen.items() if c > 1)
    return Workload([Lane(k, v) for k, v in lanes.items()], size or 512, fmt, shared)


def _block(seed: str, size: int) -> list[str]:
    rng = random.Random(seed)
    return rng.choices(WORDS, k=size)


def prompt(req: Request, block_size: int, *, salt: str = "",
           shared: frozenset[int] = frozenset(), unique: str = "") -> str:
    """`input_length` words; blocks by hash id (salted unless shared); `unique` seeds the words
    of a request without hash ids."""
    words: list[str] = []
    for i in req.hash_ids:
        # Only the words the prompt keeps: a trace's block_size of 100M made a one-word prompt
        # draw 100M words (800 MB, seconds of the loop every lane's timings run on; review
        # h144). random.choices draws a block's first words the same whatever its length.
        need = min(block_size, req.input_length - len(words))
        words += _block(f"{i}" if i in shared else f"{salt}:{i}", need)
        if len(words) >= req.input_length:
            break
    if len(words) < req.input_length:
        words += _block(f"{salt}:{unique}:tail", req.input_length - len(words))
    return " ".join(words[:req.input_length])
