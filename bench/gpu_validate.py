"""Validate the GPU meter on a machine with an NVIDIA GPU, against nvidia-smi.

    .venv/bin/python bench/gpu_validate.py [--idle 10] [--burn 30] [--gen 60] [--hz 10]
                                           [--layers 16] [--batch 8] [--out result.json]
    .venv/bin/python bench/gpu_validate.py --fake    # plumbing check, no GPU needed

Needs torch (CUDA build) and transformers installed beforehand; downloads NOTHING: the model is
built from a LlamaConfig with random weights (HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 are
set before transformers is imported). Phases, with Pilothouse's real GpuService (real pynvml,
real StoreWriter on a temporary file, 1 s windows) and `nvidia-smi -lms 100` logging beside it:

  idle   nothing runs                        -> our W vs nvidia-smi; all energy "idle"
  burn   bf16 matmuls (PyTorch, no tokens)   -> our W vs nvidia-smi; energy "idle" (no tokens)
  gen    greedy generation, random weights   -> tokens/s, W, J/token vs nvidia-smi's integral
  tail   nothing runs                        -> the meter settles back

Each generate() call is reported to the service as the gate reports a metered request (an
inference.start event when it goes upstream, then its usage with its start when it ends).
Compared per phase: mean board power from our windows, from the raw NVML energy counter read
directly, and from nvidia-smi's power.draw; tokens/s as counted here and as the service counted
them; the run's J/token against nvidia-smi's trapezoid integral over the run's windows. A figure
within tolerance prints "ok"; the exit status is 1 when any is not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.config.load import Config  # noqa: E402
from console.daemon.bus import Bus  # noqa: E402
from console.daemon.runs import Run  # noqa: E402
from console.gpu.service import GpuService  # noqa: E402

RUN = "validate"
TOL = {"watts": 0.10, "tok_s": 0.02, "j_per_token": 0.10}


def integrate(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Joules from (ts, W) readings between t0 and t1: the trapezoid, with the power at the
    edges interpolated. None when the readings do not cover the span."""
    pts = sorted(points)
    if len(pts) < 2 or pts[0][0] > t0 or pts[-1][0] < t1:
        return None

    def at(t: float) -> float:
        for (ta, wa), (tb, wb) in zip(pts, pts[1:], strict=False):
            if ta <= t <= tb:
                return wa if tb == ta else wa + (wb - wa) * (t - ta) / (tb - ta)
        return pts[-1][1]

    inside = [(t0, at(t0)), *[p for p in pts if t0 < p[0] < t1], (t1, at(t1))]
    return sum((tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb)
               in zip(inside, inside[1:], strict=False))


class PowerLog:
    """nvidia-smi's readings (or the fake GPU's) as (wall ts, total W over all GPUs)."""

    def __init__(self, fake: Any = None) -> None:
        self.fake = fake
        self.points: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self.field = "fake"

    def start(self) -> None:
        if self.fake is not None:
            threading.Thread(target=self._fake_loop, daemon=True).start()
            return
        if shutil.which("nvidia-smi") is None:
            sys.exit("nvidia-smi is not on PATH")
        for field in ("power.draw.instant", "power.draw"):
            cmd = ["nvidia-smi", f"--query-gpu=index,{field}", "--format=csv,noheader,nounits",
                   "-lms", "100"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if first and first.split(",")[0].strip().isdigit():
                self._proc, self.field = proc, field
                threading.Thread(target=self._read, args=(first,), daemon=True).start()
                return
            proc.kill()
            proc.wait()
        sys.exit("nvidia-smi could not log power.draw")

    def _read(self, first: str) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        n_gpus = int(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
                     .stdout.count("GPU "))
        batch: list[float] = []
        line = first
        while line:
            parts = [p.strip() for p in line.split(",")]
            try:
                batch.append(float(parts[1]))
            except (IndexError, ValueError):
                pass  # "[N/A]" and the like
            if len(batch) >= n_gpus:
                self.points.append((time.time(), sum(batch)))
                batch = []
            line = self._proc.stdout.readline()

    def _fake_loop(self) -> None:
        while not self._stop.is_set():
            self.points.append((time.time(), sum(g.power_mw for g in self.fake.gpus) / 1000))
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def mean_w(self, t0: float, t1: float) -> float | None:
        values = [w for t, w in self.points if t0 <= t < t1]
        return sum(values) / len(values) if values else None

    def energy_j(self, t0: float, t1: float) -> float | None:
        return integrate(self.points, t0, t1)


def counter_j(nvml: Any) -> float | None:
    """The NVML energy counters of all GPUs, read directly (not through the sampler)."""
    try:
        total = 0
        for i in range(nvml.nvmlDeviceGetCount()):
            total += nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(i))
        return total / 1000.0
    except Exception:
        return None


# --- workloads -----------------------------------------------------------------------------------


