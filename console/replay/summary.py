"""Per agent figures of a recorded trace: what each run and lane asked of the server.

From the history's rows (`summarise`) or from a trace file as exported (`summarise_trace`:
a pilothouse trace keeps lanes, think time and TTFT; a mooncake trace is one lane with lengths
and hash ids only, so its think time and TTFT are None).

Per group (a run, or a lane with by="lane"): requests, prompt / output / cached tokens, TTFT
and duration p50/p90 as the agent saw them through the gate, think time p50, output tok/s
while answering (from the first byte of a streamed answer, from the start of one recorded
as not streamed), and prefix reuse: the share of the prompt (in recorded characters) whose
blocks an earlier request of any lane had already sent. The hashes chain, so a block seen
before means the whole prefix up to it was the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from console.gate.usage import token_count
from console.replay.figures import percentile
from store.values import read_number


def _ms(values: list[float], q: float) -> float | None:
    v = percentile(values, q)
    return round(v * 1000, 1) if v is not None else None


def _blocks(value: Any) -> list[tuple[str, int]]:
    """A row's message blocks (JSON text of [hash, chars] pairs); pairs of any other shape
    are left out."""
    try:
        pairs = json.loads(value) if isinstance(value, str) else []
    except (ValueError, RecursionError):
        return []
    return [(h, n) for h, n in (p for p in pairs if isinstance(p, list) and len(p) == 2)
            if isinstance(h, str) and token_count(n) is not None] if isinstance(pairs, list) else []


def summarise(rows: list[dict[str, Any]], by: str = "run") -> list[dict[str, Any]]:
    key = "lane" if by == "lane" else "run_id"
    seen: set[str] = set()
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: "earlier" is well defined
        g = groups.setdefault(str(row.get(key) or row["run_id"]), {
            "requests": 0, "errors": 0, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0,
            "ttft": [], "duration": [], "think": [], "answer_s": 0.0, "chars": 0,
            "reused_chars": 0, "profile": row.get("profile"), "run_id": row["run_id"]})
        start, first, end = (read_number(row.get(k)) for k in ("start", "first_byte", "end"))
        status = row.get("status")
        g["requests"] += 1
        if (isinstance(status, int) and status >= 400) or end is None:
            g["errors"] += 1
        g["tokens_in"] += token_count(row.get("prompt_tokens")) or 0
        g["tokens_out"] += token_count(row.get("completion_tokens")) or 0
        g["tokens_cached"] += token_count(row.get("cached_tokens")) or 0
        if start is not None and first is not None:
            g["ttft"].append(first - start)
        if start is not None and end is not None:
            g["duration"].append(end - start)
            # A non-streamed answer's first byte comes once it is all made: it was being
            # answered from the start (end - first byte read 200 000 tok/s for 100).
            plain = row.get("stream") is not None and not row.get("stream")
            g["answer_s"] += end - (start if first is None or plain else first)
        if (think := read_number(row.get("think_s"))) is not None:
            g["think"].append(think)
        reused = True
        for h, chars in _blocks(row.get("blocks")):
            g["chars"] += chars
            if reused and h in seen:
                g["reused_chars"] += chars
            else:
                reused = False
            seen.add(h)
    out = []
    for name, g in groups.items():
        out.append({
            by: name, "run_id": g["run_id"], "profile": g["profile"],
            "requests": g["requests"], "errors": g["errors"], "tokens_in": g["tokens_in"],
            "tokens_out": g["tokens_out"], "tokens_cached": g["tokens_cached"],
            "ttft_p50_ms": _ms(g["ttft"], 50), "ttft_p90_ms": _ms(g["ttft"], 90),
            "duration_p50_ms": _ms(g["duration"], 50), "duration_p90_ms": _ms(g["duration"], 90),
            "think_p50_s": round(percentile(g["think"], 50), 3) if g["think"] else None,
            "tok_s_out_answering": round(g["tokens_out"] / g["answer_s"], 2)
            if g["answer_s"] > 0 else None,
            "prefix_reuse": round(g["reused_chars"] / g["chars"], 4) if g["chars"] else None,
        })
    return out


def trace_rows(path: str | Path) -> list[dict[str, Any]]:
    """A trace file's requests as history rows (what `summarise` reads). Raises OSError,
    ValueError on a line that is not a JSON object."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except RecursionError:
                raise ValueError(f"line {n}: JSON nested too deep to read") from None
            if not isinstance(rec, dict):
                raise ValueError(f"line {n}: expected a JSON object")
            start = read_number(rec.get("start"))
            if start is None:
                start = (read_number(rec.get("timestamp")) or 0.0) / 1000.0
            ttft, duration = read_number(rec.get("ttft_s")), read_number(rec.get("duration_s"))
            # Mooncake's hash ids stand in for the message blocks: one block per id.
            ids = rec.get("hash_ids")
            blocks = rec.get("blocks") or [[str(i), 1] for i in
                                           (ids if isinstance(ids, list) else [])]
            timed = duration is not None
            out.append({
                "timed": timed, "request_id": rec.get("request_id") or str(n),
                "run_id": str(rec.get("run_id") or rec.get("lane") or "trace"),
                "lane": str(rec.get("lane") or "trace"), "profile": rec.get("profile"),
                "stream": rec.get("stream"),
                "start": start, "think_s": rec.get("think_s"), "status": rec.get("status"),
                "first_byte": None if ttft is None else start + ttft,
                "end": start + duration if timed else start,
                "prompt_tokens": rec.get("input_length"),
                "completion_tokens": rec.get("output_length"),
                "cached_tokens": rec.get("cached_tokens"), "blocks": json.dumps(blocks)})
    out.sort(key=lambda r: r["start"])
    return out


def summarise_trace(path: str | Path) -> list[dict[str, Any]]:
    """Per lane (agent or sub-agent) figures of a trace file. Durations are None where the
    trace has none (mooncake), not zero."""
    rows = trace_rows(path)
    groups = summarise(rows, by="lane")
    untimed = {r["lane"] for r in rows if not r["timed"]}
    for g in groups:
        if g["lane"] in untimed:
            g.update(duration_p50_ms=None, duration_p90_ms=None, tok_s_out_answering=None)
    return groups
