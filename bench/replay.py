"""Benchmark: record at the gate, export, replay; each figure beside its anchor, same run.

    .venv/bin/python bench/replay.py [--quick] [--requests 300] [--concurrency 1,2,4]
                                     [--server llama|scripted]

What runs: on 127.0.0.1, in processes of their own (so this process's CPU time is the
client's alone), the server the replay targets: llama-cpp-python's OpenAI-compatible server
running a tiny random GGUF on CPU (tests/replay/llama_server.py; `make model-server-install`)
where it is installed, else the scripted server (tests/replay/model_server.py), and the table
says which. Here: a real Gate on a unix socket with a real StoreWriter.

1. Record overhead: p50 of a metered POST (small non-streamed answer) through the gate with
   the trace recorder, beside the same gate without it, interleaved in one run (against the
   scripted server: the figure is the gate's).
2. Replay: a trace recorded through the gate (agents with a shared system prompt, growing
   conversations, think time) exported as mooncake JSONL, then replayed against the server at
   each concurrency by `console.replay` and by aiperf (bench/aiperf_anchor.py; `make
   aiperf-install`) on the same file: N lanes of the trace against aiperf's N in flight for as
   many requests, copies sending the same prompts as aiperf's wrap does. Side by side:
   requests, prompt and output token totals, output tok/s and TTFT p50 with the difference in
   %, and each client's CPU time per request (aiperf's includes its start; the marginal row,
   between the largest and smallest step, does not). On equal terms: server and clients on
   separate CPUs; each client's prompts warmed into the server once; one warmup request per
   lane (aiperf: --warmup-request-count) before the clock; copies of a lane taking its requests
   from one cursor as aiperf's N in flight do; aiperf's tok/s over its requests' span, as ours
   (its headline figure, over its benchmark_duration, is a row beside it). Without aiperf, a plain reference client
   (stdlib http.client, a thread per lane) is the anchor, and the table says so.
3. The InferenceX figures of each step (tok/s per GPU and per user, TTFT/TPOT percentiles,
   J/token, tok/s/MW, $/Mtok) printed as a table. Energy: the real NVML counter where a driver
   answers, else the scripted NVML (tests/gpu/fake_nvml.py) whose power follows nothing here,
   labelled so: such J/token figures show the arithmetic, not a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import aiperf_anchor  # noqa: E402
from bench.common import Row, emit, percentile  # noqa: E402
from console.gate import Gate, NetworkRules  # noqa: E402
from console.gate.trace import TraceRecorder  # noqa: E402
from console.replay.export import load_rows, write  # noqa: E402
from console.replay.sweep import Settings, run_sweep  # noqa: E402
from console.replay.workload import Workload, load, prompt  # noqa: E402
from store.db import open_db  # noqa: E402
from store.writer import StoreWriter  # noqa: E402
from tests.replay import llama_server  # noqa: E402

MODEL = "scripted-1b"
# Wide and deep enough that a request keeps the server busy for a while: each client's own
# time per request (aiperf's is tens of ms) is then small beside it.
LLAMA_SIZE = (256, 4)


def cpu_split() -> tuple[set[int], set[int]] | None:
    """(the server's CPUs, the clients'): the last CPU for the server, the rest for whichever
    client runs, so a client's own processes (aiperf has several) never take the CPU the
    server is timed on, nor the server the client's. None on a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[-1]}, set(cpus[:-1])) if len(cpus) > 1 else None


SPLIT = cpu_split()


def start_server(itl: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.replay.model_server", "--itl",
                             str(itl)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, SPLIT[0]))
                            if SPLIT else None)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class Target:
    """The server both clients replay against: llama-cpp-python with the tiny GGUF, or the
    scripted server."""

    def __init__(self, which: str, tmp: str, size: tuple[int, int] = LLAMA_SIZE) -> None:
        self.llama: llama_server.LlamaServer | None = None
        self.proc: subprocess.Popen[str] | None = None
        if which == "llama":
            self.llama = llama_server.LlamaServer(Path(tmp) / "llama", size=size,
                                                  cpus=SPLIT[0] if SPLIT else None)
            self.url, self.model = self.llama.v1, llama_server.MODEL
            self.label = (f"llama-cpp-python, random GGUF {size[0]} wide x {size[1]} layers "
                          "on CPU")
        else:
            self.proc, self.url = start_server(itl=0.002)
            self.model, self.label = MODEL, "scripted (tests/replay/model_server.py)"

    def cpu_s(self) -> float:
        """CPU seconds the server's process has used so far (user and system, all threads)."""
        proc = self.llama.proc if self.llama is not None else self.proc
        assert proc is not None
        times = psutil.Process(proc.pid).cpu_times()
        return times.user + times.system

    def close(self) -> None:
        if self.llama is not None:
            self.llama.close()
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)


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


