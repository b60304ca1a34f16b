"""The GPU screen and the dashboard's GPU strip.

- against the real daemon (no NVIDIA GPU here): `g` and the palette open the screen, which shows
  the daemon's status line and stays usable;
- fed by the real GpuService driven by the scripted fake NVML (2 GPUs, 2 runs): the readings,
  the per-agent table (keyed, changed cell by cell) and the plots;
- SVG snapshots of fixed data shaped exactly like the `gpu` op's answer, at a frozen time.

Update the snapshots after an intended change with:
.venv/bin/pytest tests/tui/test_gpu.py --snapshot-update
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest
from textual.pilot import Pilot

from console.client.sync import ClientError
from console.config.load import Config
from console.daemon.bus import Bus
from console.daemon.runs import Run
from console.gpu import GpuService
from console.tui.app import PilothouseApp
from console.tui.link import Connected, DaemonEvent, Post
from console.tui.screens.gpu import GpuScreen
from console.tui.screens.run_detail import RunScreen
from console.tui.state import GPU_HISTORY_S, ConsoleState, Series
from store.writer import StoreWriter
from tests.conftest import Daemon
from tests.gpu.fake_nvml import GiB, two_gpus
from tests.tui.conftest import attached, make_app, wait_for
from tests.tui.fixed import HELLO, NOW, PROFILES, FixedSource
from widgets.gpu import GpuPlots, GpuRunsTable, GpuTable
from widgets.panels import GpuStrip, gpu_line
from widgets.plot import BLOCKS, bars, resample, sparkline

pytestmark = pytest.mark.usefixtures("utc")  # fixed times render the same everywhere

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40"),
         pytest.param((200, 50), id="200x50")]

# --- fixed data, shaped like GpuService.snapshot() and its gpu.sample events ------------------


def gpu_dict(index: int, *, power: float | str, util: int | str, mem_used: float,
             run_memory: dict[str, float], lost: bool = False, temp: int | str = 45,
             procs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    gone = "n/a: GpuIsLost"
    return {
        "index": index, "name": "NVIDIA H100 80GB HBM3",
        "uuid": f"GPU-{index:08x}-fixed-4000-8000-{index:012x}", "lost": lost,
        "power_w": gone if lost else power, "energy_counter_j": gone if lost else 5000.0 + index,
        "util_gpu": gone if lost else util, "util_mem": gone if lost else 20,
        "mem_used_mib": gone if lost else mem_used, "mem_total_mib": gone if lost else 81559.0,
        "temp_c": gone if lost else temp, "sm_clock_mhz": gone if lost else 1980,
        "mem_clock_mhz": gone if lost else 2619, "power_limit_w": gone if lost else 700.0,
        "procs": procs or [], "run_memory_mib": run_memory,
    }


def live_dict(tok_s: float, watts: float) -> dict[str, Any]:
    if not tok_s:
        why = "n/a: no output tokens in the window"
        return {"tokens_in": 0, "tokens_out": 0, "seconds": 30.0, "tok_s_out": 0.0, "tok_s": 0.0,
                "energy_j": watts * 30, "watts": watts, "j_per_token": why,
                "j_per_token_total": "n/a: no tokens in the window", "tok_s_per_mw": why,
                "cost_usd": 0.0021, "usd_per_mtok": why}
    out = tok_s * 0.8
    return {"tokens_in": int(tok_s * 6), "tokens_out": int(out * 30), "seconds": 30.0,
            "tok_s_out": round(out, 1), "tok_s": tok_s, "energy_j": watts * 30, "watts": watts,
            "j_per_token": round(watts / out, 3), "j_per_token_total": round(watts / tok_s, 3),
            "tok_s_per_mw": round(out * 1e6 / watts), "cost_usd": 0.0123,
            "usd_per_mtok": round(0.0123 / (out * 30) * 1e6, 4)}


RUN_ROWS: dict[str, dict[str, Any]] = {
    "k3mx": {"tokens_in": 2400, "tokens_out": 2016, "seconds": 30.0, "tok_s_out": 67.2,
             "tok_s": 147.2, "energy_j": 9288.0, "watts": 309.6, "j_per_token": 4.607,
             "j_per_token_total": 2.103, "tok_s_per_mw": 217054.0, "cost_usd": 0.0102,
             "usd_per_mtok": 5.06, "total_tokens_in": 48210, "total_tokens_out": 20544,
             "total_energy_j": 94712.3, "total_cost_usd": 0.031244},
    "q7rt": {"tokens_in": 600, "tokens_out": 1095, "seconds": 30.0, "tok_s_out": 36.5,
             "tok_s": 56.5, "energy_j": 4270.5, "watts": 142.4, "j_per_token": 3.9,
             "j_per_token_total": 2.52, "tok_s_per_mw": 256410.0, "cost_usd": 0.0047,
             "usd_per_mtok": 4.29, "total_tokens_in": 9120, "total_tokens_out": 4380,
             "total_energy_j": 17082.0, "total_cost_usd": 0.005911},
}
STATIC = {"driver": "550.54.15", "hz": 1.0, "live_span_s": 30.0, "window_s": 5.0,
          "prices": {"usd_per_kwh": 0.3, "usd_per_gpu_hour": 2.0},
          "labels": {"tok_s": "tokens/s (prompt + output)"}}


def sample(i: int) -> dict[str, Any]:
    """The i-th gpu.sample of the last ten minutes (one every 10 s; i = 60 is NOW): GPU 0 idle,
    then busy; GPU 1 steady, lost for half a minute in the middle."""
    busy = i >= 20
    p0 = 80.0 if i < 18 else min(450.0, 80.0 + (i - 17) * 90.0) + (i % 3) * 10.0
    u0 = 0 if not busy else 90 + (i % 4) * 2
    lost = 34 <= i < 37
    p1 = 70.0 + (i % 5) * 4.0 if i < 45 else 160.0 + (i % 2) * 8.0
    gpus = [gpu_dict(0, power=p0, util=u0, mem_used=61440.0 if busy else 1024.0,
                     run_memory={"k3mx": 40960.0} if busy else {},
                     procs=[{"pid": 4242, "run_id": "k3mx", "kind": "compute",
                             "used_mib": 40960.0}] if busy else []),
            gpu_dict(1, power=p1, util=12 if i < 45 else 41, mem_used=9216.0,
                     run_memory={"q7rt": 8192.0}, lost=lost, temp="n/a: NotSupported")]
    tok_s = 0.0 if not busy else 150.0 + (i % 6) * 12.0 + (40.0 if i >= 45 else 0.0)
    watts = sum(g["power_w"] for g in gpus if isinstance(g["power_w"], float))
    return {"kind": "gpu.sample", "ts": NOW - 600 + 10 * i,
            "status": "2 NVIDIA GPUs, driver 550.54.15" + (", 1 lost" if lost else ""),
            "available": True, "gpus": gpus, "live": live_dict(tok_s, watts),
            "runs": RUN_ROWS if busy else {}}


EVENTS = [sample(i) for i in range(1, 61)]


def snapshot_at(event: dict[str, Any]) -> dict[str, Any]:
    """What the `gpu` op answers at an event's time."""
    snap = {k: v for k, v in event.items() if k != "kind"}
    runs = {k: dict(v) for k, v in snap["runs"].items()}
    for gpu in snap["gpus"]:
        for run_id, mib in gpu["run_memory_mib"].items():
            runs.setdefault(run_id, {})["gpu_memory_mib"] = mib
    return {**snap, **STATIC, "runs": runs,
            "energy": {"total_j": 301234.5, "idle_j": 48000.0, "unmetered_j": 0.0,
                       "pending_j": 520.0, "counter_resets": 0, "idle_cost_usd": 0.0051},
            "servers": []}


