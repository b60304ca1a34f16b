"""Review h197: the numbers Pilothouse shows (W, J, tokens/s, J/token, $/Mtok, cost per run),
checked against hand computation on the scripted NVML (tests/gpu/fake_nvml.py) driven by a
fake clock, through the real GpuService on a real Bus and StoreWriter."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest

from console.config.load import Config
from console.daemon.bus import Bus
from console.gpu import GpuService
from console.replay.client import Result
from console.replay.figures import step_figures
from console.replay.summary import summarise, summarise_trace
from console.tui.state import ConsoleState
from store.writer import StoreWriter
from tests.conftest import needs_bwrap
from tests.gpu.fake_nvml import FakeGpu, FakeNvml


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    yield w
    w.close()


def add_run(writer: StoreWriter, run_id: str) -> None:
    def insert(db: Any) -> None:
        db.conn.execute("INSERT INTO runs (id, profile, state, started_at) VALUES (?, 'p', "
                        "'running', 0)", (run_id,))

    writer.call(insert).result(10)


async def test_a_run_without_gpu_energy_reads_unknown_not_zero(writer: StoreWriter) -> None:
    """No GPU: a run's tokens count, but its energy and cost were never measured. `report`
    (live and from the store) and `gpu` said 0.0 J, $0 and $0 per Mtok."""
    add_run(writer, "r")
    now = [0.0]
    fake = FakeNvml([FakeGpu(0)], init_error=pynvml.NVMLError_DriverNotLoaded)
    svc = GpuService(writer, Bus(), Config(price_kwh=0.30, price_gpu_hour=2.0), None,
                     nvml=fake, clock=lambda: now[0], window_s=5)
    assert svc.sampler.sample_once() is None
    svc.on_tokens("r", 5, 50, ts=1.0)
    now[0] = 12.0
    svc.housekeep()
    live = svc.report("r")
    assert (live["tokens_in"], live["tokens_out"]) == (5, 50)
    for key in ("energy_j", "cost_usd", "j_per_token", "usd_per_mtok", "gpu_hours"):
        assert live[key] is None, (key, live)
    assert "no NVIDIA GPU" in live["missing"]["energy_j"]
    row = svc.snapshot()["runs"]["r"]
    assert row["total_tokens_out"] == 50
    assert str(row["total_energy_j"]).startswith("n/a: no NVIDIA GPU")
    assert str(row["total_cost_usd"]).startswith("n/a: no NVIDIA GPU")
    assert str(svc.snapshot()["energy"]["total_j"]).startswith("n/a: no NVIDIA GPU")
    await svc.finish_run("r")
    now[0] = 1000.0  # the run's totals are final and leave memory: the store answers
    await svc._write_totals(None)
    stored = await svc.areport("r")
    assert stored["source"] == "store" and stored["tokens_out"] == 50
    for key in ("energy_j", "cost_usd", "j_per_token", "usd_per_mtok"):
        assert stored[key] is None, (key, stored)
    assert stored["missing"]["energy_j"] == "no GPU energy was attributed to this run"


async def test_live_tokens_per_second_is_of_the_last_span_not_of_the_last_tokens(
        writer: StoreWriter) -> None:
    """Without a GPU no sample makes windows: once an agent stopped, `gpu` kept showing the
    tokens/s of its last burst (50 tokens over 4 s: 12.5/s) for as long as no new tokens came."""
    now = [0.0]
    fake = FakeNvml([FakeGpu(0)], init_error=pynvml.NVMLError_DriverNotLoaded)
    svc = GpuService(writer, Bus(), Config(), None, nvml=fake, clock=lambda: now[0],
                     window_s=5, live_span_s=30)
    svc.sampler.sample_once()
    svc.on_tokens("r", 0, 60, ts=1.0)
    now[0] = 12.0
    svc.housekeep()
    # The last 30 s end at 10 s (the windows closed by then); they began at 1.0, the first
    # thing seen: 60 tokens / 9 s.
    assert svc.snapshot()["live"]["tok_s_out"] == pytest.approx(60 / 9, rel=1e-5)
    now[0] = 100.0  # nothing since: the last 30 s hold no token
    svc.housekeep()
    live = svc.snapshot()["live"]
    assert live["tok_s_out"] == 0 and live["tok_s"] == 0 and live["tokens_out"] == 0


async def test_a_lost_gpu_leaves_its_windows_out_of_the_ratios(writer: StoreWriter) -> None:
    """Two GPUs at 450 W and 70 W, sampled at 1 Hz; GPU 1 falls off the bus at t=11 and is
    found again at t=41 (the sampler looks every 30 s). While it was lost its windows held
    GPU 0's energy only, yet counted as valid: W read 450 instead of 520 for that stretch and
    J/token fell with it. They are invalid now (their energy still counts in the totals)."""
    now = [0.0]
    fake = FakeNvml([FakeGpu(0, power_w=450.0), FakeGpu(1, power_w=70.0)])
    svc = GpuService(writer, Bus(), Config(price_kwh=0.30, price_gpu_hour=2.0), None,
                     nvml=fake, clock=lambda: now[0], window_s=5, live_span_s=1e6)
    for t in range(0, 61):
        now[0] = float(t)
        if t:
            for g in fake.gpus:
                g.advance(1.0)
        fake.gpus[1].lost = 11 <= t < 41
        if t in (2, 22, 52):
            svc.on_tokens("r", 0, 100, ts=t + 0.5)
        tick = svc.sampler.sample_once()
        assert tick is not None
        svc.handle_tick(tick)
    live = svc.snapshot()["live"]
    # Valid windows: [0,10) and [45,60): 25 s at 520 W = 13 000 J, 200 output tokens.
    assert live["watts"] == pytest.approx(520.0)
    assert live["energy_j"] == pytest.approx(13_000.0)
    assert live["j_per_token"] == pytest.approx(65.0)
    reasons = svc.ledger.recent(1e6, price_kwh=0, price_gpu_hour=0,
                                has_energy=True)["invalid_reasons"]
    assert any("lost" in r for r in reasons), reasons


async def test_report_ratios_come_from_unrounded_totals(writer: StoreWriter) -> None:
    """A short run: 10 W for 5 s = 50 J, 10 output tokens, at $0.10/kWh: $1.3889e-6, i.e.
    $0.13889 per Mtok. The cost was rounded to 6 decimals ($0.000001) before the ratio,
    which then read $0.1/Mtok, 28% low; stored, the row held $0.000001 too."""
    add_run(writer, "small")
    now = [0.0]
    fake = FakeNvml([FakeGpu(0, power_w=10.0)])
    svc = GpuService(writer, Bus(), Config(price_kwh=0.10), None, nvml=fake,
                     clock=lambda: now[0], window_s=5)
    svc.on_tokens("small", 0, 10, ts=1.0)
    for t in range(0, 7):
        now[0] = float(t)
        if t:
            fake.gpus[0].advance(1.0)
        svc.handle_tick(svc.sampler.sample_once())  # type: ignore[arg-type]
    rep = await svc.finish_run("small")
    assert rep["energy_j"] == 50.0
    assert rep["cost_usd"] == pytest.approx(50 / 3.6e6 * 0.10, rel=1e-5)
    assert rep["usd_per_mtok"] == pytest.approx(50 / 3.6e6 * 0.10 / 10 * 1e6, rel=1e-5)
    assert rep["j_per_token"] == 5.0
    now[0] = 1000.0
    await svc._write_totals(None)
    stored = await svc.areport("small")
    assert stored["source"] == "store"
    assert stored["usd_per_mtok"] == pytest.approx(0.138889, rel=1e-5)
    await asyncio.sleep(0)


def test_a_step_whose_energy_counter_did_not_move_reads_unknown() -> None:
    """Replay: a step shorter than the counter's update (or a counter stuck) reads 0 J; J per
    token, W and $/Mtok then read 0 (and the cost only the GPU-hours), as if measured. And a
    ratio without tokens was None with no reason said."""
    r = Result(start=0.0, end=0.05, first_token=0.01, prompt_tokens=10, completion_tokens=3)
    f = step_figures([r], seconds=0.05, gpus=1, energy_j=0.0, price_kwh=0.3,
                     price_gpu_hour=2.0)
    for key in ("energy_j", "watts", "j_per_token", "j_per_output_token", "usd_per_mtok",
                "cost_usd"):
        assert f[key] is None, (key, f[key])
        assert "did not move" in f["missing"][key]
    silent = Result(start=0.0, end=0.05, prompt_tokens=10, completion_tokens=0)
    f = step_figures([silent], seconds=0.05, gpus=1, energy_j=5.0)
    assert f["j_per_output_token"] is None and f["usd_per_mtok"] is None
    assert f["missing"]["j_per_output_token"] == "no output tokens in the step"
    assert f["j_per_input_token"] == 0.5 and "j_per_input_token" not in f["missing"]


async def test_cost_without_a_price_set_reads_unknown_not_free(writer: StoreWriter) -> None:
    """[gpu] price_kwh and price_gpu_hour default to 0: with neither set, `report` said cost
    $0.000000, `gpu` $/Mtok 0.0000 and the replay $0/Mtok, as if the GPU were free. The energy
    and J/token are measured all the same: 100 W for 5 s = 500 J over 50 output tokens."""
    add_run(writer, "p")
    now = [0.0]
    fake = FakeNvml([FakeGpu(0, power_w=100.0)])
    svc = GpuService(writer, Bus(), Config(), None, nvml=fake, clock=lambda: now[0],
                     window_s=5)
    svc.on_tokens("p", 0, 50, ts=1.0)
    for t in range(0, 7):
        now[0] = float(t)
        if t:
            fake.gpus[0].advance(1.0)
        svc.handle_tick(svc.sampler.sample_once())  # type: ignore[arg-type]
    rep = svc.report("p")
    assert rep["energy_j"] == 500.0 and rep["j_per_token"] == 10.0
    assert rep["cost_usd"] is None and rep["usd_per_mtok"] is None
    assert "price_kwh" in rep["missing"]["cost_usd"]
    snap = svc.snapshot()
    assert snap["live"]["j_per_token"] == 10.0
    assert str(snap["live"]["usd_per_mtok"]).startswith("n/a: no price set")
    assert str(snap["live"]["cost_usd"]).startswith("n/a: no price set")
    assert str(snap["runs"]["p"]["total_cost_usd"]).startswith("n/a: no price set")
    assert str(snap["energy"]["idle_cost_usd"]).startswith("n/a: no price set")
    await svc.finish_run("p")
    now[0] = 1000.0
    await svc._write_totals(None)
    stored = await svc.areport("p")
    assert stored["energy_j"] == 500.0 and stored["cost_usd"] is None
    r = Result(start=0.0, end=1.0, first_token=0.1, prompt_tokens=10, completion_tokens=3)
    f = step_figures([r], seconds=1.0, gpus=1, energy_j=100.0)
    assert f["j_per_output_token"] == pytest.approx(100 / 3, rel=1e-5)
    assert f["cost_usd"] is None and f["usd_per_mtok"] is None
    assert f["missing"]["usd_per_mtok"].startswith("no price set")


@needs_bwrap
def test_report_of_a_run_nothing_metered_says_n_a(daemon: Any, workspace: Path) -> None:
    """`pilothouse report RUN` on this machine (no NVIDIA driver) printed "energy 0.0 J
    cost $0.000000" for a run whose energy was never measured."""
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "true", check=False)
    rid = json.loads(daemon.cli("ps", "--all", "--json").stdout)[0]["id"]
    shown = daemon.cli("report", rid).stdout
    assert "energy    n/a  cost n/a  J/token n/a  $/Mtok n/a" in shown, shown
    assert "n/a: no GPU energy was attributed to this run" in shown, shown
    metering = json.loads(daemon.cli("report", rid, "--json").stdout)["metering"]
    assert metering["energy_j"] is None and metering["cost_usd"] is None, metering