async def record_trace(tmp: str, port: int, turns: int, *, model: str = MODEL,
                       db_path: Path | None = None, think_s: float = 0.02) -> Path:
    """Three agents through a recording gate: one system prompt, growing conversations, a
    pause of think_s between an answer and the agent's next request. Rows go to db_path (a
    daemon's database, for bench/gpu_replay.py's CLI export) or a scratch one."""
    db_path = db_path or Path(tmp) / "history.db"
    writer = StoreWriter(db_path, os.urandom(32)).start()
    gate = gate_for(port, TraceRecorder(writer, None, key=b"b" * 32))
    sock = str(Path(tmp) / "rec.sock")
    await gate.serve_unix(sock)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    system = {"role": "system", "content": " ".join(f"rule{i}" for i in range(600))}

    async def agent(name: str) -> None:
        msgs = [system, {"role": "user", "content": f"task for {name} " * 30}]
        for turn in range(turns):
            body = json.dumps({"model": model, "messages": msgs, "max_tokens": 24 + 8 * turn,
                               "stream": True, "stream_options": {"include_usage": True}})
            await post(sock, url, body.encode())
            msgs = [*msgs, {"role": "assistant", "content": "tok " * (24 + 8 * turn)},
                    {"role": "user", "content": f"tool output {turn} " * 40}]
            await asyncio.sleep(think_s)

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


