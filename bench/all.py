"""`make bench`: run every bench script, then print one table of every figure beside its anchor.

Each script runs in its own process (quick mode unless --full), writing its rows to a shared
JSON-lines file through bench.common.emit. A script that exits non-zero, or exits without
reporting a row, counts as failed; the rows it did report are still shown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import Row, format_sections  # noqa: E402

SCRIPTS = [
    "store.py", "hook.py", "sandbox.py", "cli.py", "gate.py", "gpu.py", "tui.py", "replay.py",
    "policy.py",
]


def read_rows(path: str) -> list[tuple[str, Row]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            data = json.loads(line)
            out.append((data.get("script", ""), Row(
                data["figure"], data["value"], data["unit"], data["anchor"],
                data["anchor_value"], data.get("target", ""))))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="full-size runs (slow)")
    parser.add_argument("--only", nargs="*", help="script names to run")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one script may run before it is stopped and counted failed")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as tmp:
        out_path = tmp.name
    env = {**os.environ, "PILOTHOUSE_BENCH_OUT": out_path, "PYTHONPATH": str(HERE.parent)}
    failed: list[str] = []
    timings: list[str] = []
    t_all = time.monotonic()
    try:
        for name in SCRIPTS:
            if args.only and name not in args.only and name.removesuffix(".py") not in args.only:
                continue
            script = HERE / name
            if not script.exists():
                print(f"== {name}: missing", flush=True)
                failed.append(f"{name} (missing)")
                continue
            cmd = [sys.executable, str(script)] + ([] if args.full else ["--quick"])
            print(f"== {' '.join(['bench/' + name] + cmd[2:])}", flush=True)
            before = len(read_rows(out_path))
            t = time.monotonic()
            try:
                rc = subprocess.run(cmd, env=env, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timed out"
            secs = time.monotonic() - t
            reported = len(read_rows(out_path)) - before
            timings.append(f"{name} {secs:.0f}s")
            if rc != 0:
                failed.append(f"{name} (exit {rc})")
            elif reported == 0:
                failed.append(f"{name} (no rows reported)")
            print(f"== {name}: {'ok' if rc == 0 and reported else 'FAILED'}, {reported} rows, "
                  f"{secs:.1f}s", flush=True)
        rows = read_rows(out_path)
    finally:
        os.unlink(out_path)
    print()
    print("== all benchmarks (figure beside its anchor, same run"
          f"{'' if args.full else ', --quick'})")
    titles = list(dict.fromkeys(title for title, _ in rows))
    sections = [(title, [r for t, r in rows if t == title]) for title in titles]
    print(format_sections(sections))
    print()
    print(f"took {time.monotonic() - t_all:.0f}s ({', '.join(timings)})")
    if failed:
        print(f"failed or missing: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
