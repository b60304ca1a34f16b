"""Benchmark: record at the gate, export, replay; each figure beside its anchor, same run.

    .venv/bin/python bench/replay.py [--quick] [--requests 300] [--concurrency 1,2,4]

What runs: the scripted OpenAI-compatible server (tests/replay/model_server.py, in its own
process so this process's CPU time is the client's alone) on 127.0.0.1, and here a real Gate
on a unix socket with a real StoreWriter.

1. Record overhead: p50 of a metered POST (small non-streamed answer) through the gate with
   the trace recorder, beside the same gate without it, interleaved in one run.
2. Replay: a trace recorded through the gate (agents with a shared system prompt, growing
   conversations, think time) exported as mooncake JSONL and replayed at each concurrency by
   `console.replay` and by the anchor client: aiperf when its command is installed, else a
   plain reference client (stdlib http.client, a thread per lane) replaying the very same
   prompts. Rows: requests, output tokens, output tok/s and TTFT p50 (they should agree
   within 5%), and the client's CPU time per request (ours should be lower).
3. The InferenceX figures of each step (tok/s per GPU and per user, TTFT/TPOT percentiles,
   J/token, tok/s/MW, $/Mtok) printed as a table. Energy: the real NVML counter where a driver
   answers, else the scripted NVML (tests/gpu/fake_nvml.py) whose power follows nothing here,
   labelled so: such J/token figures show the arithmetic, not a GPU.

The scripted server is not a model (see its docstring): llama-cpp-python and aiperf are not
installed by `make setup` (a compiler build and a tokenizer download), so the real-server
anchor of issue 15 is not run here; the table says which anchor was used.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit, percentile  # noqa: E402
from console.gate import Gate, NetworkRules  # noqa: E402
from console.gate.trace import TraceRecorder  # noqa: E402
from console.replay.export import load_rows, write  # noqa: E402
from console.replay.sweep import Settings, run_sweep  # noqa: E402
from console.replay.workload import Workload, load, prompt  # noqa: E402
from store.db import open_db  # noqa: E402
from store.writer import StoreWriter  # noqa: E402

MODEL = "scripted-1b"


def start_server(itl: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.replay.model_server", "--itl",
                             str(itl)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def post(path: str, url: str, body: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def gate_for(port: int, recorder: TraceRecorder | None) -> Gate:
    async def record(kind: str, payload: dict[str, Any]) -> None:
        return None

    rules = NetworkRules(allow=[(f"127.0.0.1:{port}", "bench")], default="deny", ports=[port])
    return Gate("bench-run", rules, ask=None, record=record, meter={("127.0.0.1", port)},
                trace=recorder)


async def record_overhead(tmp: str, port: int, n: int) -> tuple[list[float], list[float]]:
    writer = StoreWriter(Path(tmp) / "overhead.db", os.urandom(32)).start()
    with_rec = gate_for(port, TraceRecorder(writer, None, key=b"b" * 32))
    without = gate_for(port, None)
    paths = (str(Path(tmp) / "with.sock"), str(Path(tmp) / "without.sock"))
    await with_rec.serve_unix(paths[0])
    await without.serve_unix(paths[1])
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = json.dumps({"model": MODEL, "max_tokens": 1, "messages": [
        {"role": "system", "content": "be brief " * 200}, {"role": "user", "content": "hi"}]}
                      ).encode()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(n * 2):  # interleaved, so drift affects both alike
        which = i % 2
        t0 = time.perf_counter()
        await post(paths[which], url, body)
        times[which].append(time.perf_counter() - t0)
    await with_rec.close()
    await without.close()
    await asyncio.to_thread(writer.close)
    return times


async def record_trace(tmp: str, port: int, turns: int) -> Path:
    """Three agents through a recording gate: one system prompt, growing conversations."""
    db_path = Path(tmp) / "history.db"
    writer = StoreWriter(db_path, os.urandom(32)).start()
    gate = gate_for(port, TraceRecorder(writer, None, key=b"b" * 32))
    sock = str(Path(tmp) / "rec.sock")
    await gate.serve_unix(sock)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    system = {"role": "system", "content": " ".join(f"rule{i}" for i in range(600))}

    async def agent(name: str) -> None:
        msgs = [system, {"role": "user", "content": f"task for {name} " * 30}]
        for turn in range(turns):
            body = json.dumps({"model": MODEL, "messages": msgs, "max_tokens": 24 + 8 * turn,
                               "stream": True, "stream_options": {"include_usage": True}})
            await post(sock, url, body.encode())
            msgs = [*msgs, {"role": "assistant", "content": "tok " * (24 + 8 * turn)},
                    {"role": "user", "content": f"tool output {turn} " * 40}]
            await asyncio.sleep(0.02)

    await asyncio.gather(*(agent(f"agent{i}") for i in range(3)))
    await gate.close()
    await asyncio.sleep(0.3)  # rows are built in a worker thread after each answer
    await asyncio.to_thread(writer.close)
    db = open_db(db_path, readonly=True)
    rows = load_rows(db)
    db.conn.close()
    out = Path(tmp) / "trace.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        write(rows, "mooncake", f, block_size=64)
    return out


def reference_step(wl: Workload, url: str, concurrency: int) -> dict[str, Any]:
    """The anchor: a thread per lane, stdlib http.client, the same prompts and lengths."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    ttft: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def lane(i: int) -> None:
        src = wl.lanes[i % len(wl.lanes)]
        salt = f"copy{i // len(wl.lanes)}" if i >= len(wl.lanes) else ""
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        for n, req in enumerate(src.requests):
            body = json.dumps({"model": MODEL, "max_tokens": req.output_length,
                               "stream": True, "stream_options": {"include_usage": True},
                               "messages": [{"role": "user", "content": prompt(
                                   req, wl.block_size, salt=salt, shared=wl.shared_ids,
                                   unique=f"{src.name}:{n}")}]})
            t0 = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body,
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            first = None
            for line in resp:
                if line.startswith(b"data: {") and b'"content"' in line and first is None:
                    first = time.perf_counter()
                if b'"usage"' in line:
                    usage = json.loads(line[6:]).get("usage") or {}
                    with lock:
                        tokens[0] += usage.get("completion_tokens", 0)
            with lock:
                if first is not None:
                    ttft.append(first - t0)
        conn.close()

    c0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=lane, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"requests": len(ttft), "tokens_out": tokens[0], "tok_s_out": tokens[0] / seconds,
            "ttft_p50_ms": percentile(ttft, 0.5) * 1000, "cpu_ms_per_request":
            cpu * 1000 / max(1, len(ttft))}


