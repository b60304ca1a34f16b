"""Character plots: time series averaged into columns, drawn with eighth blocks.

Characters only, no colour needed (NO_COLOR reads the same): a column with no sample is blank,
a sample is at least one eighth high, so zero differs from no data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

BLOCKS = " ▁▂▃▄▅▆▇█"


def number(value: Any) -> float | None:
    """A reading as a float; None for "n/a: reason", missing, bools and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def resample(points: Iterable[tuple[float, float]], start: float, end: float, width: int,
             hold_s: float = 0.0) -> list[float | None]:
    """Points in [start, end] averaged into `width` equal columns; None where a column has none.
    A point a little past `end` (the daemon's clock ahead of ours) lands in the last column. An
    empty column that starts within `hold_s` of the last point before it shows that point (the
    columns are narrower than the time between samples), so only longer gaps show blank."""
    width = max(0, width)
    span = end - start
    if width == 0 or span <= 0:
        return [None] * width
    sums, counts = [0.0] * width, [0] * width
    last: list[tuple[float, float] | None] = [None] * width
    for ts, value in points:
        if ts < start or ts > end + 5.0:
            continue
        i = min(width - 1, int((ts - start) / span * width))
        sums[i] += value
        counts[i] += 1
        if last[i] is None or ts >= last[i][0]:  # type: ignore[index]
            last[i] = (ts, value)
    out: list[float | None] = []
    held: tuple[float, float] | None = None
    for i in range(width):
        if counts[i]:
            out.append(sums[i] / counts[i])
            held = last[i]
        elif held is not None and start + i * span / width - held[0] <= hold_s:
            out.append(held[1])
        else:
            out.append(None)
    return out


def bars(values: Sequence[float | None], lo: float, hi: float, height: int = 1) -> list[str]:
    """A bar chart `height` rows high (top row first), eight levels a row. Blank where there is
    no value; a value at or below `lo` still shows one eighth, so zero differs from no data."""
    height = max(1, height)
    levels = height * 8
    rows = [[" "] * len(values) for _ in range(height)]
    for x, v in enumerate(values):
        if v is None:
            continue
        frac = 0.0 if hi <= lo else (min(max(v, lo), hi) - lo) / (hi - lo)
        n = max(1, round(frac * levels))
        for r in range(height):  # r = 0 is the bottom row
            rows[height - 1 - r][x] = BLOCKS[min(8, max(0, n - 8 * r))]
    return ["".join(row) for row in rows]


def sparkline(values: Sequence[float | None], lo: float, hi: float) -> str:
    return bars(values, lo, hi, 1)[0]
