"""Recorded requests (the store's trace_requests) as trace files.

Two formats, one JSON object per line:
- "mooncake": `timestamp` (ms since the first request), `input_length`, `output_length`,
  `hash_ids`: what aiperf replays as it is (its mooncake_trace dataset type);
- "pilothouse": the same four fields plus everything recorded (run, lane, think time, TTFT,
  duration, model, streamed, max tokens, cached tokens, the message-block hashes).

hash_ids. Mooncake counts prefix reuse in blocks of `block_size` tokens (512 by default): two
requests share a block id when the prompt up to the end of that block is the same. The gate
records a chained hash per message block with its length in characters, and the server's
prompt token count. Characters become tokens at the ratio of the whole export (all prompt
tokens over all characters), so a message block has the same token span in every request
that contains it; a token block that ends inside message j is named by (hash of message j,
block index), i.e. by the whole prefix, and gets the same id wherever that prefix recurs; a
partial last block is also named by its length (one id, one size, as aiperf requires).
Token blocks past the recorded messages (the server's template, a body too large to record)
get ids of their own. Ids are numbered from 0 in order of first appearance.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from typing import Any

from console.gate.usage import MAX_TOKENS, token_count
from store.trace_requests import load_trace_rows

FORMATS = ("mooncake", "pilothouse")
BLOCK_SIZE = 512
# Hash ids in one export, at most (8.6 * 10**9 prompt tokens at 512 a block). Each recorded
# count is believed up to MAX_TOKENS (195,313 ids at 512), but a server an agent controls can
# claim that for every request: a thousand of them made 195 million ids, about 33 GB held and
# a 1.5 GB file. Past it the export stops in words before it writes (review h136).
MAX_EXPORT_IDS = 1 << 24


def load_rows(db: Any, *, run_id: str | None = None, profile: str | None = None,
              since: float | None = None) -> list[dict[str, Any]]:
    """Trace rows, oldest first, from a sqlite_utils Database (read-only is enough)."""
    return load_trace_rows(db.conn, run_id=run_id, profile=profile, since=since)


def _tokens(value: Any) -> int | None:
    """A recorded count the export believes, and not 0 (a row stored before the meter
    bounded its counts may hold a trillion, which would be two billion hash ids)."""
    return token_count(value) or None


def _output_length(row: dict[str, Any]) -> int:
    for key in ("completion_tokens", "max_tokens"):
        if (n := _tokens(row.get(key))) is not None:
            return n
    return 1


class HashIds:
    """Block ids of prompts, shared where the recorded prefix is shared (see the module)."""

    def __init__(self, rows: list[dict[str, Any]], block_size: int = BLOCK_SIZE) -> None:
        self.block_size = block_size
        chars = tokens = 0
        for row in rows:
            blocks = json.loads(row.get("blocks") or "[]")
            if blocks and _tokens(row.get("prompt_tokens")):
                chars += sum(c for _, c in blocks)
                tokens += int(row["prompt_tokens"])
        self.tokens_per_char = tokens / chars if chars else 0.25
        self._ids: dict[tuple[str, int] | tuple[str, int, int], int] = {}

    def _intern(self, key: tuple[str, int] | tuple[str, int, int]) -> int:
        got = self._ids.get(key)
        if got is None:
            got = self._ids[key] = len(self._ids)
        return got

    def of(self, row: dict[str, Any], input_length: int) -> list[int]:
        blocks = json.loads(row.get("blocks") or "[]")
        ends, hashes, pos = [], [], 0.0
        for h, c in blocks:
            pos += c * self.tokens_per_char
            ends.append(math.floor(pos))  # never decreasing: found by bisection, not a scan
            hashes.append(h)
        out = []
        for k in range(math.ceil(input_length / self.block_size)):
            last_token = min((k + 1) * self.block_size, input_length) - 1
            j = bisect.bisect_right(ends, last_token)  # the first block ending past it
            owner = hashes[j] if j < len(hashes) else None
            key = (owner, k) if owner else (row["request_id"], k)
            size = last_token + 1 - k * self.block_size
            if size < self.block_size:
                # A partial last block is its own id: one id is one size (aiperf refuses a
                # trace where an id comes back with another length).
                key = (*key, size)
            out.append(self._intern(key))
        return out


def _input_length(row: dict[str, Any], blocks: list[Any], ids: HashIds) -> int:
    n = _tokens(row.get("prompt_tokens"))
    if n is None:
        n = min(MAX_TOKENS, max(1, round(sum(c for _, c in blocks) * ids.tokens_per_char)))
    return n


def check_size(rows: list[dict[str, Any]], block_size: int = BLOCK_SIZE,
               ids: HashIds | None = None) -> None:
    """Raises ValueError when the export would make more than MAX_EXPORT_IDS hash ids."""
    ids = ids or HashIds(rows, block_size)
    total = sum(math.ceil(_input_length(r, json.loads(r.get("blocks") or "[]"), ids)
                          / block_size) for r in rows)
    if total > MAX_EXPORT_IDS:
        raise ValueError(f"these {len(rows):,} requests make {total:,} hash ids, more than an "
                         f"export makes ({MAX_EXPORT_IDS:,}); export fewer (--run, --since) or "
                         "give a larger --block-size")


def records(rows: list[dict[str, Any]], fmt: str, block_size: int = BLOCK_SIZE
            ) -> Iterable[dict[str, Any]]:
    """One JSON-ready object per request, in the format asked. Raises ValueError (before the
    first) for a format it does not know or an export past MAX_EXPORT_IDS."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    ids = HashIds(rows, block_size)
    check_size(rows, block_size, ids)
    t0 = rows[0]["start"] if rows else 0.0
    for row in rows:
        blocks = json.loads(row.get("blocks") or "[]")
        input_length = _input_length(row, blocks, ids)
        base = {"timestamp": round((row["start"] - t0) * 1000), "input_length": input_length,
                "output_length": _output_length(row), "hash_ids": ids.of(row, input_length)}
        if fmt == "mooncake":
            yield base
            continue
        end, first = row.get("end"), row.get("first_byte")
        yield {**base, "request_id": row["request_id"], "run_id": row["run_id"],
               "profile": row.get("profile"), "lane": row.get("lane") or row["run_id"],
               "start": row["start"], "think_s": row.get("think_s"),
               "ttft_s": round(first - row["start"], 6) if first else None,
               "duration_s": round(end - row["start"], 6) if end else None,
               "model": row.get("model"), "stream": None if row.get("stream") is None
               else bool(row["stream"]), "max_tokens": row.get("max_tokens"),
               "cached_tokens": row.get("cached_tokens"), "status": row.get("status"),
               "endpoint": row.get("endpoint"), "blocks": blocks, "block_size": block_size}


def write(rows: list[dict[str, Any]], fmt: str, out: Any, block_size: int = BLOCK_SIZE) -> int:
    n = 0
    for rec in records(rows, fmt, block_size):
        # ASCII: a model name the agent sent (a bidi override, a C1 control, U+2028) is a \u
        # escape, meaning the same, on a terminal and to a reader that splits lines its way.
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        n += 1
    return n
