"""GpuService end to end: the fake NVML, a real Bus, a real StoreWriter on tmp_path (samples
and run totals land in SQLite), real processes for the PID-to-run mapping."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from console.config.load import Config
from console.daemon.bus import Bus
from console.daemon.runs import Run
from console.gpu import GpuService
from store.writer import StoreWriter
from tests.gpu.fake_nvml import FakeGpu, FakeNvml, GiB, two_gpus


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    yield w
    w.close()


def add_runs(writer: StoreWriter, *ids: str) -> None:
    def insert(db: Any) -> None:
        for run_id in ids:
            db.conn.execute("INSERT INTO runs (id, profile, state, started_at) VALUES (?, 'p', "
                            "'running', ?)", (run_id, time.time()))

    writer.call(insert).result(10)


def rows(writer: StoreWriter, sql: str, *args: Any) -> list[tuple]:
    writer.flush()
    conn = sqlite3.connect(writer.db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def run(run_id: str, pids: list[int]) -> Run:
    return Run(id=run_id, profile="p", backend="bwrap", workspace="/tmp", command=["x"],
               actor="me", pids=pids)


CFG = Config(price_kwh=0.30, price_gpu_hour=2.00)


async def test_scripted_half_minute_lands_in_sqlite(writer: StoreWriter) -> None:
    add_runs(writer, "run1", "run2")
    bus = Bus()
    events = bus.subscribe(("gpu",))
    fake = two_gpus()
    now = [0.0]
    runs = SimpleNamespace(runs={"run1": run("run1", [4242])}, handles={})
    svc = GpuService(writer, bus, CFG, runs, nvml=fake, clock=lambda: now[0], window_s=5)
    # 30 s at 1 Hz: GPU 0 at 450 W, GPU 1 at 70 W -> 520 J per second in all.
    for t in range(0, 31):
        now[0] = float(t)
        if t:
            for g in fake.gpus:
                g.advance(1.0)
        if t == 3:
            svc.on_tokens("run1", 200, 800, ts=3.0)
        if t == 12:
            svc.on_tokens("run2", 100, 100, ts=12.0)
            svc.on_tokens("run1", 0, 200, ts=12.5)
        tick = svc.sampler.sample_once()
        assert tick is not None
        svc.handle_tick(tick)
    await asyncio.sleep(0)  # let the scheduled totals write start
    assert events.queue.qsize() == 31  # one coalesced event per tick, both GPUs in it
    first = events.queue.get_nowait()
    assert first["kind"] == "gpu.sample" and len(first["gpus"]) == 2
    assert first["gpus"][0]["power_w"] == 450.0

    led = svc.ledger
    # Windows 0-5 ([0,5) .. [25,30)) closed: [0,5) run1 only; [10,15) run1 200 + run2 200
    # tokens; the other 4 idle. Each window: 5 s x 520 W = 2600 J.
    # run1: 2600 + 2600/2 = 3900 J; run2: 1300 J; idle: 4 x 2600 = 10 400 J.
    assert led.runs["run1"].energy_mj == 3_900_000 and led.runs["run2"].energy_mj == 1_300_000
    assert led.idle_mj == 10_400_000
    report = await svc.finish_run("run1")
    assert report["tokens_in"] == 200 and report["tokens_out"] == 1000
    assert report["energy_j"] == 3900.0
    # GPU-seconds: window 0 all of 5 s x 2 GPUs = 10; window 2 half of 10 = 5; 15 in all.
    # cost = 3900/3.6e6 x 0.30 + 15/3600 x 2.00 = 3.25e-4 + 8.3333e-3 = 8.6583e-3 $
    assert report["cost_usd"] == pytest.approx(0.0086583, rel=1e-4)
    assert report["j_per_token"] == 3.9

    stored = dict((r[0], r[1:]) for r in rows(
        writer, "SELECT id, tokens_in, tokens_out, energy_j, cost FROM runs"))
    assert stored["run1"][:3] == (200, 1000, 3900.0)
    assert stored["run1"][3] == pytest.approx(0.0086583, rel=1e-4)
    assert stored["run2"][:3] == (100, 100, 1300.0)

    samples = rows(writer, "SELECT ts, text, data FROM events WHERE kind = 'gpu.sample' "
                   "ORDER BY id")
    # One row per GPU per 10 s: t = 10, 20, 30 for each of 2 GPUs.
    assert [r[0] for r in samples] == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
    data = json.loads(samples[0][2])
    assert data["avg_power_w"] == 450.0 and data["energy_j"] == 4500.0
    assert data["run_memory_mib"] == {"run1": 40960.0}
    assert samples[0][1] == "GPU0 NVIDIA H100 80GB HBM3: 450 W, 97% util"
    status = rows(writer, "SELECT text FROM events WHERE kind = 'gpu.status'")
    assert status == [("2 NVIDIA GPUs, driver 550.54.15",)]

    snap = svc.snapshot()
    assert snap["status"] == "2 NVIDIA GPUs, driver 550.54.15" and snap["available"]
    assert snap["gpus"][1]["util_gpu"] == 0 and snap["runs"]["run1"]["gpu_memory_mib"] == 40960.0
    assert snap["energy"]["idle_j"] == 10400.0
    json.dumps(snap)  # the op sends it as JSON


async def test_missing_fields_read_as_na_and_lost_gpu(writer: StoreWriter) -> None:
    fake = two_gpus()
    fake.gpus[1].errors["nvmlDeviceGetTotalEnergyConsumption"] = pynvml.NVMLError_NotSupported
    svc = GpuService(writer, Bus(), CFG, None, nvml=fake, clock=lambda: 0.0)
    svc.handle_tick(svc.sampler.sample_once(0.0))  # type: ignore[arg-type]
    snap = svc.snapshot()
    assert snap["gpus"][1]["energy_counter_j"] == "n/a: NotSupported"
    assert snap["gpus"][0]["procs"][0]["used_mib"] == 40960.0
    fake.gpus[0].lost = True
    svc.handle_tick(svc.sampler.sample_once(1.0))  # type: ignore[arg-type]
    snap = svc.snapshot()
    assert snap["gpus"][0]["lost"] and snap["gpus"][0]["power_w"] == "n/a: GpuIsLost"
    assert snap["status"].endswith(", 1 lost") and snap["gpus"][1]["power_w"] == 70.0


async def test_threaded_service_with_bus_tokens(writer: StoreWriter) -> None:
    add_runs(writer, "live1")
    bus = Bus()
    gpus = bus.subscribe(("gpu",))
    fake = two_gpus(clock=time.monotonic)
    svc = GpuService(writer, bus, Config(gpu_sample_hz=10, price_kwh=0.3, price_gpu_hour=2.0), None,
                     nvml=fake, window_s=0.2,
                     persist_every_s=0.5, totals_every_s=0.3)
    await svc.start()
    try:
        for _ in range(8):  # what the gate wiring's recorder publishes
            bus.publish({"kind": "tokens", "run_id": "live1", "ts": time.time(),
                         "prompt_tokens": 10, "completion_tokens": 40, "total_tokens": 50,
                         "model": "m", "endpoint": "127.0.0.1:8000/v1/chat/completions"})
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        await svc.stop()
    assert svc.sampler.ticks >= 5 and svc.events_published >= svc.sampler.ticks
    assert gpus.queue.qsize() >= 5
    tin, tout, energy_j, cost = rows(writer, "SELECT tokens_in, tokens_out, energy_j, cost "
                                     "FROM runs WHERE id = 'live1'")[0]
    assert (tin, tout) == (80, 320) and energy_j > 0 and cost > 0
    assert rows(writer, "SELECT count(*) FROM events WHERE kind = 'gpu.sample'")[0][0] >= 2
    report = svc.report("live1")
    assert report["found"] and report["tokens_out"] == 320


async def test_no_gpu_one_status_line_tokens_still_counted(writer: StoreWriter) -> None:
    fake = FakeNvml([FakeGpu(0)], init_error=pynvml.NVMLError_DriverNotLoaded)
    bus = Bus()
    events = bus.subscribe(("gpu",))
    svc = GpuService(writer, bus, CFG, None, nvml=fake, window_s=0.5)
    await svc.start()
    try:
        svc.on_tokens("r", 5, 50, ts=time.time())
        await asyncio.sleep(1.8)  # housekeeping closes windows by the clock
        snap = svc.snapshot()
    finally:
        await svc.stop()
    assert snap["status"].startswith("no NVIDIA GPU: the NVIDIA kernel driver is not loaded")
    assert snap["gpus"] == [] and not snap["available"]
    assert snap["runs"]["r"]["total_tokens_out"] == 50
    assert snap["runs"]["r"]["j_per_token"] == "n/a: no GPU energy readings"
    ev = events.queue.get_nowait()
    assert ev["status"] == snap["status"] and ev["gpus"] == []
    assert rows(writer, "SELECT text FROM events WHERE kind = 'gpu.status'")[0][0] == snap["status"]


@pytest.fixture
async def process_tree() -> AsyncIterator[tuple[int, int]]:
    """A 'sandbox' root (sh) with a child (sleep) started after the run's PIDs were taken."""
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    yield proc.pid, child
    proc.kill()
    os.kill(child, 9)
    proc.wait()
    proc.stdout.close()


