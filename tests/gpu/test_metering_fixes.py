"""The metering findings of issue 15, each driven through the real console.gpu modules (the
sampler with the scripted NVML, the ledger, the service on a real Bus and StoreWriter, the
scraper against a real HTTP server on 127.0.0.1, the gate's usage meter)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest

from console.config.load import Config
from console.daemon.bus import Bus
from console.gate.usage import UsageMeter
from console.gpu import GpuService
from console.gpu.energy import EnergyLedger
from console.gpu.nvml import NvmlSampler
from console.gpu.scrape import Scraper
from store.writer import StoreWriter
from tests.gpu.fake_nvml import FakeGpu, FakeNvml, GiB
from tests.gpu.test_scrape import Served, serve  # noqa: F401 - the fixture

PRICES = {"price_kwh": 0.30, "price_gpu_hour": 2.00}


def feed(ledger: EnergyLedger, watts: float, times: list[float], gpu: str = "g0") -> None:
    for t in times:
        ledger.add_power(gpu, t, round(watts * t * 1000), round(watts * 1000))


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    w = StoreWriter(tmp_path / "history.db", os.urandom(32)).start()
    yield w
    w.close()


# --- energy booked to idle during streamed answers ---------------------------------------------


async def test_streamed_answer_energy_goes_to_the_run_not_idle(writer: StoreWriter) -> None:
    """What the gate publishes for one streamed answer: `inference.start` when the request
    goes upstream, `tokens` (with the request's start) when it ends. The GPU draws 400 W
    throughout; the run must get the stream's energy, not idle."""
    def insert(db: Any) -> None:
        db.conn.execute("INSERT INTO runs (id, profile, state, started_at) VALUES "
                        "('stream1', 'p', 'running', 0)")

    writer.call(insert).result(10)
    bus = Bus()
    fake = FakeNvml([FakeGpu(0, power_w=400.0)], clock=time.monotonic)
    svc = GpuService(writer, bus, Config(gpu_sample_hz=10, price_kwh=0.3, price_gpu_hour=2.0),
                     None, nvml=fake, window_s=0.2, persist_every_s=5, totals_every_s=0.3)
    svc.ledger.carry_s = 0.6  # scaled like the windows: a 60 s carry against 5 s windows
    await svc.start()
    try:
        await asyncio.sleep(0.5)  # idle before the request
        started = time.time()
        bus.publish({"kind": "inference.start", "run_id": "stream1", "request_id": "r1",
                     "ts": started})
        await asyncio.sleep(1.6)  # the stream: 8 windows, longer than the carry
        bus.publish({"kind": "tokens", "run_id": "stream1", "ts": time.time(),
                     "started": started, "request_id": "r1", "prompt_tokens": 100,
                     "completion_tokens": 900, "total_tokens": 1000})
        await asyncio.sleep(0.6)  # windows close
    finally:
        await svc.stop()
    led = svc.ledger
    run_j = led.runs["stream1"].energy_mj / 1000 if "stream1" in led.runs else 0.0
    stream_j = 1.6 * 400
    # Before the fix the run got one window (~80 J) and idle the rest of the stream.
    assert run_j >= 0.8 * stream_j, (run_j, led.idle_mj / 1000)
    # Idle: the half second before and the 0.6 s after, plus a window of slack each side
    # (before the fix the whole stream was idle too: about 1080 J).
    assert led.idle_mj / 1000 <= (0.5 + 0.6 + 0.4) * 400, led.idle_mj
    assert led.accounted_mj() == led.total_mj


async def test_the_issue_case_60_s_stream_at_400_w(writer: StoreWriter) -> None:
    """The finding as filed, on a scripted clock: a 60 s stream at 400 W, no scraper, 5 s
    windows at 1 Hz. Before: the run got 800 J-odd and idle 24 000 J."""
    fake = FakeNvml([FakeGpu(0, power_w=400.0)])
    now = [0.0]
    svc = GpuService(writer, Bus(), Config(), None, nvml=fake, clock=lambda: now[0],
                     window_s=5, persist_every_s=1000, totals_every_s=1000)
    for t in range(0, 71):
        now[0] = float(t)
        if t:
            fake.gpus[0].advance(1.0)
        if t == 5:
            svc.handle_event({"kind": "inference.start", "run_id": "r", "request_id": "q",
                              "ts": 5.0})
        if t == 65:
            svc.handle_event({"kind": "tokens", "run_id": "r", "request_id": "q", "ts": 65.0,
                              "started": 5.0, "prompt_tokens": 500, "completion_tokens": 2000})
        svc.handle_tick(svc.sampler.sample_once())  # type: ignore[arg-type]
    led = svc.ledger
    assert led.runs["r"].energy_mj == 24_000_000  # the 60 s of the stream, all of it
    assert led.idle_mj == 4_000_000  # [0,5) before and [65,70) after
    assert led.accounted_mj() == led.total_mj


def test_in_flight_request_holds_the_pool_past_the_carry() -> None:
    """With scrapes, windows during generation pool their energy; a pool older than the carry
    went to 'unmetered' even while the gate's request was still streaming."""
    ledger = EnergyLedger(window_s=5, carry_s=60)
    for t in range(0, 101):
        if t == 0:
            ledger.begin("req1", "A", ts=0.0)
        feed(ledger, 400, [float(t)])
        if t % 5 == 2 and t < 90:
            ledger.add_scraped(10, 50, ts=float(t))  # the server works on A's request
        if t == 90:
            ledger.add_tokens("A", 10 * 18, 50 * 18, ts=90.0, started=0.0)
            ledger.end("req1", ts=90.0)
        ledger.close_until(float(t))
    # 0..90 s at 400 W = 36 000 J belongs to A; [90,100) after the answer is idle.
    assert ledger.runs["A"].energy_mj == 36_000_000
    assert ledger.unmetered_mj == 0 and ledger.idle_mj == 4_000_000
    assert ledger.accounted_mj() == ledger.total_mj


def test_in_flight_pool_split_between_two_runs_by_tokens() -> None:
    ledger = EnergyLedger(window_s=5)
    for t in range(0, 21):
        feed(ledger, 200, [float(t)])
        if t == 1:
            ledger.begin("a", "A", ts=1.0)
        if t == 2:
            ledger.begin("b", "B", ts=2.0)
        if t == 7:
            ledger.add_tokens("B", 0, 100, ts=7.0, started=2.0)
            ledger.end("b", ts=7.0)
        if t == 12:
            ledger.add_tokens("A", 0, 300, ts=12.0, started=1.0)
            ledger.end("a", ts=12.0)
        ledger.close_until(float(t))
    # Busy from window 0 to window 2 (3 x 1000 J) while A or B was in flight: split 300:100.
    assert ledger.runs["A"].energy_mj == 2_250_000 and ledger.runs["B"].energy_mj == 750_000
    assert ledger.idle_mj == 1_000_000 and ledger.unmetered_mj == 0
    assert ledger.accounted_mj() == ledger.total_mj


def test_request_without_usage_still_owns_its_energy() -> None:
    ledger = EnergyLedger(window_s=5)
    feed(ledger, 100, [float(t) for t in range(0, 16)])
    ledger.begin("a", "A", ts=0.0)
    ledger.end("a", ts=9.0)  # an answer with no usage (unmetered server): time share
    ledger.close_until(15)
    assert ledger.runs["A"].energy_mj == 1_000_000 and ledger.idle_mj == 500_000
    assert ledger.accounted_mj() == ledger.total_mj


# --- live watts --------------------------------------------------------------------------------


def test_live_watts_divide_by_the_time_sampled() -> None:
    ledger = EnergyLedger(window_s=5)
    feed(ledger, 400, [2.5, 3.5, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])  # sampling starts late
    ledger.close_until(10)
    figures = ledger.recent(30, has_energy=True, **PRICES)["all"]
    assert figures["watts"] == pytest.approx(400.0)  # not 400 x 7.5 / 10 = 300


# --- NVML: memory v2 and process lists _v2 -----------------------------------------------------


def test_memory_info_asks_v2_so_reserved_memory_is_not_used() -> None:
    gpu = FakeGpu(0, mem_used=10 * GiB, mem_reserved=1 * GiB)
    fake = FakeNvml([gpu])
    s = NvmlSampler(nvml=fake).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert s.mem_used == 10 * GiB and "mem_used" not in s.missing  # what nvidia-smi shows
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == 1


def test_memory_info_falls_back_to_v1_on_an_older_driver() -> None:
    gpu = FakeGpu(0, mem_used=10 * GiB, mem_reserved=1 * GiB)
    fake = FakeNvml([gpu], missing={"nvmlDeviceGetMemoryInfo_v2"})
    sampler = NvmlSampler(nvml=fake)
    for t in range(3):
        s = sampler.sample_once(now=float(t)).gpus[0]  # type: ignore[union-attr]
        assert s.mem_used == 11 * GiB and s.mem_total == 80 * GiB and "mem_used" not in s.missing
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == 1  # not asked again
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 3


def test_process_lists_fall_back_to_v2_on_an_older_driver() -> None:
    gpu = FakeGpu(0, procs=[(4242, 3 * GiB)], graphics=[(99, 1 * GiB)])
    fake = FakeNvml([gpu], missing={"nvmlDeviceGetComputeRunningProcesses_v3",
                                    "nvmlDeviceGetGraphicsRunningProcesses_v3"})
    sampler = NvmlSampler(nvml=fake, pid_to_run={4242: "run-a"}.get)
    for t in range(3):
        s = sampler.sample_once(now=float(t)).gpus[0]  # type: ignore[union-attr]
        assert [(p.pid, p.used_bytes, p.run_id) for p in s.procs] == [
            (99, 1 * GiB, None), (4242, 3 * GiB, "run-a")]
        assert s.procs_missing is None
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 3
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1  # the _v3 path not retried


def test_process_lists_v2_missing_too_is_a_reason() -> None:
    gpu = FakeGpu(0, procs=[(1, GiB)])
    fake = FakeNvml([gpu], missing={f"nvmlDevice{k}RunningProcesses{v}" for k in
                                    ("GetCompute", "GetGraphics") for v in ("_v3", "_v2")})
    s = NvmlSampler(nvml=fake).sample_once(now=0.0).gpus[0]  # type: ignore[union-attr]
    assert s.procs == [] and s.procs_missing is not None
    assert "FunctionNotFound" in s.procs_missing
    assert isinstance(pynvml.NVMLError_FunctionNotFound(), pynvml.NVMLError)


# --- scrapes: requests and time to first token -------------------------------------------------

VLLM_REQ = """\
vllm:prompt_tokens_total{{model_name="q"}} {p}
vllm:generation_tokens_total{{model_name="q"}} {g}
vllm:request_success_total{{finished_reason="stop",model_name="q"}} {stop}
vllm:request_success_total{{finished_reason="length",model_name="q"}} {length}
vllm:time_to_first_token_seconds_bucket{{le="+Inf",model_name="q"}} {n}
vllm:time_to_first_token_seconds_sum{{model_name="q"}} {ttft}
vllm:time_to_first_token_seconds_count{{model_name="q"}} {n}
"""
SGLANG_REQ = """\
sglang:prompt_tokens_total{{model_name="l"}} {p}
sglang:generation_tokens_total{{model_name="l"}} {g}
sglang:num_requests_total{{model_name="l"}} {reqs}
sglang:time_to_first_token_seconds_sum{{model_name="l"}} {ttft}
sglang:time_to_first_token_seconds_count{{model_name="l"}} {reqs}
"""


async def test_scrape_reads_requests_and_ttft_vllm(serve) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = VLLM_REQ.format(p=100, g=50, stop=3, length=1, n=4, ttft=0.8)
    second = VLLM_REQ.format(p=300, g=250, stop=7, length=2, n=9, ttft=2.3)
    target = await serve(Served([first, second]))
    scraper = Scraper([target])
    t = scraper.targets[0]
    await scraper.scrape(t)
    await scraper.scrape(t)
    status = scraper.status()[0]
    assert status["requests"] == 5  # (7 + 2) - (3 + 1)
    assert status["ttft_mean_s"] == pytest.approx((2.3 - 0.8) / (9 - 4))


async def test_scrape_reads_requests_and_ttft_sglang(serve) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = SGLANG_REQ.format(p=10, g=5, reqs=2, ttft=0.2)
    second = SGLANG_REQ.format(p=20, g=15, reqs=6, ttft=1.0)
    target = await serve(Served([first, second]))
    scraper = Scraper([target])
    await scraper.scrape(scraper.targets[0])
    await scraper.scrape(scraper.targets[0])
    status = scraper.status()[0]
    assert status["kind"] == "sglang" and status["requests"] == 4
    assert status["ttft_mean_s"] == pytest.approx(0.2)


# --- native usage of llama.cpp and TGI ---------------------------------------------------------


def meter(body: bytes, content_type: str) -> Any:
    m = UsageMeter(content_type)
    for i in range(0, len(body), 7):
        m.feed(body[i:i + 7])
    return m.finish()


def test_llama_cpp_native_completion_is_metered() -> None:
    body = json.dumps({"content": "hi", "model": "tiny.gguf", "tokens_predicted": 17,
                       "tokens_evaluated": 42, "stop": True,
                       "timings": {"prompt_n": 42, "predicted_n": 17}}).encode()
    u = meter(body, "application/json; charset=utf-8")
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (42, 17, 59)
    assert u.model == "tiny.gguf"


def test_llama_cpp_native_stream_is_metered() -> None:
    chunks = [{"content": "a", "stop": False}, {"content": "b", "stop": False},
              {"content": "", "stop": True, "tokens_predicted": 2, "tokens_evaluated": 9}]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    u = meter(body, "text/event-stream")
    assert u is not None and (u.prompt_tokens, u.completion_tokens) == (9, 2)


def test_tgi_generate_is_metered() -> None:
    body = json.dumps({"generated_text": "x", "details": {
        "finish_reason": "length", "generated_tokens": 20, "seed": None,
        "prefill": [{"id": 1, "text": "<s>"}, {"id": 2, "text": "Hi"}, {"id": 3, "text": "!"}],
        "tokens": []}}).encode()
    u = meter(body, "application/json")
    assert u is not None and (u.prompt_tokens, u.completion_tokens) == (3, 20)


def test_tgi_generate_stream_is_metered() -> None:
    events = [{"token": {"id": 5, "text": "a"}, "generated_text": None, "details": None},
              {"token": {"id": 6, "text": "b"}, "generated_text": "ab",
               "details": {"finish_reason": "eos_token", "generated_tokens": 2, "seed": None}}]
    body = b"".join(b"data:" + json.dumps(e).encode() + b"\n\n" for e in events)
    u = meter(body, "text/event-stream")
    assert u is not None and u.completion_tokens == 2 and u.prompt_tokens is None


def test_cached_prompt_tokens_are_read() -> None:
    body = json.dumps({"model": "m", "usage": {
        "prompt_tokens": 900, "completion_tokens": 10, "total_tokens": 910,
        "prompt_tokens_details": {"cached_tokens": 768}}}).encode()
    u = meter(body, "application/json")
    assert u is not None and u.cached_tokens == 768
    anthropic = json.dumps({"type": "message", "model": "c", "usage": {
        "input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 1200}}).encode()
    u = meter(anthropic, "application/json")
    assert u is not None and u.cached_tokens == 1200