def nvml_source() -> tuple[Any, str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return None, "real NVML"
    except Exception:
        from tests.gpu.fake_nvml import FakeGpu, FakeNvml

        return FakeNvml([FakeGpu(0, power_w=350.0)], clock=time.monotonic), \
            "scripted NVML (no GPU here)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--requests", type=int, help="POSTs per side for the record overhead")
    ap.add_argument("--turns", type=int, help="turns per recorded agent")
    ap.add_argument("--concurrency", default="1,2,4")
    args = ap.parse_args()
    n = args.requests or (150 if args.quick else 600)
    turns = args.turns or (4 if args.quick else 8)
    levels = [int(x) for x in args.concurrency.split(",")]
    server, url = start_server(itl=0.002)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with_rec, without = asyncio.run(record_overhead(tmp, port, n))
            rows.append(Row("gate metered POST p50, recording", percentile(with_rec, 0.5)
                            * 1000, "ms", "same gate, no recorder",
                            percentile(without, 0.5) * 1000, "<= 1.1x"))
            trace = asyncio.run(record_trace(tmp, port, turns))
            wl = load(trace)
            nvml, energy_label = nvml_source()
            aiperf = shutil.which("aiperf")
            anchor = "aiperf (not run: see docs/benchmark.md)" if aiperf else \
                "reference client (stdlib, thread per lane)"
            # Warm the server's prefix cache once, so neither client pays the cold start.
            asyncio.run(run_sweep(wl, Settings(url, MODEL, [max(levels)], think="none"),
                                  nvml=nvml))
            steps = []
            for c in levels:
                st = Settings(url, MODEL, [c], think="none", price_kwh=0.30,
                              price_gpu_hour=2.0, all_in_kw_per_gpu=1.2)
                c0 = time.process_time()
                step = asyncio.run(run_sweep(wl, st, nvml=nvml))[0]
                cpu = (time.process_time() - c0) * 1000 / max(1, step["requests"])
                ref = reference_step(wl, url, c)
                steps.append(step)
                rows += [
                    Row(f"c={c} requests", step["requests"], "", anchor, ref["requests"],
                        ">= 1.0x"),
                    Row(f"c={c} output tokens", step["tokens_out"], "", anchor,
                        ref["tokens_out"], ">= 1.0x"),
                    Row(f"c={c} output tok/s", step["tok_s_out"], "tok/s", anchor,
                        ref["tok_s_out"], ">= 0.95x"),
                    Row(f"c={c} TTFT p50", step["ttft_p50_ms"], "ms", anchor,
                        ref["ttft_p50_ms"], "<= 1.05x"),
                    Row(f"c={c} client CPU per request", cpu, "ms", anchor,
                        ref["cpu_ms_per_request"], "<= 1.0x"),
                ]
    finally:
        server.terminate()
        server.wait(5)
    emit(rows, f"replay ({wl.requests} recorded requests in {len(wl.lanes)} lane(s), "
               f"server: scripted, energy: {energy_label})")
    cols = ("concurrency", "tok_s_out_per_gpu", "tok_s_per_user", "ttft_p50_ms",
            "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "j_per_output_token",
            "tok_s_per_mw_board", "tok_s_per_mw_all_in", "usd_per_mtok")
    print("InferenceX figures per step (" + energy_label + "; all-in 1.2 kW/GPU, $0.30/kWh, "
          "$2/GPU-hour):")
    print("  ".join(cols))
    for s in steps:
        print("  ".join(f"{s.get(k):.4g}" if isinstance(s.get(k), int | float) else "n/a"
                        for k in cols))


if __name__ == "__main__":
    main()
