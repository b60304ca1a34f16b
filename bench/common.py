"""What every bench script shares: percentiles, and one way to print and hand over its rows.

A row is a figure beside its anchor, measured in the same run. Scripts print a table for
people; with --json (or when run by bench/all.py) they also write their rows as JSON to the
file named by PILOTHOUSE_BENCH_OUT, so `make bench` can print one table of everything.

A target, where the issue names one, is a short string the table checks against the row:
"<= 20 ms" (the value itself), "<= +30 ms" (the value minus its anchor), ">= 0.5x" or
"<= 1.2x" (value over anchor). Anything else is shown as written, unchecked.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    anchor: str
    anchor_value: float
    target: str = ""  # e.g. "<= +30 ms", ">= 0.5x", "<= 20 ms"

    @property
    def ratio(self) -> float:
        return self.value / self.anchor_value if self.anchor_value else float("inf")

    @property
    def met(self) -> bool | None:
        """Whether the row meets its target; None where there is none or it cannot be read."""
        return target_met(self.target, self.value, self.anchor_value)


_TARGET = re.compile(r"(<=|>=|≤|≥|<|>)\s*(\+)?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s*(x|×)?(?![a-z])")


def as_installed(env: dict[str, str]) -> dict[str, str]:
    """`env` as an installed Pilothouse runs: with bytecode. A pip install compiles the package;
    an editable one writes .pyc on first import unless PYTHONDONTWRITEBYTECODE is set (it is in
    some CI and agent shells), and then every start compiles every module again."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def installed_layout(where: Path, program: str) -> tuple[str, str]:
    """(python, pilothouse) of a throwaway venv where the package and its dependencies are on
    sys.path by .pth lines only, as after `pip install pilothouse`; its launcher is `program`'s
    script (the one pip wrote into the development venv) under the new interpreter.

    Why: a development venv may hold an editable install made in setuptools' default mode,
    whose import finder runs in every Python start (pathlib, re: about 7-9 ms here), an
    anchor's `python -c pass` included; the anchor would then carry imports no installed
    program pays and a ratio would read low. (`make setup` asks for a plain .pth line.)"""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next((where / "lib").glob("python3*/site-packages"))
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    root = Path(__file__).resolve().parents[1]
    (site / "pilothouse-paths.pth").write_text(f"{root}\n{deps}\n")
    python = str(where / "bin" / "python")
    launcher = where / "bin" / "pilothouse"
    script = Path(program).read_text().split("\n", 1)[1]
    launcher.write_text(f"#!{python}\n{script}")
    launcher.chmod(0o755)
    return python, str(launcher)


def target_met(target: str, value: float, anchor_value: float) -> bool | None:
    m = _TARGET.search(target or "")
    if m is None or math.isnan(value):
        return None
    op, added, number, times = m.groups()
    bound = float(number.replace(",", ""))
    if times:
        if not anchor_value:
            return None
        x = value / anchor_value
    elif added:
        x = value - anchor_value
    else:
        x = value
    return {"<=": x <= bound, "≤": x <= bound, "<": x < bound,
            ">=": x >= bound, "≥": x >= bound, ">": x > bound}[op]


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fmt_value(x: float, unit: str = "") -> str:
    """A number people can read at a glance: 252,344 /s, 886.9 MB/s, 0.57 ms, 0.012 %."""
    if x is None or math.isnan(x):
        text = "n/a"
    elif math.isinf(x):
        text = "inf"
    elif abs(x) >= 1000:
        text = f"{x:,.0f}"
    elif abs(x) >= 100:
        text = f"{x:.1f}"
    elif abs(x) >= 1 or x == 0:
        text = f"{x:.2f}"
    else:
        text = f"{x:.3g}" if abs(x) < 0.001 else f"{x:.3f}"
    return f"{text} {unit}".rstrip()


def _cells(r: Row) -> tuple[str, ...]:
    ratio = f"{r.ratio:.2f}x" if math.isfinite(r.ratio) else "-"
    met = r.met
    target = r.target + ("" if met is None else (" met" if met else " NOT met"))
    return (r.figure, fmt_value(r.value, r.unit), r.anchor, fmt_value(r.anchor_value, r.unit),
            ratio, target)


def format_sections(sections: list[tuple[str, list[Row]]], title: str = "") -> str:
    """One table, columns aligned across every section; each section under its own heading."""
    head = ("figure", "value", "anchor (measured in the same run)", "value", "ratio", "target")
    cells = [[_cells(r) for r in rows] for _, rows in sections]
    every = [head] + [c for group in cells for c in group]
    widths = [max(len(c[i]) for c in every) for i in range(5)]
    align = ("<", ">", "<", ">", ">")

    def line(c: tuple[str, ...]) -> str:
        return ("  ".join(f"{c[i]:{align[i]}{widths[i]}}" for i in range(5)) + "  " + c[5]).rstrip()

    lines = [title] if title else []
    lines.append(line(head))
    for (heading, _), group in zip(sections, cells, strict=True):
        if heading and len(sections) > 1:
            lines.append(f"-- {heading}")
        lines.extend(line(c) for c in group)
    return "\n".join(lines)


def format_rows(rows: list[Row], title: str = "") -> str:
    return format_sections([("", rows)], title)


def emit(rows: list[Row], title: str = "") -> None:
    """Print the table; also append the rows as JSON lines where bench/all.py asks for them."""
    print(format_rows(rows, title), flush=True)
    out = os.environ.get("PILOTHOUSE_BENCH_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            for r in rows:
                ratio = r.ratio if math.isfinite(r.ratio) else None
                f.write(json.dumps({**asdict(r), "ratio": ratio, "met": r.met, "script": title})
                        + "\n")
