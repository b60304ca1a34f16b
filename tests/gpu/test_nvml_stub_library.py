"""The sampler through the real pynvml (nvidia-ml-py's own ctypes code) against a stand-in
libnvidia-ml.so.1 built from tests/gpu/stub_nvml.c at test time: a current driver and an
older one (no nvmlDeviceGetMemoryInfo_v2, no *RunningProcesses_v3). Each runs in a child
process, because pynvml loads the library once per process by name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
GiB = 1 << 30
CHILD = """
import json
from console.gpu.nvml import NvmlSampler
s = NvmlSampler()
ticks = [s.sample_once(now=float(t)) for t in range(2)]
g = ticks[-1].gpus[0]
print(json.dumps({"status": s.status, "name": g.name, "power_mw": g.power_mw,
                  "energy_mj": g.energy_mj, "mem_used": g.mem_used, "mem_total": g.mem_total,
                  "procs": [[p.pid, p.used_bytes] for p in g.procs],
                  "procs_missing": g.procs_missing, "missing": g.missing}))
"""

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")


def sample_with(tmp: Path, *flags: str) -> dict:
    lib = tmp / "lib"
    lib.mkdir()
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib / "libnvidia-ml.so.1"),
                    str(HERE / "stub_nvml.c"), *flags], check=True)
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=HERE.parents[1],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_current_driver_memory_v2_and_v3_process_lists(tmp_path: Path) -> None:
    got = sample_with(tmp_path, "-DNEW_DRIVER")
    assert got["status"] == "1 NVIDIA GPU, driver 470.256.02" and got["name"] == "Stub A100"
    assert (got["power_mw"], got["energy_mj"]) == (300_000, 123_456_789)
    assert got["mem_used"] == 10 * GiB and got["mem_total"] == 80 * GiB  # reserved left out
    assert got["procs"] == [[4242, 3 * GiB]] and got["procs_missing"] is None
    assert got["missing"] == {}


def test_older_driver_falls_back_to_memory_v1_and_v2_process_lists(tmp_path: Path) -> None:
    got = sample_with(tmp_path)
    assert got["mem_used"] == 11 * GiB and "mem_used" not in got["missing"]  # v1's count
    assert got["procs"] == [[4242, 3 * GiB]] and got["procs_missing"] is None
    assert got["missing"] == {}
