"""One-line and card widgets: the approvals banner, the link status, the GPU strip, the approval
card and the run header. Each takes plain data; none knows where it came from."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Static

from console.text import AGENT, DIFF, SUBJECT, cut, review_rows
from console.wrapping import Wrapped
from widgets.diff import styled_diff
from widgets.format import (
    LIVE_STATES,
    backend_text,
    clock,
    duration,
    printable,
    run_state_text,
    safe,
    size,
    style,
)
from widgets.plot import resample, sparkline
from widgets.tables import command_line, run_uptime, summary


def plain(renderable: RenderableType, width: int = 120) -> str:
    """What a renderable says, as plain text (kept by the widgets for tests and screen readers)."""
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    console.print(renderable)
    return console.export_text()


class Shows(Static):
    """A Static that remembers the plain text of what it shows last, and asks for a new layout
    only when its height changes (a layout pass costs far more than a repaint)."""

    shown: str = ""

    def show_renderable(self, renderable: RenderableType) -> None:
        text = plain(renderable, max(20, self.size.width or 120))
        if text == self.shown:
            return
        relayout = text.count("\n") != self.shown.count("\n") or not self.shown
        self.shown = text
        self.update(renderable, layout=relayout)


class ApprovalBanner(Shows):
    """Shown on every screen while anything waits: count, the oldest request, the key to open it."""

    _args: tuple[int, dict[str, Any] | None, float, str] | None = None

    def show(self, count: int, oldest: dict[str, Any] | None, *, now: float, key: str = "a") -> None:
        self._args = (count, oldest, now, key)
        if self.display != (count > 0):
            self.display = count > 0
        if not count or oldest is None:
            self.show_renderable("")
            return
        age = duration(now - float(oldest.get("created_at") or now))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" APPROVAL ", style="bold reverse")
        text.append(f" {count} pending · ", style="bold")
        text.append(f" {key} ", style="bold reverse")
        # What it is comes last: when the line is too narrow, the request's words are cut
        # (visibly), never its age, its run or the key to open it. At 60 columns the words
        # around them go first: the line wrapped into a row its height hides (review h198).
        width = self.size.width or 120
        run = printable(oldest.get("run_id"))
        words = f" opens · oldest {age} ago, run {run}: "
        if width - 2 - text.cell_len - len(words) < 12:
            words = f" · {age} · run {run}: "
        text.append(words)
        room = max(8, width - text.cell_len - 2)
        text.append(cut(f"{oldest.get('kind', '')} {summary(oldest)}", room), style="bold")
        self.show_renderable(text)

    def on_resize(self) -> None:
        if self._args is not None:  # drawn again with the room it has now
            count, oldest, now, key = self._args
            self.show(count, oldest, now=now, key=key)


class LinkStatus(Shows):
    """The connection to the daemon, in words. While it is down, two lines: the fix is kept.
    While the daemon refuses its config file (it keeps the old policy), that is said here too,
    with the file, the line and the reason, on every screen."""

    def show(self, connected: bool, text: str, config_error: dict[str, Any] | None = None) -> None:
        self.set_class(not connected, "-down")
        self.set_class(bool(config_error), "-config")
        line = Text()
        line.append("● " if connected else "○ ", style=style("green" if connected else "bold red"))
        line.append(printable(text))
        if config_error:
            line.append("\nCONFIG NOT LOADED, the old policy stays in force: ", style="bold")
            line.append(printable(config_error.get("reason") or config_error.get("text")))
            where = str(config_error.get("file") or "")
            if config_error.get("line"):
                where += f":{config_error['line']}"
            line.append("\nin ")
            line.append(tail(where, max(20, (self.size.width or 80) - 8)), style="bold")
            line.append(" · fix it and save (it reloads), or: pilothouse status")
        self.show_renderable(line)


def tail(text: str, limit: int) -> str:
    """The end of a long path, where its file name is, marked as cut at the front."""
    text = printable(text)
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1:]


def _num(gpu: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = gpu.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _missing(gpu: dict[str, Any], *names: str) -> bool:
    """A reading the daemon could not take: it sends "n/a: reason" in its place."""
    return any(isinstance(gpu.get(n), str) and str(gpu.get(n)).startswith("n/a") for n in names)


def gpu_line(gpu: dict[str, Any], spark: str = "", *, name: bool = True,
             compact: bool = False) -> str:
    """One GPU in a few words: power (and `spark`, its recent past), use, memory, heat.
    compact drops the words "util" and "mem"; a reading sent as "n/a: ..." shows as n/a."""
    parts = [f"GPU{gpu.get('index', '?')}"]
    if name and gpu.get("name"):
        parts.append(printable(gpu["name"], 24))
    if gpu.get("lost"):
        parts.append("LOST")
        return " ".join(parts)
    power = _num(gpu, "power_w")
    if power is None and (mw := _num(gpu, "power_mw")) is not None:
        power = mw / 1000
    if power is not None:
        parts.append(f"{power:.0f}W")
    elif _missing(gpu, "power_w"):
        parts.append("n/a W")
    if spark:
        parts.append(spark)
    util = _num(gpu, "util_gpu", "util", "utilization", "util_percent", "gpu_util")
    if util is not None:
        parts.append(f"{util:.0f}%" if compact else f"{util:.0f}% util")
    elif _missing(gpu, "util_gpu"):
        parts.append("n/a%" if compact else "util n/a")
    used_mib, total_mib = _num(gpu, "mem_used_mib"), _num(gpu, "mem_total_mib")
    if used_mib is not None and total_mib:
        used, total = used_mib * 2**20, total_mib * 2**20
    else:
        used = _num(gpu, "mem_used", "memory_used", "mem_used_bytes")
        total = _num(gpu, "mem_total", "memory_total", "mem_total_bytes")
    if used is not None and total:
        parts.append(f"{size(used)}/{size(total)}" if compact else f"mem {size(used)}/{size(total)}")
    elif _missing(gpu, "mem_used_mib", "mem_total_mib"):
        parts.append("mem n/a")
    temp = _num(gpu, "temp_c", "temp", "temperature")
    if temp is not None:
        parts.append(f"{temp:.0f}°C")
    elif _missing(gpu, "temp_c"):
        parts.append("n/a°C")
    return " ".join(parts)


STRIP_SPAN_S = 120.0  # the strip's sparkline: the last two minutes of power
STRIP_SPARK_W = 8


def power_spark(points: Any, gpu: dict[str, Any], now: float | None,
                width: int = STRIP_SPARK_W, span_s: float = STRIP_SPAN_S) -> str:
    """A GPU's recent power as eighth blocks, scaled to its power limit (blank: no sample)."""
    pts = [(float(t), float(v)) for t, v in points or ()]
    if not pts:
        return ""
    end = now if now is not None else pts[-1][0]
    values = resample(pts, end - span_s, end, width)
    if all(v is None for v in values):
        return ""
    top = max(v for v in values if v is not None)
    limit = _num(gpu, "power_limit_w")
    return sparkline(values, 0.0, max(limit or 0.0, top, 1.0))