NO_GPU = {"status": "no NVIDIA GPU: the NVIDIA driver's NVML library (libnvidia-ml.so.1) was not "
                    "found; install the NVIDIA driver to meter GPUs",
          "available": False, "driver": None, "hz": 1.0, "ts": None, "gpus": [],
          "live": {"tokens_in": 300, "tokens_out": 1200, "seconds": 30.0, "tok_s_out": 40.0,
                   "tok_s": 50.0, "energy_j": "n/a: no GPU energy readings",
                   "watts": "n/a: no GPU energy readings",
                   "j_per_token": "n/a: no GPU energy readings",
                   "usd_per_mtok": "n/a: no GPU energy readings"},
          "live_span_s": 30.0,
          "runs": {"k3mx": {"tok_s": 50.0, "j_per_token": "n/a: no GPU energy readings",
                            "total_tokens_in": 300, "total_tokens_out": 1200,
                            "total_energy_j": 0.0, "total_cost_usd": 0.0}},
          "energy": {}, "servers": [], "window_s": 5.0, "labels": {},
          "prices": {"usd_per_kwh": 0.0, "usd_per_gpu_hour": 0.0}}


NO_GPU_EVENTS = [{"kind": "gpu.sample", "ts": NOW - 300 + 5 * i, "status": NO_GPU["status"],
                  "available": False, "gpus": [],
                  "live": {**NO_GPU["live"], "tok_s": 40.0 + (i % 7) * 5.0},
                  "runs": NO_GPU["runs"]} for i in range(61)]


