"""The workload benchmark: stored replay sweeps (`pilothouse replay`), one at a time.

The throughput-vs-interactivity curve (output tok/s per GPU against tok/s per user, one point
per concurrency step), then per step: TTFT p50/p90/p99, J per output token and $ per million
output tokens, with why a figure is n/a; then per agent (lane) of the replayed trace, as
recorded: requests, prompt / cached / output tokens, think time and TTFT p50. `[` and `]` go to an older or newer sweep, r reads the
results again. The results are read from replay.db in the person's data directory, as
`pilothouse replay-report` reads them (the replay runs in the person's own process, not the
daemon's).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Static

from console.tui.screens.base import PilotScreen, ScrollsBody, scroll_keys
from store.replay_results import sweeps
from widgets.curve import curve
from widgets.format import printable
from widgets.plot import number

SWEEPS_SHOWN = 20
STEP_COLUMNS = (  # figure, header, format
    ("concurrency", "conc", "{:.0f}"), ("requests", "reqs", "{:.0f}"), ("errors", "err", "{:.0f}"),
    ("tok_s_out_per_gpu", "tok/s/GPU", "{:,.1f}"), ("tok_s_per_user", "tok/s/user", "{:.1f}"),
    ("ttft_p50_ms", "TTFT p50", "{:,.0f}"), ("ttft_p90_ms", "p90", "{:,.0f}"),
    ("ttft_p99_ms", "p99", "{:,.0f}"), ("j_per_output_token", "J/tok", "{:.3f}"),
    ("usd_per_mtok", "$/Mtok", "{:.3f}"),
)

AGENT_COLUMNS = (  # figure, header, format (lane names are cut to fit 80 columns)
    ("requests", "reqs", "{:.0f}"), ("tokens_in", "in", "{:,.0f}"),
    ("tokens_cached", "cached", "{:,.0f}"), ("tokens_out", "out", "{:,.0f}"),
    ("think_p50_s", "think p50 s", "{:.1f}"), ("ttft_p50_ms", "TTFT p50", "{:,.0f}"),
    ("prefix_reuse", "reuse", "{:.0%}"),
)
LANE_WIDTH = 18


def cell(value: Any, fmt: str) -> str:
    v = number(value)
    return "n/a" if v is None else fmt.format(v)


def steps_table(steps: list[dict[str, Any]]) -> Table:
    table = Table(box=None, padding=(0, 0, 0, 1), show_edge=False, header_style="bold")
    for _, header, _ in STEP_COLUMNS:
        table.add_column(Text(header), justify="right", no_wrap=True)
    for step in steps:
        table.add_row(*(Text(cell(step.get(k), f)) for k, _, f in STEP_COLUMNS))
    return table


def lane_name(name: Any) -> str:
    """Cut in the middle: a lane is RUN/N, and N is what tells sub-agents apart."""
    text = printable(name)
    if len(text) <= LANE_WIDTH:
        return text
    tail = 6
    return text[:LANE_WIDTH - tail - 1] + "…" + text[-tail:]


def agents_table(agents: list[dict[str, Any]]) -> Table:
    table = Table(box=None, padding=(0, 0, 0, 1), show_edge=False, header_style="bold")
    table.add_column(Text("lane"), no_wrap=True)
    for _, header, _ in AGENT_COLUMNS:
        table.add_column(Text(header), justify="right", no_wrap=True)
    for agent in agents:
        table.add_row(Text(lane_name(agent.get("lane"))),
                      *(Text(cell(agent.get(k), f)) for k, _, f in AGENT_COLUMNS))
    return table


def missing_text(steps: list[dict[str, Any]]) -> Text:
    """Why a figure is n/a, once per figure (the sweep's steps share their reasons)."""
    wanted = {k for k, _, _ in STEP_COLUMNS}
    reasons: dict[str, str] = {}
    for step in steps:
        for key, why in (step.get("missing") or {}).items():
            if key in wanted:
                reasons.setdefault(key, str(why))
    text = Text(style="dim")
    for key, why in sorted(reasons.items()):
        text.append(f"{key}: n/a ({printable(why, 120)})\n")
    return text


class BenchScreen(ScrollsBody, PilotScreen):
    SCROLL_BODY = "#bench-body"
    BINDINGS = [
        Binding("left_square_bracket", "sweep(1)", "Older sweep", id="bench_older"),
        Binding("right_square_bracket", "sweep(-1)", "Newer sweep", id="bench_newer"),
        Binding("r", "reload", "Reload", id="bench_reload"),
        Binding("escape", "back", "Back", id="back"),
        *scroll_keys("bench"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sweeps: list[dict[str, Any]] = []
        self.index = 0
        self.loaded = False

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="bench-body", classes="panel"):
            yield Static(id="bench-head")
            yield Static(id="bench-curve")
            yield Static(id="bench-steps")
            yield Static(id="bench-agents")

    @property
    def db(self) -> Path | None:
        paths = self.ph.paths
        return paths.data_dir / "replay.db" if paths is not None else None

    def on_ready(self) -> None:
        self.query_one("#bench-body").border_title = "Workload benchmark"
        self.query_one("#bench-body").focus()
        self.action_reload()

    @work(group="bench", exclusive=True)
    async def action_reload(self) -> None:
        db = self.db
        try:
            found = await asyncio.to_thread(sweeps, db, None, SWEEPS_SHOWN) if db else []
        except Exception as exc:  # a damaged or locked file: say which, keep the screen
            self.ph.report(f"cannot read the replay results in {db}: {exc}\n"
                           "check the file, or run a new sweep: pilothouse replay TRACE ...")
            found = []
        self.sweeps, self.loaded = found, True
        self.index = min(self.index, max(0, len(found) - 1))
        self._show()

    def on_resize(self, event: Resize) -> None:
        if self.loaded:
            self._show()  # the curve is as wide as the screen

    def action_sweep(self, step: int) -> None:
        if not self.sweeps:
            return
        self.index = max(0, min(len(self.sweeps) - 1, self.index + step))
        self._show()

    def _show(self) -> None:
        head = self.query_one("#bench-head", Static)
        if not self.sweeps:
            head.update(Text(
                f"No replay results yet{f' in {self.db}' if self.db else ''}.\n"
                "Record a trace and replay it against a server, e.g.\n"
                "  pilothouse replay TRACE --url http://127.0.0.1:8000/v1 --model M\n"
                "then press r here.", style="dim"))
            self.query_one("#bench-curve", Static).update("")
            self.query_one("#bench-steps", Static).update("")
            self.query_one("#bench-agents", Static).update("")
            return
        sweep = self.sweeps[self.index]
        steps = list(sweep.get("steps") or [])
        self.sub_title = f"sweep {printable(sweep.get('sweep_id'))}"
        line = Text()
        line.append(f"sweep {printable(sweep.get('sweep_id'))}", style="bold")
        line.append(f" ({self.index + 1} of {len(self.sweeps)}; [ older, ] newer) ")
        when = sweep.get("ts")
        if isinstance(when, int | float):
            line.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(when)))
        line.append(f"\n{printable(sweep.get('model'))} at {printable(sweep.get('url'))}"
                    f" · trace {printable(sweep.get('trace'), 60)}")
        head.update(line)
        width = max(30, (self.size.width or 80) - 6)
        points = [(s.get("tok_s_per_user"), s.get("tok_s_out_per_gpu"), cell(s.get("concurrency"), "{:.0f}"))
                  for s in steps]
        self.query_one("#bench-curve", Static).update(curve(
            points, width=width, height=7, x_label="tok/s per user (interactivity)",
            y_label="output tok/s per GPU (one point per concurrency step)"))
        units = Text("TTFT in ms · J/tok: joules per output token (board energy) · $/Mtok: per "
                     "million output tokens (energy + GPU-hours)", style="dim")
        self.query_one("#bench-steps", Static).update(Group(steps_table(steps), units,
                                                            missing_text(steps)))
        agents = list(sweep.get("agents") or [])
        title = Text("Per agent (lane) in the replayed trace, as recorded", style="bold")
        self.query_one("#bench-agents", Static).update(Group(
            title, agents_table(agents), Text("in, cached, out: tokens · TTFT in ms", style="dim"))
            if agents else Text("\nNo per-agent figures for this sweep (replayed before they "
                                "were kept).", style="dim"))