class GpuStrip(Shows):
    """One line: each GPU's power (with a sparkline of the last two minutes), use, memory and
    heat; without a GPU, the daemon's status line saying why."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._args: tuple[Any, str, dict[str, Any], float | None] = (None, "", {}, None)

    def show(self, data: Any, note: str = "", *, power: dict[str, Any] | None = None,
             now: float | None = None) -> None:
        """data: the `gpu` op's answer or a gpu.sample event (or None and `note`, why not);
        power: GPU index -> [(ts, watts)], the recent past for the sparklines."""
        self._args = (data, note, dict(power or {}), now)
        gpus: list[dict[str, Any]] = []
        status = ""
        if isinstance(data, dict):
            raw = data.get("gpus")
            gpus = [g for g in raw if isinstance(g, dict)] if isinstance(raw, list) else []
            status = printable(data.get("status") or "")
            note = note or printable(data.get("reason") or data.get("note") or "")
        elif isinstance(data, list):
            gpus = [g for g in data if isinstance(g, dict)]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("GPU ", style="bold")
        if gpus:
            text.append(self._fit(gpus, power or {}, now))
        elif status:
            text.append(status, style="dim")
        else:
            text.append("no NVIDIA GPU" + (f" ({note})" if note else ""), style="dim")
        text.truncate(max(20, self.size.width or 120), overflow="ellipsis")  # one line, always
        self.show_renderable(text)

    def _fit(self, gpus: list[dict[str, Any]], power: dict[str, Any], now: float | None) -> str:
        """The most detail that fits the width: names, then the words, then sparkline width."""
        room = max(20, (self.size.width or 120) - len("GPU "))
        line = ""
        for name, compact, spark_w in ((True, False, STRIP_SPARK_W), (False, False, STRIP_SPARK_W),
                                       (False, True, STRIP_SPARK_W), (False, True, 5),
                                       (False, True, 0)):
            sparks = [power_spark(power.get(str(g.get("index"))), g, now, spark_w) if spark_w
                      else "" for g in gpus]
            line = " │ ".join(gpu_line(g, s, name=name, compact=compact)
                              for g, s in zip(gpus, sparks, strict=True))
            if len(line) <= room:
                break
        return line

    def on_resize(self) -> None:
        data, note, power, now = self._args
        if data is not None or note:
            self.show(data, note, power=power, now=now)


_REVIEW_STYLES = {"subject": "bold", "agent": "italic"}


def _row(table: Table, label: str, value: RenderableType) -> None:
    table.add_row(Text(label, style="bold"), value)


def review_grid(req: dict[str, Any], request: str) -> Table:
    """A request whole, as a person reviews it (console.text.review_rows), under its id line
    `request`: the approval card's body, and each request a wide scope would answer too."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    _row(grid, "request", safe(request))
    _row(grid, "run", safe(f"{req.get('run_id')}  profile {req.get('profile')}"))
    for row in review_rows(req):
        value: RenderableType = (styled_diff(row.value.split("\n")) if row.style == DIFF
                                 else Text(row.value, style=_REVIEW_STYLES.get(row.style, "")))
        # A space where the command breaks is drawn (review h162), and where the agent's input
        # breaks (a tool's input with no diff: a notebook cell's source, review h174).
        if row.style in (SUBJECT, AGENT):
            value = Wrapped(value)
        _row(grid, row.label, value)
    return grid