class GpuSource(FixedSource):
    """FixedSource plus the `gpu` op and gpu.sample events after attaching."""

    def __init__(self, *, first: Any, events: list[dict[str, Any]], answer: Any,
                 **kw: Any) -> None:
        super().__init__(gpu=first, gpu_note="", **kw)
        self.events, self.answer = events, answer
        self.posted = 0

    async def call(self, op: str, **args: Any) -> Any:
        if op == "gpu":
            self.calls.append((op, args))
            if self.answer is None:
                raise ClientError("unknown-op", "unknown operation 'gpu'")
            return self.answer
        return await super().call(op, **args)

    async def stream(self, op: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        async for event in super().stream(op, **args):
            yield event

    async def run(self, post: Post) -> None:
        post(Connected(HELLO, self.runs, self.approvals, PROFILES, self.gpu, self.gpu_note))
        for event in [*self.net, *self.events]:
            post(DaemonEvent(event))
            self.posted += 1
        await asyncio.Event().wait()


def fixed_source(**kw: Any) -> GpuSource:
    return GpuSource(first=snapshot_at(sample(0)), events=EVENTS, answer=snapshot_at(EVENTS[-1]),
                     **kw)


# --- the real daemon: no GPU here ---------------------------------------------------------------


async def test_key_and_palette_open_the_screen_with_the_daemons_status(daemon: Daemon) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        status = app.state.gpu["status"]
        assert status.startswith("no NVIDIA GPU") and not app.state.gpu["available"]
        strip = app.screen.query_one(GpuStrip)
        await wait_for(pilot, lambda: status[:40] in strip.shown, "the status on the strip")
        assert strip.shown.strip().count("\n") == 0, "one line"

        await pilot.press("u")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, GpuScreen) and app.screen,
                                "the GPU screen")
        shown = screen.query_one("#gpu-status").shown
        assert status[:60] in shown.replace("\n", " ")
        assert not screen.query_one(GpuTable).display, "no GPU: no readings table"
        assert screen.query_one("#gpu-runs-empty").display
        assert "tokens/s" in screen.query_one(GpuPlots).shown
        assert "board power" in screen.query_one("#gpu-live").shown
        await pilot.press("z")  # everything else still works
        assert screen.span_s == 300.0
        await pilot.press("ctrl+r")
        await pilot.pause(0.2)
        assert not [n for n in app._notifications if n.severity == "error"]
        await pilot.press("escape")
        assert not isinstance(app.screen, GpuScreen)

        await pilot.press("colon")
        await pilot.press(*"GPU")
        await wait_for(pilot, lambda: app.screen.query("CommandList"), "the palette")
        await pilot.pause(0.5)
        await pilot.press("enter")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, GpuScreen) and app.screen,
                                "the GPU screen from the palette")
        assert status[:60] in screen.query_one("#gpu-status").shown.replace("\n", " ")