async def test_gpu_processes_map_to_runs_through_descendants(
        writer: StoreWriter, process_tree: tuple[int, int]) -> None:
    root, child = process_tree
    fake = FakeNvml([FakeGpu(0, procs=[(child, 3 * GiB), (1, 1 * GiB)])])
    runs = SimpleNamespace(runs={"agent": run("agent", [root])}, handles={})
    svc = GpuService(writer, Bus(), CFG, runs, nvml=fake, clock=lambda: 0.0)
    svc.handle_tick(svc.sampler.sample_once(0.0))  # type: ignore[arg-type]  # learns the roots
    tick = svc.sampler.sample_once(1.0)
    assert tick is not None
    assert {p.pid: p.run_id for p in tick.gpus[0].procs} == {child: "agent", 1: None}
    svc.handle_tick(tick)
    assert svc.snapshot()["runs"]["agent"]["gpu_memory_mib"] == 3072.0


async def test_finished_run_report_comes_from_the_store(writer: StoreWriter) -> None:
    add_runs(writer, "old")
    now = [0.0]
    svc = GpuService(writer, Bus(), CFG, None, nvml=two_gpus(clock=lambda: now[0]),
                     clock=lambda: now[0], window_s=5)
    svc.on_tokens("old", 10, 90, ts=1.0)
    for t in range(0, 7):
        now[0] = float(t)
        svc.handle_tick(svc.sampler.sample_once())  # type: ignore[arg-type]
    await svc.finish_run("old")
    now[0] = 1000.0  # long after: the run's totals are final and leave memory
    await svc._write_totals(None)
    assert svc.report("old") == {"run_id": "old", "found": False}
    stored = await svc.areport("old")
    # Window [0, 5): 5 s x 520 W = 2600 J, all of it the run's.
    assert stored["source"] == "store" and stored["tokens_out"] == 90
    assert stored["energy_j"] == 2600.0 and stored["j_per_token"] == pytest.approx(2600 / 90, abs=1e-4)
    assert (await svc.areport("never"))["found"] is False