def reference_step(wl: Workload, url: str, model: str, concurrency: int) -> dict[str, Any]:
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
            body = json.dumps({"model": model, "max_tokens": req.output_length,
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
    return {"requests": len(ttft), "tokens_in": float("nan"), "tokens_out": tokens[0],
            "seconds": seconds,
            "tok_s_out": tokens[0] / seconds, "ttft_p50_ms": percentile(ttft, 0.5) * 1000,
            "cpu_s": cpu, "cpu_ms_per_request": cpu * 1000 / max(1, len(ttft))}


def anchor_step(wl: Workload, trace: Path, target: Target, c: int, hf_home: Path | None,
                out: Path) -> dict[str, Any]:
    """One step of the anchor client: aiperf on the same file, else the stdlib reference."""
    if hf_home is not None:
        try:
            return aiperf_anchor.run(trace, target.url, target.model, concurrency=c,
                                     requests=wl.requests * c, block_size=64, hf_home=hf_home,
                                     out=out, timeout_s=240, warmup=c)
        except (aiperf_anchor.AiperfError, subprocess.SubprocessError) as exc:
            print(f"aiperf could not run at c={c}: {exc}", flush=True)
    return reference_step(wl, target.url, target.model, c)


# Summed over rounds (both clients ran as many); output tok/s is the pooled rate, the rest
# the median round's.
SUMMED = ("requests", "errors", "tokens_in", "tokens_out", "cpu_s", "seconds", "server_cpu_s")


def over_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's figures from its rounds: output tokens over the rounds' seconds together,
    TTFT p50 the rounds' median, counts and CPU time summed; the rest (the InferenceX figures)
    from the round with the median output tok/s, so they belong together."""
    middle = sorted(rounds, key=lambda r: r["tok_s_out"])[len(rounds) // 2]
    out = dict(middle)
    for key in SUMMED:
        if all(key in r for r in rounds):
            out[key] = sum(r[key] for r in rounds)
    if "seconds" in out:
        out["tok_s_out"] = out["tokens_out"] / out["seconds"]
    out["ttft_p50_ms"] = statistics.median(r["ttft_p50_ms"] for r in rounds)
    out["rounds"] = len(rounds)
    return out


def spread(rounds: list[dict[str, Any]], key: str) -> float:
    """(largest - smallest) / median of one figure over a client's rounds, in %: how far the
    same client, server and trace move between rounds here, the floor under any band drawn
    between two clients."""
    values = sorted(r[key] for r in rounds if isinstance(r.get(key), int | float))
    if len(values) < 2 or not statistics.median(values):
        return float("nan")
    return (values[-1] - values[0]) / statistics.median(values) * 100


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


def diff_pct(ours: float, anchor: float) -> str:
    if not isinstance(anchor, int | float) or not anchor or anchor != anchor:
        return "n/a"
    return f"{(ours - anchor) / anchor * 100:+.1f}%"


def side_by_side(pairs: list[tuple[int, dict[str, Any], dict[str, Any]]], anchor: str) -> None:
    """Ours beside the anchor per step, with the difference in % (issue 15: within 5%)."""
    figures = (("requests", "requests"), ("tokens_in", "prompt tokens"),
               ("tokens_out", "output tokens"), ("tok_s_out", "output tok/s"),
               ("ttft_p50_ms", "TTFT p50 ms"), ("cpu_ms_per_request", "client CPU ms/request"))
    print(f"replay (ours) beside {anchor}, same trace, same server:")
    print(f"  {'c':>2}  {'figure':<22} {'ours':>12} {'anchor':>12} {'diff':>8}")
    for c, ours, ref in pairs:
        for key, name in figures:
            a, b = ours.get(key, float("nan")), ref.get(key, float("nan"))
            print(f"  {c:>2}  {name:<22} {a:>12.4g} {b:>12.4g} {diff_pct(a, b):>8}")


def marginal_cpu(points: list[tuple[float, float]]) -> float:
    """CPU ms per request between the smallest and largest step: a start cost cancels."""
    (n0, c0), (n1, c1) = min(points), max(points)
    return (c1 - c0) * 1000 / (n1 - n0) if n1 > n0 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--requests", type=int, help="POSTs per side for the record overhead")
    ap.add_argument("--turns", type=int, help="turns per recorded agent")
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--rounds", type=int, help="turns each client takes per step (3; full: 5)")
    ap.add_argument("--size", default=",".join(map(str, LLAMA_SIZE)), metavar="WIDTH,LAYERS",
                    help="the llama server's random GGUF")
    ap.add_argument("--server", choices=["llama", "scripted"],
                    help="default: llama where installed, else scripted")
    args = ap.parse_args()
    n = args.requests or (150 if args.quick else 600)
    turns = args.turns or (6 if args.quick else 10)  # 3 agents x turns requests per lane pass
    levels = [int(x) for x in args.concurrency.split(",")]
    rounds = args.rounds or (3 if args.quick else 5)
    which = args.server or ("llama" if llama_server.missing() is None else "scripted")
    if which == "scripted" and llama_server.missing():
        print(f"server: scripted, because {llama_server.missing()}", flush=True)
    scripted, scripted_url = start_server(itl=0.002)
    port = int(scripted_url.rsplit(":", 1)[1].split("/")[0])
    rows: list[Row] = []
    steps: list[dict[str, Any]] = []
    pairs: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    target: Target | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with_rec, without = asyncio.run(record_overhead(tmp, port, n))
            rows.append(Row("gate metered POST p50, recording", percentile(with_rec, 0.5)
                            * 1000, "ms", "same gate, no recorder",
                            percentile(without, 0.5) * 1000, "<= 1.1x"))
            trace = asyncio.run(record_trace(tmp, port, turns))
            wl = load(trace, block_size=64)
            width, layers = (int(x) for x in args.size.split(","))
            target = Target(which, tmp, (width, layers))
            nvml, energy_label = nvml_source()
            why_not = aiperf_anchor.missing()
            hf_home = aiperf_anchor.prepare(Path(tmp)) if why_not is None else None
            anchor = "aiperf 0.13 (same trace)" if hf_home else \
                "reference client (stdlib, thread per lane)"
            if why_not:
                print(f"anchor: reference client, because {why_not}", flush=True)
            if SPLIT:  # this process and the aiperf it starts: off the server's CPU
                os.sched_setaffinity(0, SPLIT[1])
            # Warm the server with one pass of each client, so neither pays the cold start
            # and each finds its own prompts in the server's prefix cache (their texts differ).
            asyncio.run(run_sweep(wl, Settings(target.url, target.model, [1], think="none"),
                                  nvml=nvml))
            if hf_home is not None:
                with contextlib.suppress(aiperf_anchor.AiperfError, subprocess.SubprocessError):
                    aiperf_anchor.run(trace, target.url, target.model, concurrency=1,
                                      requests=wl.requests, block_size=64, hf_home=hf_home,
                                      out=Path(tmp) / "aiperf-warm", timeout_s=240)
            ours_cpu, ref_cpu = [], []
            for c in levels:
                # Both clients: one warmup request per lane (aiperf: per request in flight)
                # before the clock, on the connection that then carries the step.
                st = Settings(target.url, target.model, [c], think="none", price_kwh=0.30,
                              price_gpu_hour=2.0, all_in_kw_per_gpu=1.2, private_copies=False,
                              warmup=True)
                ours_rounds, ref_rounds = [], []
                for r in range(rounds):  # the two clients take turns: drift lands on both
                    print(f"step c={c}, round {r + 1}/{rounds}: our replay ...", file=sys.stderr,
                          flush=True)
                    c0, s0 = time.process_time(), target.cpu_s()
                    one = asyncio.run(run_sweep(wl, st, nvml=nvml))[0]
                    one["cpu_s"] = time.process_time() - c0
                    s1 = target.cpu_s()
                    one["server_cpu_s"] = s1 - s0
                    ours_rounds.append(one)
                    print(f"step c={c}, round {r + 1}/{rounds}: {anchor} ...", file=sys.stderr,
                          flush=True)
                    ref_rounds.append(anchor_step(wl, trace, target, c, hf_home, Path(tmp)
                                                  / f"aiperf-{c}-{r}"))
                    ref_rounds[-1]["server_cpu_s"] = target.cpu_s() - s1
                step, ref = over_rounds(ours_rounds), over_rounds(ref_rounds)
                noise = [Row(f"c={c} {name}: spread of one client's own rounds", spread(
                    ours_rounds, key), "%", anchor + ", its rounds", spread(ref_rounds, key), "")
                    for key, name in (("tok_s_out", "output tok/s"), ("ttft_p50_ms", "TTFT p50"))]
                for side in (step, ref):
                    side["cpu_ms_per_request"] = side["cpu_s"] * 1000 / max(1, side["requests"])
                ours_cpu.append((step["requests"], step["cpu_s"]))
                ref_cpu.append((ref["requests"], ref["cpu_s"]))
                steps.append(step)
                pairs.append((c, step, ref))
                rows += [
                    Row(f"c={c} requests", step["requests"], "", anchor, ref["requests"],
                        "<= 1.0x"),
                    Row(f"c={c} output tokens", step["tokens_out"], "", anchor,
                        ref["tokens_out"], "<= 1.05x"),
                    # Agree within 5%: one row for each side of the band.
                    Row(f"c={c} output tok/s", step["tok_s_out"], "tok/s", anchor,
                        ref["tok_s_out"], ">= 0.95x"),
                    Row(f"c={c} output tok/s", step["tok_s_out"], "tok/s", anchor,
                        ref["tok_s_out"], "<= 1.05x"),
                    Row(f"c={c} TTFT p50", step["ttft_p50_ms"], "ms", anchor,
                        ref["ttft_p50_ms"], ">= 0.95x"),
                    Row(f"c={c} TTFT p50", step["ttft_p50_ms"], "ms", anchor,
                        ref["ttft_p50_ms"], "<= 1.05x"),
                    Row(f"c={c} client CPU per request", step["cpu_ms_per_request"], "ms",
                        anchor + (", its start included" if hf_home else ""),
                        ref["cpu_ms_per_request"], "<= 1.0x"),
                    # The same server, the same tokens: the CPU it spent per token while each
                    # client ran says whether that client slowed it (two cores share a cache).
                    Row(f"c={c} server CPU per output token, while each client ran",
                        step["server_cpu_s"] * 1000 / max(1, step["tokens_out"]), "ms", anchor,
                        ref["server_cpu_s"] * 1000 / max(1, ref["tokens_out"]), ""),
                    *noise,
                ]
                if hf_home is not None:
                    rows.insert(-8, Row(f"c={c} prompt tokens", step["tokens_in"], "", anchor,
                                        ref["tokens_in"], "<= 1.05x"))
                    rows.insert(-6, Row(f"c={c} output tok/s, aiperf's headline (its own "
                                        "duration)", step["tok_s_out"], "tok/s", anchor,
                                        ref["tok_s_out_headline"], ""))
            if len(levels) > 1:
                rows.append(Row("client CPU per request, marginal (largest - smallest step)",
                                marginal_cpu(ours_cpu), "ms", anchor, marginal_cpu(ref_cpu),
                                "<= 1.0x"))
    finally:
        if target is not None:
            target.close()
        scripted.terminate()
        scripted.wait(5)
    emit(rows, f"replay ({wl.requests} recorded requests in {len(wl.lanes)} lane(s), {rounds} "
               f"rounds a step (counts summed, tok/s pooled, TTFT the median round), "
               f"server: {target.label if target else which}, energy: {energy_label})")
    side_by_side(pairs, anchor)
    for c, _, ref in pairs:
        if "idle_ms_per_request" in ref:
            print(f"# c={c}: aiperf's request slots sat idle {ref['idle_ms_per_request']:.1f} ms "
                  f"per request between an answer and the next request (its own timestamps, "
                  f"median round); ours send the next at once")
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
