"""Per agent figures of a recorded trace: what each run and lane asked of the server.

Per group (a run, or a lane with by="lane"): requests, prompt / output / cached tokens, TTFT
and duration p50/p90 as the agent saw them through the gate, think time p50, output tok/s
while answering, and prefix reuse: the share of the prompt (in recorded characters) whose
blocks an earlier request of any lane had already sent. The hashes chain, so a block seen
before means the whole prefix up to it was the same.
"""

from __future__ import annotations

import json
from typing import Any

from console.replay.figures import percentile


def _ms(values: list[float], q: float) -> float | None:
    v = percentile(values, q)
    return round(v * 1000, 1) if v is not None else None


def summarise(rows: list[dict[str, Any]], by: str = "run") -> list[dict[str, Any]]:
    key = "lane" if by == "lane" else "run_id"
    seen: set[str] = set()
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: "earlier" is well defined
        g = groups.setdefault(str(row.get(key) or row["run_id"]), {
            "requests": 0, "errors": 0, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0,
            "ttft": [], "duration": [], "think": [], "answer_s": 0.0, "chars": 0,
            "reused_chars": 0, "profile": row.get("profile"), "run_id": row["run_id"]})
        g["requests"] += 1
        if (row.get("status") or 0) >= 400 or row.get("end") is None:
            g["errors"] += 1
        g["tokens_in"] += row.get("prompt_tokens") or 0
        g["tokens_out"] += row.get("completion_tokens") or 0
        g["tokens_cached"] += row.get("cached_tokens") or 0
        if row.get("first_byte"):
            g["ttft"].append(row["first_byte"] - row["start"])
        if row.get("end"):
            g["duration"].append(row["end"] - row["start"])
            g["answer_s"] += row["end"] - (row.get("first_byte") or row["start"])
        if row.get("think_s") is not None:
            g["think"].append(row["think_s"])
        reused = True
        for h, chars in json.loads(row.get("blocks") or "[]"):
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
