"""Benchmark: the GPU sampler's CPU cost per GPU at 1 Hz and 10 Hz, beside an anchor.

    .venv/bin/python bench/gpu.py [--quick] [--seconds 5] [--gpus 1,8] [--hz 1,10] [--fake | --real]

Figure: process CPU time over wall time while the sampler thread runs for N seconds (the main
thread only sleeps), divided by the number of GPUs. Anchor: the same thread schedule with
sampling disabled (a bare Event.wait loop at the same rate), measured the same way in the same
run. A second figure runs the whole GpuService (sampler, energy ledger, one bus event per tick,
downsampled rows through a real StoreWriter on a temporary SQLite file) on an asyncio loop;
its anchor is the same loop with an idle task.

Where NVML answers (a machine with an NVIDIA driver and GPUs) the real pynvml is used unless
--fake is given, and --gpus is ignored (the machine has what it has). Otherwise the scripted
fake from tests/gpu/fake_nvml.py stands in; its calls are Python, not ctypes into the driver,
so the real cost per call differs (typically real NVML calls cost more; PowerUsage and
process lists are the slow ones). Each row prints: figure, value, anchor, anchor value, ratio.
--quick measures 2 s each (unless --seconds is given). The rows also go through
bench.common.emit (the table `make bench` prints): CPU % for all GPUs beside the anchor, and
where there is more than one GPU, CPU % per GPU beside the anchor divided alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit  # noqa: E402
from console.config.load import Config  # noqa: E402
from console.daemon.bus import Bus  # noqa: E402
from console.gpu.nvml import NvmlSampler  # noqa: E402
from console.gpu.service import GpuService  # noqa: E402


class Meter:
    """Process CPU time over wall time between start() and stop(): the steady state only
    (NVML init, opening the store and imports are one-off costs and stay outside)."""

    def start(self) -> None:
        self.c0, self.w0 = time.process_time(), time.monotonic()

    def stop(self) -> float:
        self.share = (time.process_time() - self.c0) / (time.monotonic() - self.w0)
        return self.share


def cpu_share(fn: Any, seconds: float) -> float:
    meter = Meter()
    fn(seconds, meter)
    return meter.share


def fake_module(n: int) -> Any:
    from tests.gpu.fake_nvml import FakeGpu, FakeNvml

    gpus = [FakeGpu(i, power_w=300.0, procs=[(100_000 + i, 1 << 30)]) for i in range(n)]
    return FakeNvml(gpus, clock=time.monotonic)


def real_gpu_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


def run_sampler(nvml: Any, hz: float) -> Any:
    def body(seconds: float, meter: Meter) -> None:
        sampler = NvmlSampler(hz, nvml=nvml, pid_to_run=lambda pid: None).start()
        while sampler.ticks < 1:  # NVML init and the first tick are not the steady state
            time.sleep(0.01)
        meter.start()
        time.sleep(seconds)
        meter.stop()
        sampler.stop()
        assert sampler.ticks >= int(seconds * hz) - 2, "the sampler fell behind"

    return body


def run_bare_loop(hz: float) -> Any:
    def body(seconds: float, meter: Meter) -> None:
        stop = threading.Event()

        def loop() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                next_at += 1.0 / hz
                stop.wait(max(0.0, next_at - time.monotonic()))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        meter.start()
        time.sleep(seconds)
        meter.stop()
        stop.set()
        thread.join()

    return body


def run_service(nvml: Any, hz: float, tmp: Path) -> Any:
    def body(seconds: float, meter: Meter) -> None:
        from store.writer import StoreWriter

        async def main() -> None:
            writer = StoreWriter(tmp / f"bench-{hz}-{time.monotonic_ns()}.db", os.urandom(32))
            writer.start()
            bus = Bus()
            sub = bus.subscribe(("gpu",))
            svc = GpuService(writer, bus, Config(gpu_sample_hz=hz, price_kwh=0.3), None,
                             nvml=nvml, subscribe_tokens=False)
            await svc.start()
            while svc.sampler.ticks < 1:
                await asyncio.sleep(0.01)
            meter.start()
            end = time.monotonic() + seconds
            while time.monotonic() < end:  # a TUI-like reader draining the bus, plus tokens
                svc.on_tokens("bench", 100, 200)
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                await asyncio.sleep(0.25)
            meter.stop()
            await svc.stop()
            await asyncio.to_thread(writer.close)

        asyncio.run(main())

    return body


def run_idle_loop(seconds: float, meter: Meter) -> None:
    async def main() -> None:
        meter.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.25)
        meter.stop()

    asyncio.run(main())


def warm_up(tmp: Path) -> None:
    """Import and exercise every path once so the first measured row pays no import cost."""
    run_service(fake_module(1), 10, tmp)(0.3, Meter())
    run_sampler(fake_module(1), 10)(0.3, Meter())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run: 2 s per measurement")
    ap.add_argument("--seconds", type=float, default=None,
                    help="per measurement (default 5, 2 with --quick)")
    ap.add_argument("--gpus", default="1,8", help="fake GPU counts (ignored with real NVML)")
    ap.add_argument("--hz", default="1,10")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--fake", action="store_true", help="use the fake even if NVML answers")
    mode.add_argument("--real", action="store_true", help="fail unless real NVML answers")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0
    rates = [float(h) for h in args.hz.split(",")]
    real_n = 0 if args.fake else real_gpu_count()
    if args.real and not real_n:
        sys.exit("--real: NVML does not answer here (no NVIDIA driver or no GPU)")
    if real_n:
        import pynvml

        setups = [(f"real NVML x{real_n}", real_n, lambda n: pynvml)]
    else:
        setups = [(f"fake NVML x{n}", n, fake_module) for n in
                  (int(g) for g in args.gpus.split(","))]
    print(f"# GPU sampler CPU cost, {args.seconds:g} s per measurement, "
          f"{'real NVML' if real_n else 'scripted fake NVML (no GPU here)'}; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'figure (CPU % per GPU)':<36} {'value':>9} {'all GPUs':>9}  {'anchor (CPU %)':<24} "
          f"{'value':>9} {'ratio':>7}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(Path(tmp))
        for hz in rates:
            anchor = cpu_share(run_bare_loop(hz), args.seconds)
            service_anchor = cpu_share(run_idle_loop, args.seconds)
            for label, n, make in setups:
                figure = cpu_share(run_sampler(make(n), hz), args.seconds)
                _row(f"sampler {label} @ {hz:g} Hz", figure, n, f"bare loop @ {hz:g} Hz", anchor,
                     rows)
                whole = cpu_share(run_service(make(n), hz, Path(tmp)), args.seconds)
                _row(f"service {label} @ {hz:g} Hz", whole, n, "idle asyncio loop",
                     service_anchor, rows)
    print()
    emit(rows, f"gpu (sampler CPU %, {args.seconds:g} s each, "
               f"{'real NVML' if real_n else 'scripted fake NVML'})")


def _row(figure: str, share: float, n: int, anchor: str, anchor_share: float,
         rows: list[Row]) -> None:
    """Per GPU, all GPUs, the anchor; ratio = all GPUs / anchor (same process, same run)."""
    ratio = f"{share / anchor_share:.1f}x" if anchor_share > 0 else "n/a"
    print(f"{figure:<36} {share * 100 / n:>8.3f}% {share * 100:>8.3f}%  {anchor:<24} "
          f"{anchor_share * 100:>8.3f}% {ratio:>7}")
    rows.append(Row(f"{figure}, CPU{' all GPUs' if n > 1 else ''}", share * 100, "%", anchor,
                    anchor_share * 100))
    if n > 1:  # the same measurement over n, beside the same anchor over n: the ratio stays
        rows.append(Row(f"{figure}, CPU per GPU", share * 100 / n, "%", f"{anchor}, over {n}",
                        anchor_share * 100 / n))


if __name__ == "__main__":
    main()
