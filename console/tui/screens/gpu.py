"""The GPU screen: each GPU like nvidia-smi, plots of the last minutes, and per agent tokens/s,
J/token, totals and cost.

Fed from the app's state (the `gpu` op's answer at attach and on opening, then every gpu.sample
event); the history is the state's, so leaving and opening the screen loses nothing. Without a
GPU the daemon's status line says why, and tokens/s per agent still show.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import DataTable, Static

from console.client.sync import ClientError
from console.tui.screens.base import PilotScreen
from console.tui.state import Change
from widgets.gpu import (
    GpuPlots,
    GpuRunsTable,
    GpuTable,
    PlotPanel,
    PlotSeries,
    live_text,
    span_words,
    status_text,
)
from widgets.panels import Shows
from widgets.plot import number

SPANS = (600.0, 300.0, 60.0)  # what z cycles through; the state keeps GPU_HISTORY_S (600 s)


class GpuScreen(PilotScreen):
    BINDINGS = [
        Binding("z", "zoom", "Zoom", id="gpu_zoom"),
        Binding("ctrl+r", "reload", "Refresh", id="gpu_reload"),
        Binding("escape", "back", "Back", id="back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.span_s = SPANS[0]

    def compose_body(self) -> Iterable[Widget]:
        yield Shows(id="gpu-status")
        yield GpuTable(id="gpu-table")
        yield Shows(id="gpu-live")
        with PlotPanel(id="gpu-plots-panel", classes="panel"):
            yield GpuPlots(id="gpu-plots")
        with Container(id="gpu-runs-panel", classes="panel"):
            yield Static("", id="gpu-runs-empty", classes="empty")
            yield GpuRunsTable(id="gpu-runs")

    # --- filling -------------------------------------------------------------------------------

    def on_ready(self) -> None:
        self.sub_title = "gpu"
        self._show()
        self.query_one(GpuRunsTable).focus()
        self.load()

    @work(group="gpu", exclusive=True)
    async def load(self) -> None:
        """A fresh `gpu` answer (it also has the per-run GPU memory and the energy totals)."""
        state = self.ph.state
        try:
            snap = await self.ph.source.call("gpu")
        except ClientError as exc:
            if exc.code not in ("unknown-op", "unknown_op"):
                self.ph.report(exc, title="GPU")
            elif state.gpu is None:
                for change in state.load_gpu(None, "this daemon does not report GPUs yet"):
                    self.ph.changes.publish(change)
            return
        for change in state.load_gpu(snap):
            self.ph.changes.publish(change)

    def on_change(self, change: Change) -> None:
        if change.topic in ("gpu", "reset"):
            self._show()

    def on_tick(self, now: float) -> None:
        self._plots()  # the time axis moves on even when no sample comes

    def _snap(self) -> dict[str, Any]:
        gpu = self.ph.state.gpu
        return gpu if isinstance(gpu, dict) else {}

    def _show(self) -> None:
        state = self.ph.state
        snap = self._snap()
        self.query_one("#gpu-status", Shows).show_renderable(status_text(snap or None, state.gpu_note))
        gpus = [g for g in snap.get("gpus") or [] if isinstance(g, dict)]
        table = self.query_one(GpuTable)
        shown = set()
        for gpu in gpus:
            table.put_gpu(gpu)
            shown.add(str(gpu.get("index", "?")))
        for key in table.keys():
            if key not in shown:
                table.drop(key)
        table.display = bool(gpus)
        self.query_one("#gpu-live", Shows).show_renderable(
            live_text(snap.get("live"), snap.get("live_span_s")))
        self._plots()
        self._runs()

    def _plots(self) -> None:
        history = self.ph.state.gpu_history
        limits = {str(g.get("index")): number(g.get("power_limit_w"))
                  for g in self._snap().get("gpus") or [] if isinstance(g, dict)}
        series: list[PlotSeries] = []
        for key in sorted(history.power, key=int):
            series.append(PlotSeries(f"GPU{key} power", history.power[key].points(), " W",
                                     hi=limits.get(key), colour="yellow", integer=True))
            series.append(PlotSeries(f"GPU{key} util", history.util[key].points(), "%",
                                     hi=100.0, colour="green", integer=True))
        series.append(PlotSeries("tokens/s", history.tok_s.points(), colour="cyan"))
        series.append(PlotSeries("J/token", history.j_per_token.points(), colour="magenta"))
        plots = self.query_one(GpuPlots)
        plots.show(series, now=self.ph.now(), span_s=self.span_s)
        title = f"History, last {span_words(self.span_s)}"
        if plots.seconds_per_column():
            title += f" · 1 column ≈ {plots.seconds_per_column():.0f} s"
        self.query_one("#gpu-plots-panel").border_title = title

    def _runs(self) -> None:
        state = self.ph.state
        rows = state.gpu_runs()
        table = self.query_one(GpuRunsTable)
        for run_id in sorted(rows):
            profile = (state.runs.get(run_id) or {}).get("profile")
            table.put_run(run_id, rows[run_id], profile)
        for key in table.keys():
            if key not in rows:
                table.drop(key)
        panel = self.query_one("#gpu-runs-panel")
        panel.border_title = f"Agents ({len(rows)}): energy is board power shared by tokens"
        empty = self.query_one("#gpu-runs-empty", Static)
        if empty.display != (not rows):
            empty.display = not rows
            table.display = bool(rows)
            empty.update(Text("No agent has reported tokens yet. Runs that call a model through "
                              "the gate show here with tokens/s, J/token and cost.", style="dim"))

    # --- keys ----------------------------------------------------------------------------------

    def action_zoom(self) -> None:
        self.span_s = SPANS[(SPANS.index(self.span_s) + 1) % len(SPANS)]
        self._plots()

    def action_reload(self) -> None:
        self.load()

    @on(DataTable.RowSelected, "#gpu-runs")
    def _open(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key and key in self.ph.state.runs:
            self.ph.open_run(key)
        elif key:
            self.notify(f"Run {key} is not among the runs this console knows.", severity="warning")
