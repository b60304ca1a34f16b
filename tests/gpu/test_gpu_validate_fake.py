"""bench/gpu_validate.py's own arithmetic, with the scripted NVML: every check it prints holds.

Found on an H200 (2026-12-04): the script told the meter of each generate() call only at its
end, so the 1 s windows that closed during the 2.5-3.7 s call were classed idle, and it read
J/token from the windows inside the phase while the run's energy settles after the last call
ends: J/token came out 71% under nvidia-smi's. It now tells the meter as the gate does
(inference.start, then the usage with its start) and reads the run's own totals. The fake's
calls last 2.5 s, as the H200's did, so this run has the same shape: two of them (--gen 4.9;
a third started at 5 s made the phase 7.5 s long).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_validation_with_the_fake_gpu_passes_every_check() -> None:
    proc = subprocess.run([sys.executable, "bench/gpu_validate.py", "--fake", "--idle", "2",
                           "--burn", "2", "--gen", "4.9"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout + proc.stderr
    checks = [line for line in out.splitlines() if line.startswith(("idle:", "burn:", "gen:",
                                                                     "tail:"))]
    assert any(line.startswith("gen: J/token") for line in checks), out
    assert any(line.startswith("gen: tok/s service") for line in checks), out
    assert [line for line in checks if not re.search(r"\sok( \(|$)", line)] == [], out
    assert proc.returncode == 0, out
