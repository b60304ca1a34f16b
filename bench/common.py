"""What every bench script shares: percentiles, and one way to print and hand over its rows.

A row is a figure beside its anchor, measured in the same run. Scripts print a table for
people; with --json (or when run by bench/all.py) they also write their rows as JSON to the
file named by PILOTHOUSE_BENCH_OUT, so `make bench` can print one table of everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    anchor: str
    anchor_value: float
    target: str = ""  # e.g. "<= 30 ms added", ">= 0.5x"

    @property
    def ratio(self) -> float:
        return self.value / self.anchor_value if self.anchor_value else float("inf")


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def format_rows(rows: list[Row], title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'figure':46} {'value':>12}  {'anchor':34} {'value':>12} {'ratio':>7}  target")
    for r in rows:
        lines.append(
            f"{r.figure[:46]:46} {r.value:>10.2f}{r.unit[:2]:>2}  {r.anchor[:34]:34} "
            f"{r.anchor_value:>10.2f}{r.unit[:2]:>2} {r.ratio:>6.2f}x  {r.target}"
        )
    return "\n".join(lines)


def emit(rows: list[Row], title: str = "") -> None:
    """Print the table; also append the rows as JSON lines where bench/all.py asks for them."""
    print(format_rows(rows, title), flush=True)
    out = os.environ.get("PILOTHOUSE_BENCH_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({**asdict(r), "ratio": r.ratio, "script": title}) + "\n")
