"""`pilothouse replay` values that used up the machine (s26 CLI sweep, finding 1).

`--concurrency 99999999999999999999` made lanes until memory ran out (750 MB after 6 s and
growing); `--duration nan` passed its minimum (NaN is below nothing) and looped at full CPU for
ever; `--price-kwh nan` and `-1` were taken. Each is now refused as it is read, saying the bound,
before anything is sent or started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "console.cli.main"]


@pytest.mark.parametrize("args,said", [
    (["--concurrency", "99999999999999999999"], "from 1 to 4096"),
    (["--concurrency", "1,5000"], "from 1 to 4096"),
    (["--duration", "nan"], "nan is not a finite number"),
    (["--duration", "inf"], "inf is not a finite number"),
    (["--price-kwh", "nan"], "nan is not a finite number"),
    (["--price-kwh", "-1"], "-1 is smaller than the minimum 0"),
    (["--price-gpu-hour", "-0.5"], "-0.5 is smaller than the minimum 0"),
])
def test_a_value_past_its_bound_is_refused_before_anything_runs(
        tmp_path: Path, args: list[str], said: str) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(tmp_path / "home")
    done = subprocess.run([*CLI, "replay", str(trace), "--url", "http://127.0.0.1:9/v1",
                           "--model", "m", "--no-store", *args], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