# --- the real GpuService with the fake NVML: 2 GPUs, 2 runs ------------------------------------


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    yield w
    w.close()


def _run(run_id: str, pids: list[int]) -> Run:
    return Run(id=run_id, profile="demo", backend="bwrap", workspace="/tmp", command=["x"],
               actor="me", pids=pids)


async def test_two_gpus_two_runs_from_the_service(writer: StoreWriter) -> None:
    bus = Bus()
    events = bus.subscribe(("gpu",))
    fake = two_gpus()
    fake.gpus[1].procs = [(5151, 6 * GiB)]
    fake.gpus[1].errors["nvmlDeviceGetTemperature"] = pynvml.NVMLError_NotSupported
    clock = [NOW - 40]
    runs = SimpleNamespace(runs={"k3mx": _run("k3mx", [4242]), "q7rt": _run("q7rt", [5151])},
                           handles={})
    svc = GpuService(writer, bus, Config(price_kwh=0.30, price_gpu_hour=2.00), runs, nvml=fake,
                     clock=lambda: clock[0], window_s=5, subscribe_tokens=False)
    first = None
    for t in range(41):
        clock[0] = NOW - 40 + t
        if t:
            for g in fake.gpus:
                g.advance(1.0)
        if t % 4 == 1:
            svc.on_tokens("k3mx", 100, 400, ts=clock[0])
            svc.on_tokens("q7rt", 50, 100, ts=clock[0])
        svc.handle_tick(svc.sampler.sample_once())
        if first is None:
            first = svc.snapshot()
    await asyncio.sleep(0)
    fed = []
    while not events.queue.empty():
        fed.append(events.queue.get_nowait())
    final = svc.snapshot()
    assert set(final["runs"]) == {"k3mx", "q7rt"} and len(final["gpus"]) == 2
    source = GpuSource(first=first, events=fed[1:], answer=final, net=[], approvals=[])
    app = PilothouseApp(source=source, clock=lambda: NOW, desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.state.gpu and app.state.gpu.get("ts") == NOW,
                       "the last sample")
        history = app.state.gpu_history
        assert sorted(history.power) == ["0", "1"] and len(history.power["0"]) == 41
        assert history.power["0"].latest() == 450.0 and history.util["1"].latest() == 0

        strip = app.screen.query_one(GpuStrip)
        await wait_for(pilot, lambda: "450W" in strip.shown, "the strip to read power_w")
        assert "70W" in strip.shown and "n/a°C" in strip.shown, "temp_c n/a reads n/a"
        assert "60G/80G" in strip.shown and "97%" in strip.shown

        await pilot.press("u")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, GpuScreen) and app.screen,
                                "the GPU screen")
        await wait_for(pilot, lambda: ("gpu", {}) in source.calls, "the `gpu` op")
        gpus = screen.query_one(GpuTable)
        runs_table = screen.query_one(GpuRunsTable)
        await wait_for(pilot, lambda: runs_table.cell_text("q7rt", "mem") == "6144"
                       if "q7rt" in runs_table else False, "the run memory from the snapshot")
        assert gpus.keys() == ["0", "1"]
        assert gpus.cell_text("0", "power") == "450/700" and gpus.cell_text("0", "util") == "97%"
        assert gpus.cell_text("0", "mem") == "61440/81920"
        assert gpus.cell_text("1", "temp") == "n/a" and gpus.cell_text("1", "power") == "70/700"
        assert gpus.cell_text("0", "clocks") == "1980/2619"

        assert sorted(runs_table.keys()) == ["k3mx", "q7rt"]
        for run_id in ("k3mx", "q7rt"):
            row = final["runs"][run_id]
            assert runs_table.cell_text(run_id, "tokens_in") == str(row["total_tokens_in"])
            assert runs_table.cell_text(run_id, "tokens_out") == str(row["total_tokens_out"])
            assert runs_table.cell_text(run_id, "energy") == f"{row['total_energy_j']:.1f}"
            assert float(runs_table.cell_text(run_id, "cost")) == pytest.approx(
                row["total_cost_usd"], abs=1e-6)
            assert float(runs_table.cell_text(run_id, "tok_s")) == pytest.approx(row["tok_s"],
                                                                                  rel=0.01)
        assert runs_table.cell_text("k3mx", "mem") == "40960"  # 4242 holds 40 GiB on GPU0
        k3 = final["runs"]["k3mx"]["j_per_token"]
        assert float(runs_table.cell_text("k3mx", "j_per_token")) == pytest.approx(k3, rel=0.01)

        plots = screen.query_one(GpuPlots)
        text = plots.shown
        for label in ("GPU0 power", "GPU0 util", "GPU1 power", "GPU1 util", "tokens/s", "J/token"):
            assert label in text
        # the newest column of each power plot: 450 W and 70 W of a 700 W limit, in eighths
        assert "450 W" in next(x for x in text.splitlines() if x.startswith("GPU0 power"))
        assert column_height(plots, "GPU0 power") == round(450 / 700 * 8 * plots.rows)
        assert column_height(plots, "GPU1 power") == round(70 / 700 * 8 * plots.rows)
        assert column_height(plots, "GPU0 util") == round(0.97 * 8 * plots.rows)
        assert column_height(plots, "GPU1 util") == 1, "zero still shows, unlike no data"
        assert column_height(plots, "GPU0 power", 0) == 0, "ten minutes ago: no data yet"
        live = screen.query_one("#gpu-live").shown
        assert "board power" in live and f"{final['live']['watts']:.0f} W" in live

        # a new sample changes cells of the same rows (update_cell), never adds or rebuilds
        updated: list[tuple[str, str]] = []
        real_update = runs_table.update_cell

        def spy(row_key: Any, column_key: Any, value: Any, **kw: Any) -> None:
            updated.append((str(getattr(row_key, "value", row_key)),
                            str(getattr(column_key, "value", column_key))))
            real_update(row_key, column_key, value, **kw)

        runs_table.update_cell = spy  # type: ignore[method-assign]
        later = {**fed[-1], "ts": NOW + 1,
                 "runs": {**fed[-1]["runs"],
                          "q7rt": {**fed[-1]["runs"]["q7rt"], "total_tokens_out": 99999}}}
        app.post_message(DaemonEvent(later))
        await wait_for(pilot, lambda: runs_table.cell_text("q7rt", "tokens_out") == "99999",
                       "the new total")
        assert ("q7rt", "tokens_out") in updated and runs_table.row_count == 2
        assert all(key == "q7rt" for key, _ in updated)

        runs_table.focus()
        runs_table.select_key("q7rt")
        await pilot.press("enter")  # a row opens its run
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.run_id == "q7rt", "the run screen")


