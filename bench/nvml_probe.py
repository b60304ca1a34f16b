"""What Pilothouse's NVML sampler reads from a real GPU, beside nvidia-smi's own figures.

    python3 bench/nvml_probe.py [--alloc-gib 4]

For a lent GPU machine (docs/gpu-validation.md). This process takes --alloc-gib of GPU memory
with torch (when torch sees a GPU), then one sample of the real sampler (real pynvml) is printed
field by field, with: nvidia-smi's memory.used, power.draw and name for the same GPU; whether
this process is in the GPU's process list and mapped to its run (the sampler's pid -> run
lookup is given this PID); which fields the driver does not support, and why. Exit status 1
when the sampler sees no GPU, a used-memory figure differs from nvidia-smi's by over 5%, or
this process's memory is not mapped to the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.gpu.nvml import NvmlSampler  # noqa: E402

RUN = "probe"


def smi(index: int) -> dict[str, str]:
    fields = ["name", "driver_version", "memory.used", "memory.total", "power.draw",
              "power.limit", "temperature.gpu", "clocks.sm"]
    out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=" + ",".join(fields),
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=30).stdout.strip()
    return dict(zip(fields, [v.strip() for v in out.split(",")], strict=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alloc-gib", type=float, default=4.0)
    args = ap.parse_args()
    held = None
    try:
        import torch

        if torch.cuda.is_available():
            held = torch.empty(int(args.alloc_gib * (1 << 30)), dtype=torch.uint8, device="cuda")
            torch.cuda.synchronize()
            print(f"this process (PID {os.getpid()}) holds {args.alloc_gib:g} GiB on cuda:0")
    except ImportError:
        print("torch is not installed: no memory of ours on the GPU")
    sampler = NvmlSampler(pid_to_run={os.getpid(): RUN}.get)
    tick = sampler.sample_once()
    time.sleep(0.5)
    tick = sampler.sample_once() or tick  # a second sample: the energy interval exists
    print(f"sampler status: {sampler.status}")
    if tick is None:
        sys.exit("the sampler sees no GPU")
    ok = True
    for g in tick.gpus:
        ref = smi(g.index)
        print(f"GPU {g.index}: {g.name} ({g.uuid}); nvidia-smi: {ref}")
        for name in ("power_mw", "energy_mj", "util_gpu", "util_mem", "mem_used", "mem_total",
                     "temp_c", "sm_clock_mhz", "mem_clock_mhz", "power_limit_mw"):
            print(f"  {name:<15} {getattr(g, name)!s:>20}   {g.missing.get(name, '')}")
        print(f"  processes: {[(p.pid, p.used_bytes, p.kind, p.run_id) for p in g.procs]}"
              f"{'  (' + g.procs_missing + ')' if g.procs_missing else ''}")
        try:
            ours_mib, smi_mib = (g.mem_used or 0) / (1 << 20), float(ref["memory.used"])
            off = abs(ours_mib - smi_mib) / max(1.0, smi_mib)
            print(f"  memory used: ours {ours_mib:.0f} MiB, nvidia-smi {smi_mib:.0f} MiB "
                  f"({off * 100:.1f}% apart) {'ok' if off <= 0.05 else 'OFF'}")
            ok &= off <= 0.05
            print(f"  power: ours {(g.power_mw or 0) / 1000:.1f} W, nvidia-smi "
                  f"{ref['power.draw']} W (read a moment apart)")
        except (KeyError, ValueError) as exc:
            print(f"  nvidia-smi's figures could not be read: {exc}")
            ok = False
        if held is not None:
            mapped = g.run_memory().get(RUN)
            print(f"  this process mapped to run {RUN!r}: {mapped} bytes "
                  f"{'ok' if mapped else 'OFF (not in the process list, or not mapped)'}")
            ok &= bool(mapped)
    sampler.stop()
    print("probe ok" if ok else "probe: some figures are OFF")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