class ApprovalCard(Shows):
    """Everything about one request a person needs to decide it."""

    # The request it holds, and the one it held when the screen was last drawn: keys typed
    # ahead (one read from the terminal) are handled before the next layout and paint, so a
    # key can follow a change of request that was never on the screen. Each is the request's
    # `identity`: what the card shows of it, not only its id (a request listed again under
    # the same id with another command is another request).
    holds: tuple[Any, ...] | None = None
    drawn: tuple[Any, ...] | None = None
    drawn_at = 0.0  # when (monotonic) it was first drawn holding `drawn`
    # Told which of its rows each draw shows, with (the request, the width) they show it at.
    on_drawn: Callable[[Any, range], None] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        # Asked for its lines: the screen is being drawn with them, seen unless under a dialog.
        if self.screen.is_active:
            if self.drawn != self.holds:
                self.drawn, self.drawn_at = self.holds, time.monotonic()
            if self.on_drawn is not None:
                self.on_drawn((self.holds, self.size.width), range(crop.y, crop.bottom))
        return super().render_lines(crop)

    @staticmethod
    def identity(req: dict[str, Any]) -> tuple[Any, ...]:
        """The request as the card shows it (its id first), leaving out what moves with the
        clock or the queue (its age, its countdown, its place among the pending)."""
        return (str(req.get("id")), printable(req.get("run_id")), printable(req.get("profile")),
                str(req.get("created_at")),
                tuple((row.label, row.value, row.style) for row in review_rows(req)))

    def show(self, req: dict[str, Any] | None, *, now: float, expires_in: float | None,
             position: tuple[int, int] = (1, 1), timeout: float = 120.0) -> None:
        self.holds = None if req is None else self.identity(req)
        if req is None:
            self.show_renderable(Text("No request pending.", style="dim"))
            return
        grid = review_grid(req, f"{req.get('id')}  ({position[0]} of {position[1]} pending)")
        _row(grid, "asked", safe(f"{clock(req.get('created_at'))} ({duration(now - float(req.get('created_at') or now))} ago)"))
        _row(grid, "times out", countdown(expires_in, total=timeout))
        self.show_renderable(grid)