def column_height(plots: GpuPlots, label: str, column: int = -1) -> int:
    """Eighths filled in one column of a plot, all its rows together."""
    return sum(BLOCKS.index(row[column]) for row in plots.charts[label])


# --- the state model (no Textual) ---------------------------------------------------------------


def test_history_is_bounded_and_survives_n_a() -> None:
    state = ConsoleState()
    state.load_gpu(snapshot_at(sample(0)))
    for i in range(1, 61):
        state.apply(sample(i))
    h = state.gpu_history
    assert len(h.power["0"]) == 61 and len(h.power["1"]) == 58, "lost samples leave a gap"
    assert h.j_per_token.points()[0][0] == NOW - 600 + 200, "n/a J/token before tokens"
    assert state.gpu["driver"] == "550.54.15", "the op's static fields outlive events"
    assert "energy" not in state.gpu, "stale totals do not"
    assert state.gpu_runs()["k3mx"]["gpu_memory_mib"] == 40960.0
    # an hour at 10 Hz stays ten minutes, at most one point a second
    series = Series()
    for k in range(36_000):
        series.add(NOW + k / 10, 100.0 + k % 10)
    assert len(series) <= GPU_HISTORY_S + 2
    assert series.points()[-1] == (NOW + 3599, 104.5)
    series.add(NOW, 1.0)  # older than the newest: ignored
    assert series.points()[-1][0] == NOW + 3599
    # the `gpu` answer arriving after a newer event keeps the newer readings
    state.apply({**sample(60), "ts": NOW + 5, "status": "newer"})
    state.load_gpu(snapshot_at(sample(60)))
    assert state.gpu["status"] == "newer" and state.gpu["energy"]


