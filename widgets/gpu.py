"""GPU widgets: readings per GPU (like nvidia-smi), figures per agent, and character plots of
the recent past. Plain data in: the `gpu` op's answer and gpu.sample events as the daemon sends
them, where a reading that could not be taken is the string "n/a: reason".

The plots are characters only (eighth blocks), so they read the same without colour (NO_COLOR)
and in any terminal: a column with no sample is blank, a sample is at least one eighth high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.events import Resize

from widgets.format import printable, safe, style
from widgets.keyed_table import Column, KeyedTable
from widgets.panels import Shows
from widgets.plot import bars, number, resample

Points = Sequence[tuple[float, float]]


def reading(value: Any, fmt: str = "{:.0f}", unit: str = "") -> str:
    """A reading as a person reads it: the number with its unit, or n/a."""
    v = number(value)
    return "n/a" if v is None else fmt.format(v) + unit


def figure(value: Any) -> str:
    """A derived figure (tokens/s, J): few characters, enough digits."""
    v = number(value)
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.01:
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return f"{v:.2g}"


def money(value: Any) -> str:
    v = number(value)
    if v is None:
        return "n/a"
    return f"{v:.2f}" if v >= 100 else f"{v:.4f}" if v >= 1 else f"{v:.6f}"


# --- plots -----------------------------------------------------------------------------------


@dataclass
class PlotSeries:
    """One plotted quantity: its points (ts, value), unit, and scale from `lo` to `hi` (None:
    the span's maximum; a value above `hi` raises it)."""

    label: str
    points: Points
    unit: str = ""  # appended as is: " W", "%"
    lo: float = 0.0
    hi: float | None = None
    colour: str = ""
    integer: bool = False  # show values as whole numbers (watts, percent)


def span_words(seconds: float) -> str:
    if seconds % 60 == 0 and seconds >= 60:
        minutes = int(seconds // 60)
        return f"{minutes} min"
    return f"{seconds:.0f} s"


def _value(series: PlotSeries, v: float) -> str:
    return f"{v:.0f}" if series.integer else figure(v)


class GpuPlots(Shows):
    """One character plot per series over the same time span, newest on the right. Each series
    gets as many rows as the height allows (one row: a sparkline), a label and its latest value,
    and its maximum in the span."""

    LABEL_W = 11
    HOLD_S = 15.0  # a sample stands for the columns after it for this long (then: a gap)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._args: tuple[list[PlotSeries], float, float, int | None] | None = None
        self.columns = 0  # plot width last drawn, in characters
        self.rows = 1  # rows per series last drawn
        self.charts: dict[str, list[str]] = {}  # label -> the plot's rows last drawn (tests)

    def show(self, series: list[PlotSeries], *, now: float, span_s: float,
             rows: int | None = None) -> None:
        """`rows`: rows per series (None: fit the height given by the parent)."""
        self._args = (series, now, span_s, rows)
        self._draw()

    def on_resize(self, event: Resize) -> None:
        self._draw()

    def redraw(self) -> None:
        self._draw()

    def seconds_per_column(self) -> float:
        if self._args is None or not self.columns:
            return 0.0
        return self._args[2] / self.columns

    def _draw(self) -> None:
        if self._args is None:
            return
        series, now, span_s, rows = self._args
        width = self.size.width
        if not width:
            return  # not laid out yet: drawn on the first resize, at the width it has
        if not series:
            self.show_renderable(Text("nothing to plot yet", style="dim"))
            return
        if rows is None:
            parent = self.parent
            room = getattr(parent, "scrollable_content_region", None)
            avail = room.height if room is not None and room.height else len(series)
            rows = max(1, min(6, avail // len(series)))
        start = now - span_s
        stats = []
        for s in series:
            values = [v for t, v in s.points if start <= t <= now + 5.0]
            latest = s.points[-1][1] if s.points and s.points[-1][0] >= start else None
            top = max(values) if values else None
            now_text = "n/a" if latest is None else f"{_value(s, latest)}{s.unit}"
            max_text = "" if top is None else f"max {_value(s, top)}"
            stats.append((now_text, max_text, top))
        right_w = max(len(a) + (1 + len(b) if rows == 1 and b else 0) for a, b, _ in stats)
        right_w = max(right_w, max(len(b) for _, b, _ in stats))
        plot_w = max(4, width - self.LABEL_W - right_w - 2)
        self.columns, self.rows, self.charts = plot_w, rows, {}
        text = Text(no_wrap=True, overflow="crop")
        for i, (s, (now_text, max_text, top)) in enumerate(zip(series, stats, strict=True)):
            hi = s.hi if s.hi is not None else (top if top and top > s.lo else s.lo + 1.0)
            if s.hi is not None and top is not None and top > s.hi:
                hi = top
            chart = self.charts[s.label] = bars(
                resample(s.points, start, now, plot_w, self.HOLD_S), s.lo, hi, rows)
            for r, line in enumerate(chart):
                if i or r:
                    text.append("\n")
                label = printable(s.label, self.LABEL_W - 1) if r == 0 else ""
                text.append(label.ljust(self.LABEL_W), style="bold" if r == 0 else "")
                text.append(line, style=style(s.colour) if s.colour else "")
                if rows == 1:
                    right = f"{now_text} {max_text}".rstrip()
                else:
                    right = now_text if r == 0 else max_text if r == 1 else ""
                text.append(" " + right.rjust(right_w) if right else "")
        self.show_renderable(text)


class PlotPanel(VerticalScroll):
    """Holds the plots; when its height changes (a banner shows, the terminal grows) the plots
    are drawn again with as many rows per series as now fit, and scroll when they do not."""

    def on_resize(self, event: Resize) -> None:
        for plots in self.query(GpuPlots):
            plots.redraw()


# --- tables ----------------------------------------------------------------------------------


def _short_name(name: Any) -> str:
    text = printable(name or "-")
    return text.removeprefix("NVIDIA ") if text.startswith("NVIDIA ") else text


def _pair(a: Any, b: Any) -> str:
    """used/total, sm/mem: n/a once when neither could be read."""
    if number(a) is None and number(b) is None:
        return "n/a"
    return f"{reading(a)}/{reading(b)}"


class GpuTable(KeyedTable):
    """Per GPU, like nvidia-smi: power/limit, use, memory, heat, clocks; LOST when it fell off."""

    COLUMNS = (Column("gpu", "GPU", 6, priority=100), Column("name", "NAME", 16, priority=40, min=10),
               Column("power", "POWER W", 9, priority=90), Column("util", "UTIL", 4, priority=85),
               Column("mem", "MEM MiB", 11, priority=80), Column("temp", "TEMP", 5, priority=60),
               Column("clocks", "SM/MEM MHz", 10, priority=30))

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.show_cursor = False  # readings, nothing to choose

    def put_gpu(self, gpu: dict[str, Any]) -> None:
        index = gpu.get("index", "?")
        lost = bool(gpu.get("lost"))
        ident = Text(f"{index} LOST", style=style("bold red reverse")) if lost else Text(str(index), style="bold")
        power = reading(gpu.get("power_w"))
        limit = number(gpu.get("power_limit_w"))
        cells: list[str | Text] = [
            ident, safe(_short_name(gpu.get("name"))),
            power + (f"/{limit:.0f}" if limit is not None else ""),
            reading(gpu.get("util_gpu"), unit="%"),
            _pair(gpu.get("mem_used_mib"), gpu.get("mem_total_mib")),
            reading(gpu.get("temp_c"), unit="°C"),
            _pair(gpu.get("sm_clock_mhz"), gpu.get("mem_clock_mhz")),
        ]
        self.put(str(index), cells, f"{index} {gpu.get('name')} {'lost' if lost else ''}")


class GpuRunsTable(KeyedTable):
    """Per agent: throughput, energy per token, totals, cost, and the GPU memory it holds."""

    COLUMNS = (Column("run", "RUN", 5, priority=100), Column("tok_s", "TOK/S", 6, priority=90),
               Column("j_per_token", "J/TOKEN", 7, priority=85),
               Column("tokens_in", "TOKENS IN", 9, priority=50),
               Column("tokens_out", "TOKENS OUT", 10, priority=55),
               Column("energy", "ENERGY J", 8, priority=60), Column("cost", "COST $", 8, priority=70),
               Column("mem", "GPU MiB", 7, priority=40))

    def put_run(self, run_id: str, row: dict[str, Any], profile: str | None = None) -> None:
        mem = number(row.get("gpu_memory_mib"))
        cells: list[str | Text] = [
            safe(run_id, "bold"), figure(row.get("tok_s")), figure(row.get("j_per_token")),
            reading(row.get("total_tokens_in", 0)), reading(row.get("total_tokens_out", 0)),
            reading(row.get("total_energy_j"), "{:.1f}"), money(row.get("total_cost_usd")),
            "-" if mem is None else f"{mem:.0f}",
        ]
        self.put(run_id, cells, f"{run_id} {profile or ''}")


# --- lines -----------------------------------------------------------------------------------


def status_text(snap: dict[str, Any] | None, note: str = "") -> Text:
    """The daemon's GPU status line; without a GPU it says why and that tokens still count."""
    if not snap:
        return Text(printable(f"no GPU data: {note}" if note else "no GPU data yet"),
                    style=style("bold yellow"))
    status = printable(snap.get("status") or "GPU status unknown")
    line = Text()
    if not snap.get("available"):
        line.append(status, style=style("bold yellow"))
        line.append(" · tokens are still counted", style="dim")
        return line
    gpus = snap.get("gpus") if isinstance(snap.get("gpus"), list) else []
    lost = any(isinstance(g, dict) and g.get("lost") for g in gpus)
    line.append(status, style=style("bold red") if lost else "bold")
    hz = number(snap.get("hz"))
    if hz:
        line.append(f" · sampled at {hz:g} Hz", style="dim")
    if not gpus:
        line.append(" · no readings in the last sample", style=style("bold yellow"))
    return line


def live_text(live: Any, span_s: Any = None) -> Text:
    """The live totals over the last span, from board power: tokens/s, W, J/token, $/Mtok."""
    live = live if isinstance(live, dict) else {}
    span = number(span_s)
    usd = number(live.get("usd_per_mtok"))
    line = Text()
    line.append("board power" + (f", {span:.0f} s" if span else "") + ": ", style="bold")
    line.append(f"{figure(live.get('tok_s'))} tok/s", style="bold")
    line.append(f" ({figure(live.get('tok_s_out'))} out) · ")
    line.append(f"{reading(live.get('watts'))} W", style="bold")
    line.append(" · ")
    line.append(f"{figure(live.get('j_per_token'))} J/token", style="bold")
    line.append(f" · ${figure(usd)}/Mtok" if usd is not None else " · $/Mtok n/a")
    return line