def test_output_tokens_per_second_of_an_answer_not_streamed(tmp_path: Path) -> None:
    """`trace summary` (and the replay's per-agent table): output tok/s while answering was
    output tokens / (end - first byte). A non-streamed answer's first byte comes when it is
    all made: 400 tokens made in 4 s and sent in 2 ms read 200 000 tok/s, not 100."""
    rows = [{"run_id": "plain", "lane": "plain/0", "start": 0.0, "first_byte": 4.0,
             "end": 4.002, "stream": 0, "completion_tokens": 400, "prompt_tokens": 100},
            {"run_id": "sse", "lane": "sse/0", "start": 0.0, "first_byte": 0.5, "end": 4.5,
             "stream": 1, "completion_tokens": 400, "prompt_tokens": 100}]
    got = {g["run_id"]: g["tok_s_out_answering"] for g in summarise(rows)}
    assert got == {"plain": pytest.approx(400 / 4.002, rel=1e-3), "sse": 100.0}
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"lane": "a", "start": 0.0, "ttft_s": 4.0, "duration_s": 4.002,
                                 "stream": False, "input_length": 100,
                                 "output_length": 400}) + "\n")
    assert summarise_trace(trace)[0]["tok_s_out_answering"] == pytest.approx(99.95, rel=1e-3)


def test_dashboard_tokens_per_second_counts_output_tokens_only() -> None:
    """The dashboard's TOK/S column took `completion_tokens or total_tokens`: an answer of 0
    output tokens after a 5 000-token prompt counted 5 000, and a usage with only the total
    counted the prompt too. It counts as the run's totals do (store.runs_table.usage_counts)."""
    state = ConsoleState()
    now = 1_000_000.0
    state.apply({"kind": "tokens", "run_id": "a", "ts": now, "prompt_tokens": 5000,
                 "completion_tokens": 0, "total_tokens": 5000})
    state.apply({"kind": "tokens", "run_id": "a", "ts": now, "prompt_tokens": 100,
                 "completion_tokens": None, "total_tokens": 160})
    assert state.token_rate("a", now) == pytest.approx(60 / 30)
    state.apply({"kind": "tokens", "run_id": "b", "ts": now, "prompt_tokens": 10,
                 "completion_tokens": 0, "total_tokens": 10})
    assert state.token_rate("b", now) is None  # no output: shown as "-", as an idle run