def test_plot_primitives() -> None:
    assert resample([(0, 1.0), (1, 3.0), (9, 5.0)], 0, 10, 5) == [2.0, None, None, None, 5.0]
    assert sparkline([None, 0.0, 50.0, 100.0], 0, 100) == " ▁▄█"
    assert bars([100.0, 25.0, None], 0, 100, 2) == ["█  ", "█▄ "]
    snap = snapshot_at(sample(60))
    g1 = snap["gpus"][1]
    assert gpu_line(g1) == "GPU1 NVIDIA H100 80GB HBM3 160W 41% util mem 9.0G/80G n/a°C"
    assert gpu_line({**g1, **sample(35)["gpus"][1]}) == "GPU1 NVIDIA H100 80GB HBM3 LOST"
    assert gpu_line(g1, "▁▂", name=False, compact=True) == "GPU1 160W ▁▂ 41% 9.0G/80G n/a°C"
    table = GpuTable()
    table.put_gpu(sample(35)["gpus"][1])
    assert table.cell_text("1", "gpu") == "1 LOST" and table.cell_text("1", "power") == "n/a"
    assert table.cell_text("1", "mem") == "n/a" and table.cell_text("1", "clocks") == "n/a"


async def test_fixed_data_has_the_shape_of_the_real_service(writer: StoreWriter) -> None:
    bus = Bus()
    events = bus.subscribe(("gpu",))
    svc = GpuService(writer, bus, Config(), None, nvml=two_gpus(), clock=lambda: NOW)
    svc.handle_tick(svc.sampler.sample_once(NOW))  # type: ignore[arg-type]
    svc.on_tokens("k3mx", 10, 10, ts=NOW)
    real = svc.snapshot()
    assert set(sample(60)) == set(events.queue.get_nowait())
    fixed = snapshot_at(EVENTS[-1])
    assert set(fixed) == set(real)
    assert set(fixed["gpus"][0]) == set(real["gpus"][0])
    assert set(fixed["gpus"][0]["procs"][0]) == set(real["gpus"][0]["procs"][0])
    assert set(NO_GPU) == set(real)


# --- snapshots ------------------------------------------------------------------------------------




def snap_app(source: GpuSource) -> PilothouseApp:
    return PilothouseApp(source=source, clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


async def fed(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    source = app.source
    assert isinstance(source, GpuSource)
    for _ in range(200):
        if app.state.connected and source.posted == len(source.net) + len(source.events):
            break
        await pilot.pause(0.02)
    await pilot.pause()


async def open_gpu(pilot: Pilot[None]) -> None:
    await fed(pilot)
    await pilot.press("u")
    source = pilot.app.source
    for _ in range(100):
        if ("gpu", {}) in source.calls:  # type: ignore[attr-defined]
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_gpu_screen(snap_compare, size) -> None:
    assert snap_compare(snap_app(fixed_source()), terminal_size=size, run_before=open_gpu)


def test_gpu_screen_without_a_gpu(snap_compare) -> None:
    source = GpuSource(first=NO_GPU, events=NO_GPU_EVENTS, answer=NO_GPU)
    assert snap_compare(snap_app(source), terminal_size=(80, 24), run_before=open_gpu)


def test_gpu_screen_without_colour(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(snap_app(fixed_source()), terminal_size=(80, 24), run_before=open_gpu)


def test_dashboard_gpu_strip(snap_compare) -> None:
    assert snap_compare(snap_app(fixed_source()), terminal_size=(80, 24), run_before=fed)