class Workload:
    """The real thing: torch matmuls and a random-weight Llama generating."""

    def __init__(self, layers: int, batch: int, prompt: int, new_tokens: int) -> None:
        import torch

        from bench.torch_server import random_llama

        if not torch.cuda.is_available():
            sys.exit("torch sees no CUDA device")
        self.torch = torch
        self.model = random_llama(layers, 2048, "cuda", max_positions=4096)
        self.batch, self.prompt, self.new_tokens = batch, prompt, new_tokens
        self.ids = torch.randint(100, 30000, (batch, prompt), device="cuda")
        self.generate()  # warm-up (kernels, allocator) outside the measured phases

    def burn(self, seconds: float) -> None:
        torch = self.torch
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(20):
                a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()

    def generate(self) -> tuple[int, int]:
        torch = self.torch
        with torch.inference_mode():
            out = self.model.generate(self.ids, attention_mask=torch.ones_like(self.ids),
                                      max_new_tokens=self.new_tokens,
                                      min_new_tokens=self.new_tokens, do_sample=False,
                                      pad_token_id=0)
        torch.cuda.synchronize()
        return self.batch * self.prompt, self.batch * (out.shape[1] - self.prompt)


class FakeWorkload:
    """--fake: sleeps while the fake GPUs draw more power; 'generates' 64 tokens per call.
    A call lasts call_s: the H200's took 2.5 to 3.7 s (several 1 s windows close during each,
    which is what the meter has to get right)."""

    def __init__(self, fake: Any, call_s: float = 2.5) -> None:
        self.fake, self.call_s = fake, call_s

    def _power(self, watts: float) -> None:
        for g in self.fake.gpus:
            g.power_mw = int(watts * 1000)

    def burn(self, seconds: float) -> None:
        self._power(400)
        time.sleep(seconds)
        self._power(60)

    def generate(self) -> tuple[int, int]:
        self._power(300)
        time.sleep(self.call_s)
        self._power(60)
        return 128, 64


# --- the run ---------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from store.writer import StoreWriter

    fake = None
    if args.fake:
        from tests.gpu.fake_nvml import FakeGpu, FakeNvml

        fake = FakeNvml([FakeGpu(0, power_w=60.0, procs=[(os.getpid(), 2 << 30)])],
                        clock=time.time)
        nvml: Any = fake
        work: Any = FakeWorkload(fake)
    else:
        import pynvml

        nvml = pynvml
        nvml.nvmlInit()
        print("building the model (random weights, nothing downloaded) ...", flush=True)
        work = Workload(args.layers, args.batch, args.prompt, args.new_tokens)
    tmp = Path(tempfile.mkdtemp(prefix="ph-gpu-validate-"))
    writer = StoreWriter(tmp / "history.db", os.urandom(32)).start()
    me = Run(id=RUN, profile="validate", backend="none", workspace=str(tmp), command=["x"],
             actor="validate", pids=[os.getpid()])
    svc = GpuService(writer, Bus(), Config(gpu_sample_hz=args.hz, price_kwh=0.30,
                                           price_gpu_hour=2.00),
                     SimpleNamespace(runs={RUN: me}, handles={}), nvml=nvml, window_s=1.0,
                     subscribe_tokens=False)
    smi = PowerLog(fake)
    smi.start()
    await svc.start()
    loop = asyncio.get_running_loop()
    phases: dict[str, dict[str, Any]] = {}
    counted = {"in": 0, "out": 0, "calls": 0}

    def gen_loop(seconds: float) -> None:
        # Each generate() call is told to the service as the gate tells it of a metered
        # request: inference.start when it goes upstream (windows that close while it runs are
        # held for it, not classed idle), then its usage with its start when it ends.
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started, key = time.time(), f"gen-{counted['calls']}"
            loop.call_soon_threadsafe(svc.handle_event, {
                "kind": "inference.start", "run_id": RUN, "request_id": key, "ts": started})
            p, c = work.generate()
            counted["in"] += p
            counted["out"] += c
            counted["calls"] += 1
            loop.call_soon_threadsafe(svc.handle_event, {
                "kind": "tokens", "run_id": RUN, "request_id": key, "ts": time.time(),
                "started": started, "prompt_tokens": p, "completion_tokens": c})

    async def phase(name: str, seconds: float, body: Any) -> None:
        print(f"phase {name}: {seconds:g} s", flush=True)
        t0, e0 = time.time(), counter_j(nvml)
        await asyncio.to_thread(body, seconds)
        t1, e1 = time.time(), counter_j(nvml)
        phases[name] = {"t0": t0, "t1": t1, "counter_j": None if e0 is None or e1 is None
                        else e1 - e0}

    await asyncio.sleep(2.0)  # the sampler's first intervals
    await phase("idle", args.idle, time.sleep)
    await phase("burn", args.burn, work.burn)
    before = dict(counted)
    await phase("gen", args.gen, gen_loop)
    phases["gen"]["tokens_in"] = counted["in"] - before["in"]
    phases["gen"]["tokens_out"] = counted["out"] - before["out"]
    await phase("tail", args.idle, time.sleep)
    await asyncio.sleep(2.5)  # let the last windows close
    snapshot = svc.snapshot()
    await svc.stop()
    smi.stop()
    writer.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"phases": compare(phases, svc, smi), "snapshot": snapshot,
            "smi_field": smi.field, "report": svc.report(RUN)}


