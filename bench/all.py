"""`make bench`: run every bench script, then print one table of every figure beside its anchor.

Each script runs in its own process (quick mode unless --full), writing its rows to a shared
JSON-lines file through bench.common.emit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import Row, format_rows  # noqa: E402

SCRIPTS = ["store.py", "sandbox.py", "gate.py", "gpu.py", "tui.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="full-size runs (slow)")
    parser.add_argument("--only", nargs="*", help="script names to run")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as tmp:
        out_path = tmp.name
    env = {**os.environ, "PILOTHOUSE_BENCH_OUT": out_path, "PYTHONPATH": str(HERE.parent)}
    failed = []
    for name in SCRIPTS:
        if args.only and name not in args.only and name.removesuffix(".py") not in args.only:
            continue
        script = HERE / name
        if not script.exists():
            print(f"== {name}: missing", flush=True)
            failed.append(name)
            continue
        cmd = [sys.executable, str(script)] + ([] if args.full else ["--quick"])
        print(f"== {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd, env=env).returncode != 0:
            failed.append(name)
    rows = []
    with open(out_path, encoding="utf-8") as f:
        for line in f:
            data = json.loads(line)
            rows.append(Row(data["figure"], data["value"], data["unit"], data["anchor"],
                            data["anchor_value"], data.get("target", "")))
    os.unlink(out_path)
    print()
    print(format_rows(rows, "== all benchmarks (figure beside its anchor, same run)"))
    if failed:
        print(f"failed or missing: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