async def test_scrapes_and_tokens_from_other_threads(writer: StoreWriter) -> None:
    counter = {"gen": 0}

    async def metrics(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        counter["gen"] += 100
        body = (f"# TYPE vllm:generation_tokens_total counter\n"
                f"vllm:generation_tokens_total{{model_name=\"m\"}} {counter['gen']}\n"
                f"vllm:prompt_tokens_total{{model_name=\"m\"}} 0\n").encode()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        w.close()

    server = await asyncio.start_server(metrics, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    svc = GpuService(writer, Bus(), Config(gpu_sample_hz=10, inference=[f"127.0.0.1:{port}"]),
                     None, nvml=two_gpus(clock=time.monotonic), window_s=0.5)
    assert svc.scraper is not None and svc.scraper.interval_s == 2.0
    svc.scraper.interval_s = 0.2
    await svc.start()
    try:
        # The gate's recorder or another thread may call on_tokens: it hops onto the loop.
        await asyncio.to_thread(svc.on_tokens, "t", 1, 2, time.time())
        svc.on_tokens("ignored", 0, 7, time.time(), source="server")
        await asyncio.sleep(1.5)
        snap = svc.snapshot()
    finally:
        await svc.stop()
        server.close()
    (status,) = snap["servers"]
    assert status["ok"] and status["kind"] == "vllm" and status["generation_tokens"] >= 300
    assert snap["runs"]["t"]["total_tokens_out"] == 2 and "ignored" not in snap["runs"]
    scraped = sum(w.scraped_out for w in svc.ledger.closed)
    assert scraped >= 300 + 7  # the scrapes' deltas and the server-wide on_tokens
