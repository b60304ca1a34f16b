"""aiperf (NVIDIA's benchmark client) replaying a mooncake trace, as the anchor of bench/replay.py.

aiperf runs from its own venv (`make aiperf-install`), offline: its tokenizer is the word-level
one of bench/word_tokenizer.py, written into a private Hugging Face cache, so its prompts are
words of the replay's list (one token each for the tiny GGUF and the scripted server alike).
One call is one aiperf run: `concurrency` requests in flight until `requests` are done, the
trace's entries in order (wrapping), no timestamps (--no-fixed-schedule), as our replay's
lanes run them; the length asked for goes as max_tokens (--use-legacy-max-tokens: aiperf sends
max_completion_tokens by default, which llama-cpp-python ignores, and the tiny model never
stops by itself). One worker and one record processor: on a small machine aiperf's own
processes otherwise take the CPU the server needs. Its CPU time is the whole run's, aiperf's start included (it is a set of
processes; their time comes back to us through RUSAGE_CHILDREN when it exits).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PREFIX = Path(os.environ.get("PILOTHOUSE_BENCH_PREFIX", "/usr/local/lib/pilothouse-bench"))
AIPERF = PREFIX / "aiperf" / "bin" / "aiperf"


class AiperfError(RuntimeError):
    pass


def missing() -> str | None:
    if not AIPERF.exists():
        return f"aiperf is not installed in {AIPERF.parent.parent} (run: make aiperf-install)"
    return None


def prepare(tmp: Path) -> Path:
    """The private Hugging Face cache holding the word tokenizer."""
    hf_home = tmp / "aiperf-hf"
    subprocess.run([str(AIPERF.parent / "python"), "-m", "bench.word_tokenizer", str(hf_home)],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    return hf_home


def _metric(data: dict[str, Any], name: str, stat: str = "avg") -> float:
    value = (data.get(name) or {}).get(stat)
    return float(value) if isinstance(value, int | float) else float("nan")


def timed_requests(records: Path) -> list[tuple[int, int]]:
    """(start ns, end ns) of each timed request, from aiperf's per-request export
    (profile_export.jsonl; warmup requests left out)."""
    out = []
    for line in records.read_text().splitlines():
        meta = json.loads(line).get("metadata") or {}
        if meta.get("benchmark_phase", "profiling") != "profiling":
            continue
        start, end = meta.get("request_start_ns"), meta.get("request_end_ns")
        if isinstance(start, int) and isinstance(end, int):
            out.append((start, end))
    return out


def span_and_idle(timed: list[tuple[int, int]], concurrency: int) -> tuple[float, float]:
    """(seconds from the first timed request's start to the last one's end, the mean time a
    request slot sat idle between one answer and its next request, ms). Our replay's step
    lasts exactly the span; aiperf's benchmark_duration also holds its phase start and end
    bookkeeping. The idle time is aiperf's own scheduling (a credit goes round its processes
    before the next request): it lowers the tok/s it measures at low concurrency."""
    if not timed:
        return float("nan"), float("nan")
    span_ns = max(e for _, e in timed) - min(s for s, _ in timed)
    busy_ns = sum(e - s for s, e in timed)
    return span_ns / 1e9, max(0.0, concurrency * span_ns - busy_ns) / len(timed) / 1e6


def run(trace: Path, url: str, model: str, *, concurrency: int, requests: int,
        block_size: int, hf_home: Path, out: Path, timeout_s: float = 600,
        warmup: int = 0) -> dict[str, Any]:
    """One aiperf run; its figures under our names, with its CPU time per request. `warmup`
    requests go first and are not counted (aiperf's own warmup phase)."""
    base = url.removesuffix("/").removesuffix("/v1")
    cmd = [str(AIPERF), "profile", "--model", model, "--url", base, "--endpoint-type", "chat",
           "--streaming", "--input-file", str(trace), "--custom-dataset-type", "mooncake_trace",
           "--no-fixed-schedule", "--use-legacy-max-tokens", "--concurrency", str(concurrency),
           "--request-count",
           str(requests), "--tokenizer", "pilothouse/replay-words", "--prompt-corpus", "sonnet",
           "--prompt-input-tokens-block-size", str(block_size), "--ui", "none",
           "--output-artifact-dir", str(out), "--no-gpu-telemetry", "--no-server-metrics",
           "--random-seed", "1", "--workers-max", "1", "--record-processors", "1"]
    if warmup:
        cmd += ["--warmup-request-count", str(warmup)]
    # aiperf leaves an aiperf_mmap_* folder in the temporary folder per run: keep it in `out`.
    scratch = out / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost", "TMPDIR": str(scratch)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    export = out / "profile_export_aiperf.json"
    if done.returncode != 0 or not export.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-25:]
        raise AiperfError(f"aiperf exited {done.returncode}:\n" + "\n".join(tail))
    data = json.loads(export.read_text())
    n = _metric(data, "request_count")
    records = out / "profile_export.jsonl"
    span, idle_ms = span_and_idle(timed_requests(records) if records.exists() else [],
                                  concurrency)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"requests": n, "errors": _metric(data, "error_request_count")
            if "error_request_count" in data else 0.0,
            "tokens_in": _metric(data, "total_isl"), "tokens_out": _metric(data, "total_osl"),
            # Output tokens over the requests' span, as our replay counts; aiperf's headline
            # figure (over its benchmark_duration) beside it.
            "tok_s_out": _metric(data, "total_osl") / span,
            "tok_s_out_headline": _metric(data, "output_token_throughput"),
            "ttft_p50_ms": _metric(data, "time_to_first_token", "p50"),
            "seconds": span, "benchmark_duration_s": _metric(data, "benchmark_duration"),
            "idle_ms_per_request": idle_ms, "wall_s": wall,
            "cpu_s": cpu_s, "cpu_ms_per_request": cpu_s * 1000 / n if n else float("nan")}