def compare(phases: dict[str, dict[str, Any]], svc: GpuService, smi: PowerLog) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ph in phases.items():
        # Our windows wholly inside the phase (1 s windows; the edges are left out on both
        # sides so nvidia-smi is read over exactly the same span).
        ws = [w for w in svc.ledger.closed if w.start >= ph["t0"] and w.end <= ph["t1"]]
        if not ws:
            out[name] = {"error": "no closed windows inside the phase"}
            continue
        t0, t1 = ws[0].start, ws[-1].end
        valid = [w for w in ws if not w.invalid]
        secs = sum(w.end - w.start for w in valid) or None
        ours_j = sum(w.energy_mj for w in valid) / 1000.0
        row: dict[str, Any] = {
            "seconds": round(t1 - t0, 1), "invalid_windows": len(ws) - len(valid),
            "ours_w": ours_j / secs if secs else None,
            "counter_w": ph["counter_j"] / (ph["t1"] - ph["t0"]) if ph["counter_j"] else None,
            "smi_w": smi.mean_w(t0, t1),
            "idle_share": sum(w.energy_mj for w in ws if w.kind == "idle")
            / max(1, sum(w.energy_mj for w in ws)),
        }
        if "tokens_out" in ph:
            tokens = sum(w.runs.get(RUN, [0, 0])[1] for w in ws)
            # The run's energy: windows held while its requests were in flight, settled when
            # the last one ended (in the tail, as a gate's stream settles after it ends); so
            # nvidia-smi is integrated over those windows, whichever phase they fall in.
            held = [w for w in svc.ledger.closed
                    if w.end > ph["t0"] and w.kind in ("pooled", "attributed")]
            run = svc.ledger.runs.get(RUN)
            smi_j = smi.energy_j(held[0].start, held[-1].end) if held else None
            # Tokens: the run's total over the phase's seconds. Per window they land where
            # each answer's usage arrives (windows closed while it ran are not reopened), so
            # the windows inside the phase hold whichever answers ended inside it.
            row.update({
                "tok_s_counted": ph["tokens_out"] / (ph["t1"] - ph["t0"]),
                "tok_s_ours": run.tokens_out / (ph["t1"] - ph["t0"]) if run else None,
                "tok_s_in_windows": tokens / (t1 - t0),
                "run_seconds": round(held[-1].end - held[0].start, 1) if held else None,
                "j_per_token_ours": run.energy_mj / 1000 / run.tokens_out
                if run and run.tokens_out else None,
                "j_per_token_smi": smi_j / ph["tokens_out"] if ph["tokens_out"] and smi_j
                else None,
            })
        out[name] = row
    return out


def verdicts(result: dict[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    rows = []

    def check(what: str, ours: float | None, ref: float | None, tol: float) -> None:
        if ours is None or ref is None or ref == 0:
            rows.append((what, ours, ref, "n/a"))
        else:
            diff = (ours - ref) / ref
            rows.append((what, ours, ref, f"{'ok' if abs(diff) <= tol else 'OFF'} "
                                          f"({diff * 100:+.1f}%)"))

    for name, r in result["phases"].items():
        if "error" in r:
            rows.append((f"{name}: {r['error']}", None, None, "OFF"))
            continue
        check(f"{name}: W ours vs nvidia-smi", r["ours_w"], r["smi_w"], TOL["watts"])
        check(f"{name}: W ours vs NVML counter", r["ours_w"], r["counter_w"], TOL["watts"])
        if name == "gen":
            check("gen: tok/s service vs counted", r["tok_s_ours"], r["tok_s_counted"],
                  TOL["tok_s"])
            check("gen: J/token ours vs nvidia-smi", r["j_per_token_ours"],
                  r["j_per_token_smi"], TOL["j_per_token"])
        else:
            rows.append((f"{name}: energy classed idle (no tokens)", r["idle_share"], 1.0,
                         "ok" if r["idle_share"] > 0.99 else "OFF"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--burn", type=float, default=30)
    ap.add_argument("--gen", type=float, default=60)
    ap.add_argument("--hz", type=float, default=10)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--fake", action="store_true", help="scripted fake NVML, no torch")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = asyncio.run(measure(args))
    print(f"\nnvidia-smi field: {result['smi_field']}; status: {result['snapshot']['status']}")
    print(f"{'check':<42} {'ours':>12} {'reference':>12}  verdict")
    rows = verdicts(result)

    def fmt(v: Any) -> str:
        return f"{v:12.4g}" if isinstance(v, float | int) else f"{'-':>12}"

    for what, ours, ref, verdict in rows:
        print(f"{what:<42} {fmt(ours)} {fmt(ref)}  {verdict}")
    mem = result["snapshot"]["runs"].get(RUN, {}).get("gpu_memory_mib")
    print(f"this process mapped to run {RUN!r} with GPU memory: {mem if mem else 'NOT SEEN'} MiB")
    if args.out:
        args.out.write_text(json.dumps({**result, "verdicts": rows}, indent=2, default=str))
    sys.exit(1 if any(v[3].startswith("OFF") for v in rows) else 0)


if __name__ == "__main__":
    main()
