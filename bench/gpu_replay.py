"""Record and replay with energy on a GPU: issue 15's check on a lent GPU machine.

    python3 bench/gpu_replay.py [--layers 8] [--turns 6] [--concurrency 1,2,4,8] [--out DIR]

What runs, all on 127.0.0.1 and in a temporary PILOTHOUSE_HOME:
1. bench/torch_server.py on the GPU (a random-weight Llama, nothing downloaded), with
   `nvidia-smi -lms 100` logging board power beside everything that follows.
2. Three agents (one system prompt, growing conversations, think time) send streamed chat
   requests through a real Gate with the trace recorder and a real StoreWriter writing the
   daemon's database, as a daemon's gate records them.
3. The CLI, as a person runs it: `pilothouse trace summary --by lane`, `trace export --format
   pilothouse`, a warm-up pass (`replay --concurrency 1 --no-store`), then `replay TRACE
   --concurrency ... --ignore-eos --all-in-kw 1.5 --json` (real NVML energy), `replay-report`.
4. Checks, each printed with ok / OFF: per step, the replay's energy (NVML's energy counter)
   against nvidia-smi's power integrated over the same seconds (10%); the replay's prompt
   and output tokens against the server's own counters (vLLM's metric names, 2%); output tok/s
   per GPU higher at the most lanes than at the fewest (tok/s per user is printed: whether it
   falls is the server's shape). Exit status 1 if any is off.

--out DIR keeps the trace, the CLI's JSON, replay.db and a summary (result.json) there.
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
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gpu_validate import PowerLog  # noqa: E402
from bench.replay import record_trace  # noqa: E402
from bench.torch_server import MODEL  # noqa: E402
from console.paths import resolve  # noqa: E402

TOL = {"energy": 0.10, "tokens": 0.02}


def server_counters(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/metrics", timeout=10).read()
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name.split("{", 1)[0]] = float(value)
    return out


def cli(home: Path, *argv: str, out: Path | None = None) -> Any:
    """`pilothouse ARGV` in a process of its own (as a person runs it); its JSON."""
    env = {**os.environ, "PILOTHOUSE_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    proc = subprocess.run([sys.executable, "-m", "console", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    sys.stderr.write(proc.stderr)
    if out is not None:
        out.write_text(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"pilothouse {' '.join(argv)} failed ({proc.returncode}): "
                         f"{proc.stdout[-2000:]}")
    return json.loads(proc.stdout) if "--json" in argv and proc.stdout.strip() else proc.stdout


def verdict(name: str, ours: float | None, ref: float | None, tol: float) -> bool:
    if ours is None or ref is None or not ref:
        print(f"  {name:<44} ours {ours!s:>10}  reference {ref!s:>10}  OFF (no figure)")
        return False
    off = abs(ours - ref) / abs(ref)
    ok = off <= tol
    print(f"  {name:<44} ours {ours:>10.1f}  reference {ref:>10.1f}  {off * 100:5.1f}%  "
          f"{'ok' if ok else 'OFF'} (<= {tol * 100:.0f}%)")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--think", type=float, default=0.3, help="recorded agents' think time, s")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ph-gpu-replay-"))
    home = tmp / "home"
    paths = resolve(home)
    paths.ensure()
    smi = PowerLog()
    if shutil.which("nvidia-smi"):
        smi.start()
    else:  # a plumbing run on a machine without a GPU: the energy checks say OFF
        print("nvidia-smi is not on PATH: no power readings to compare with", flush=True)
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "torch_server.py"),
                               "--layers", str(args.layers), "--hidden", str(args.hidden),
                               "--device", args.device], stdout=subprocess.PIPE, text=True)
    ok = True
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit("the torch server did not start (see its output above)")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        print(f"server: {url}, random Llama {args.layers} layers x {args.hidden} on "
              f"{args.device}", flush=True)
        t0 = time.time()
        asyncio.run(record_trace(str(tmp), port, args.turns, model=MODEL, db_path=paths.db_file,
                                 think_s=args.think))
        print(f"recorded through the gate in {time.time() - t0:.1f} s", flush=True)
        keep = args.out or tmp
        keep.mkdir(parents=True, exist_ok=True)
        print(f"the trace and the CLI's answers are kept in {keep}", flush=True)
        summary = cli(home, "trace", "summary", "--by", "lane", "--json",
                      out=keep / "trace-summary.json")
        print(f"trace summary: {json.dumps(summary)[:600]}", flush=True)
        trace = keep / "agents.jsonl"
        cli(home, "trace", "export", "--format", "pilothouse", "-o", str(trace), "--json")
        # One pass at one lane first, kept nowhere: the server's kernels and allocator warm
        # before any step's clock (a sweep's own --warmup would send requests the server's
        # counters then hold beside the steps').
        cli(home, "replay", str(trace), "--url", url, "--model", MODEL, "--concurrency", "1",
            "--ignore-eos", "--no-store", "--json")
        before = server_counters(url)
        sweep = cli(home, "replay", str(trace), "--url", url, "--model", MODEL,
                    "--concurrency", args.concurrency, "--ignore-eos", "--all-in-kw", "1.5",
                    "--price-kwh", "0.30", "--price-gpu-hour", "2.0", "--json",
                    out=keep / "replay.json")
        after = server_counters(url)
        cli(home, "replay-report", "--json", out=keep / "replay-report.json")
        print(cli(home, "replay-report"), flush=True)
        time.sleep(0.5)  # nvidia-smi's readings past the last step's end
        steps = sweep["steps"]
        print(f"gpu status: {sweep.get('gpu_status')}; power readings: {smi.field}, "
              f"{len(smi.points)}", flush=True)
        print("checks:")
        for s in steps:
            ref = smi.energy_j(s["started_at"], s["ended_at"])
            ok &= verdict(f"c={s['concurrency']} energy J vs nvidia-smi integral",
                          s.get("energy_j"), ref, TOL["energy"])
        for ours_key, metric in (("tokens_in", "vllm:prompt_tokens_total"),
                                 ("tokens_out", "vllm:generation_tokens_total")):
            ours = float(sum(s.get(ours_key) or 0 for s in steps))
            ok &= verdict(f"{ours_key} (all steps) vs server's {metric}", ours,
                          after.get(metric, 0) - before.get(metric, 0), TOL["tokens"])
        # The curve's two ends (InferenceX's shape): more lanes, more tokens per GPU and fewer
        # per user. Steps between may be flat: a small model's decode step costs the same at
        # batch 1 and 2, so neighbouring steps differ by noise.
        per_gpu = [s.get("tok_s_out_per_gpu") or 0 for s in steps]
        per_user = [s.get("tok_s_per_user") or 0 for s in steps]
        rising = per_gpu[-1] > per_gpu[0]
        print(f"  tok/s/GPU by step {[round(x, 1) for x in per_gpu]}: "
              f"{'higher at the most lanes, ok' if rising else 'not higher, OFF'}")
        # Not a check: whether a user's rate falls is the server's (a small model's decode
        # step is launch-bound and costs the same at batch 1 and 8 on an H200).
        print(f"  tok/s/user by step {[round(x, 1) for x in per_user]} (the server's shape)")
        ok &= rising
        steps_n = after.get("decode_steps_total", 0) - before.get("decode_steps_total", 0)
        batches = after.get("batches_total", 0) - before.get("batches_total", 0)
        if steps_n:
            step_ms = (after["decode_seconds_total"] - before["decode_seconds_total"]) \
                / steps_n * 1000
            print(f"  server: {batches:.0f} batches, {steps_n:.0f} decode steps, mean "
                  f"{step_ms:.1f} ms a step (its own clock)")
        if args.out:
            shutil.copy(paths.data_dir / "replay.db", args.out / "replay.db")
            (args.out / "result.json").write_text(json.dumps({
                "steps": steps, "server_before": before, "server_after": after,
                "power_field": smi.field, "power_points": len(smi.points), "ok": ok},
                indent=1))
    finally:
        server.terminate()
        server.wait(10)
        smi.stop()
    print("all checks ok" if ok else "some checks are OFF")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