def countdown(expires_in: float | None, width: int = 20, total: float = 120.0) -> Text:
    """Seconds left as words and a bar: at zero the request is denied (timeout)."""
    if expires_in is None:
        return Text("-")
    left = max(0.0, expires_in)
    filled = int(round(width * min(1.0, left / max(total, 1.0))))
    bar = style("bold red" if left < 20 else "yellow" if left < 60 else "green")
    text = Text(f"in {duration(left)} ", style="bold")
    text.append("█" * filled, style=bar)
    text.append("░" * (width - filled), style="dim")
    text.append(" then denied (timeout)")
    return text


USAGE_SPARK_W = 16
USAGE_SPAN_S = 60.0  # the header's sparklines: the last minute
USAGE_HOLD_S = 4.0  # a poll stands for the columns after it this long (polls come every 1.5 s)


def usage_spark(points: Any, now: float, lo: float = 0.0, hi: float | None = None) -> str:
    """The recent past of one reading as eighth blocks (blank where no sample)."""
    pts = [(float(t), float(v)) for t, v in points or ()]
    if not pts:
        return ""
    values = resample(pts, now - USAGE_SPAN_S, now, USAGE_SPARK_W, USAGE_HOLD_S)
    seen = [v for v in values if v is not None]
    if not seen:
        return ""
    return sparkline(values, lo, max(hi or 0.0, max(seen), 1.0))


class RunHeader(Shows):
    """The run at the top of its detail screen: who and what, its resources with their last
    minute as sparklines, and its command (quoted, as a shell takes it)."""

    def show(self, run: dict[str, Any] | None, *, now: float, pending: int = 0, known: bool = True,
             cpu: Any = None, mem: Any = None) -> None:
        """known=False: the daemon is away, so a live run's state is unknown."""
        if run is None:
            self.show_renderable(Text("loading the run...", style="dim"))
            return
        stats = run.get("stats") or {}
        unknown = not known and run.get("state") in LIVE_STATES
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(printable(run.get("id")), style="bold")
        line.append(f"  {printable(run.get('profile'))}  ")
        line.append_text(backend_text(run.get("backend")))
        line.append("  ")
        if unknown:
            line.append("unknown (daemon away)", style=style("bold yellow"))
        else:
            line.append_text(run_state_text(run))
            line.append(f"  up {duration(run_uptime(run, now))}")
        if pending:
            line.append(f"  {pending} approval(s) pending", style=style("bold yellow"))
        usage = Text(no_wrap=True, overflow="ellipsis")
        if not unknown and run.get("state") in LIVE_STATES:
            if stats.get("cpu_percent") is not None:
                usage.append(f"cpu {stats['cpu_percent']:>3.0f}% ")
                usage.append(usage_spark(cpu, now, hi=100.0).ljust(USAGE_SPARK_W))
            if stats.get("rss_bytes"):
                usage.append(f"  mem {size(stats['rss_bytes']):>5} ")
                usage.append(usage_spark(mem, now).ljust(USAGE_SPARK_W))
            if stats.get("pids"):
                usage.append(f"  pids {stats['pids']}")
        elif run.get("warning"):  # the row is not the record: say so where the usage would be
            usage.append(printable(f"(!) {run['warning']}: the file was edited; `pilothouse "
                                   "report RUN` shows the recorded events", 300),
                         style=style("bold red"))
        else:
            usage.append(printable(f"workspace {run.get('workspace') or '-'}", 300), style="dim")
        command = Text(printable(f"$ {command_line(run)}", 300), style="dim", no_wrap=True,
                       overflow="ellipsis")
        self.show_renderable(Group(line, usage, command))
