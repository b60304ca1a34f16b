"""Throughput against interactivity as characters: one labelled point per concurrency step.

InferenceX plots token throughput per GPU (up) against tokens per second per user (across);
each point here is a step of a replay sweep, drawn as its concurrency (1, 2, 4, …) so the curve
reads without colour. Points that fall in the same cell are listed beside the plot instead of
hiding each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from widgets.plot import number

Point = tuple[float, float, str]  # x, y, label


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _span(values: list[float]) -> tuple[float, float]:
    """The axis from a little below the least value (never below 0) to a little above the
    most, so close points are told apart; one value gets a range around it."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    return max(0.0, lo - pad), hi + pad


def curve(points: Sequence[tuple[object, object, str]], *, width: int, height: int,
          x_label: str, y_label: str) -> Text:
    """A scatter of `points` in a width x height character box with its axes' ranges;
    points without both figures are left out and counted."""
    usable: list[Point] = []
    for x, y, label in points:
        fx, fy = number(x), number(y)
        if fx is not None and fy is not None:
            usable.append((fx, fy, label))
    out = Text()
    out.append(f"{y_label} ↑\n", style="bold")
    if not usable:
        out.append("(no step has both figures)\n", style="dim")
        return out
    y_w = max(len(_fmt(v)) for v in _span([p[1] for p in usable]))
    width = max(10, width - y_w - 2)
    height = max(3, height)
    x_lo, x_hi = _span([p[0] for p in usable])
    y_lo, y_hi = _span([p[1] for p in usable])
    grid = [[" "] * width for _ in range(height)]
    crowded: list[str] = []
    for x, y, label in usable:
        col = min(width - 1, round((x - x_lo) / (x_hi - x_lo) * (width - 1)))
        row = height - 1 - min(height - 1, round((y - y_lo) / (y_hi - y_lo) * (height - 1)))
        start = min(col, width - len(label))
        if any(c != " " for c in grid[row][start:start + len(label)]):
            crowded.append(f"{label} at ({_fmt(x)}, {_fmt(y)})")
            continue
        grid[row][start:start + len(label)] = list(label)
    for i, cells in enumerate(grid):
        tick = _fmt(y_hi) if i == 0 else _fmt(y_lo) if i == height - 1 else ""
        out.append(f"{tick:>{y_w}} │")
        out.append("".join(cells), style="bold")
        out.append("\n")
    out.append(" " * y_w + " └" + "─" * width + "\n")
    left, right, middle = _fmt(x_lo), _fmt(x_hi), f"{x_label} →"
    gap = width - len(left) - len(right)
    out.append(" " * (y_w + 2) + left + (middle.center(gap) if gap > len(middle) + 2 else " " * gap) + right)
    if gap <= len(middle) + 2:
        out.append("\n" + " " * (y_w + 2) + middle)
    if crowded:
        out.append("\nalso: " + "; ".join(crowded), style="dim")
    skipped = len(points) - len(usable)
    if skipped:
        out.append(f"\n{skipped} step(s) without both figures are not drawn", style="dim")
    return out
