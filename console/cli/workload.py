"""`pilothouse trace` and `pilothouse replay`: the workload benchmark's commands.

trace list / export read the recorded requests from the history database (read-only, the
daemon stays its only writer); replay plays a trace against a local OpenAI-compatible server
from this process, reads the GPUs' energy counters itself, and keeps its results in
replay.db beside the history.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx, since_epoch
from console.cli.output import echo, fail, open_output, table, visible
from console.cli.parsing import BadParameter, argument, command, group, option
from console.cli.value_types import Choice, float_range, int_range, path
from console.text import clock

FIGURE_COLUMNS = (("concurrency", "conc", "{:.0f}"), ("requests", "reqs", "{:.0f}"),
                  ("errors", "err", "{:.0f}"), ("tok_s_out_per_gpu", "out tok/s/GPU", "{:.1f}"),
                  ("tok_s_per_user", "tok/s/user", "{:.1f}"), ("ttft_p50_ms", "TTFT p50",
                                                               "{:.0f}"),
                  ("ttft_p99_ms", "TTFT p99", "{:.0f}"), ("tpot_p50_ms", "TPOT p50", "{:.1f}"),
                  ("e2e_p50_ms", "E2E p50", "{:.0f}"), ("j_per_output_token", "J/out tok",
                                                        "{:.3f}"),
                  ("tok_s_per_mw_board", "tok/s/MW", "{:.0f}"), ("usd_per_mtok", "$/Mtok",
                                                                 "{:.3f}"))


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, int | float):
        return fmt.format(value)
    return "n/a" if value is None else str(value)


def _rows(c: Context, run_id: str | None, profile: str | None, since: str | None
          ) -> list[dict[str, Any]]:
    from console.replay.export import load_rows
    from store.db import StoreError, open_db

    try:
        db = open_db(c.paths.db_file, readonly=True)
    except StoreError as exc:
        fail(f"cannot read the recorded requests: {exc}",
             "the daemon records requests to the inference endpoints in [gate] inference",
             error="store-failed")
    try:
        return load_rows(db, run_id=run_id, profile=profile, since=since_epoch(since))
    finally:
        db.conn.close()


@group()
def trace() -> None:
    """Recorded inference requests (for the workload benchmark)."""


def _filters(fn: Any) -> Any:
    fn = option("--since", metavar="DURATION", help="Only requests newer than this "
                "(30m, 2h, 7d).")(fn)
    fn = option("--profile", metavar="P", help="Only this profile's runs.")(fn)
    return option("--run", "run_id", metavar="ID", help="Only this run.")(fn)


@trace.command("list")
@_filters
@json_option
@pass_ctx
@friendly
def trace_list(c: Context, run_id: str | None, profile: str | None, since: str | None) -> None:
    """One line per recorded request: lane, times, tokens."""
    rows = _rows(c, run_id, profile, since)
    for r in rows:
        r.pop("content", None)
        r["blocks"] = len(json.loads(r.get("blocks") or "[]"))

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            echo("no recorded requests (requests to [gate] inference endpoints are "
                 "recorded as they pass the gate)")
            return
        table([[clock(r["start"]), str(r["lane"]),
                str(r.get("model") or "-"),
                _cell((r["first_byte"] - r["start"]) * 1000 if r.get("first_byte") else None,
                      "{:.0f}"),
                _cell((r["end"] - r["start"]) * 1000 if r.get("end") else None, "{:.0f}"),
                _cell(r.get("think_s"), "{:.1f}"), _cell(r.get("prompt_tokens"), "{}"),
                _cell(r.get("cached_tokens"), "{}"), _cell(r.get("completion_tokens"), "{}"),
                str(r["blocks"])] for r in rows],
              ["start", "lane", "model", "TTFT ms", "total ms", "think s", "in", "cached",
               "out", "blocks"])

    c.emit(rows, human)


@trace.command("summary")
@_filters
@option("--by", type=Choice(["run", "lane"]), default="run", show_default=True,
        help="One line per run (agent) or per lane (sub-agent).")
@json_option
@pass_ctx
@friendly
def trace_summary(c: Context, run_id: str | None, profile: str | None, since: str | None,
                  by: str) -> None:
    """Per agent: requests, tokens, TTFT, think time, prefix reuse."""
    from console.replay.summary import summarise

    groups = summarise(_rows(c, run_id, profile, since), by)

    def human(groups: list[dict[str, Any]]) -> None:
        if not groups:
            echo("no recorded requests")
            return
        _agents_table(groups, by)

    c.emit(groups, human)


def _agents_table(groups: list[dict[str, Any]], by: str) -> None:
    """Per agent (run) or sub-agent (lane): what it asked of the server, as recorded."""
    rows = [[str(g[by]), str(g.get("profile") or "-"), str(g["requests"]),
             str(g["tokens_in"]), str(g["tokens_cached"]), str(g["tokens_out"]),
             _cell(g["ttft_p50_ms"], "{:.0f}"), _cell(g["think_p50_s"], "{:.1f}"),
             _cell(g["tok_s_out_answering"], "{:.1f}"),
             _cell(g["prefix_reuse"] * 100 if g["prefix_reuse"] is not None else None, "{:.0f}%")]
            for g in groups]
    table(rows, [by, "profile", "reqs", "in", "cached", "out", "TTFT p50 ms", "think p50 s",
                 "out tok/s", "prefix reuse"])


@trace.command("export")
@_filters
@option("--format", "fmt", type=Choice(["mooncake", "pilothouse"]),
        default="mooncake", show_default=True,
        help="mooncake: what aiperf replays as it is; pilothouse: everything recorded.")
@option("--block-size", type=int_range(1), default=512, show_default=True,
        help="Tokens per hash id (aiperf's --block-size).")
@option("--output", "-o", metavar="FILE", type=path(),
        help="Write here instead of stdout.")
@json_option(help="Print a JSON summary on stderr's place (stdout) when writing to a file.")
@pass_ctx
@friendly
def trace_export(c: Context, run_id: str | None, profile: str | None, since: str | None,
                 fmt: str, block_size: int, output: str | None) -> None:
    """Write recorded requests as a JSONL trace (one request per line)."""
    from console.replay.export import check_size, write

    rows = _rows(c, run_id, profile, since)
    if not rows:
        fail("no recorded requests match", "check --run/--profile/--since with "
             "`pilothouse trace list`", error="no-match")
    try:
        check_size(rows, block_size)  # before a file is made
    except ValueError as exc:
        fail(f"cannot export: {exc}", error="bad-args")
    if output:
        with open_output(output) as out:
            n = write(rows, fmt, out, block_size)
        summary = {"requests": n, "format": fmt, "file": output,
                   "lanes": len({r["lane"] for r in rows})}
        c.emit(summary, lambda s: echo(
            f"{s['requests']} requests in {s['lanes']} lane(s) written to {s['file']} "
            f"({s['format']})", err=True))
    else:
        write(rows, fmt, sys.stdout, block_size)


MAX_CONCURRENCY = 4096  # lanes at once: each holds a connection and a task of this process


def _concurrency(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(not 1 <= v <= MAX_CONCURRENCY for v in values):
        raise BadParameter(f"{text!r}: give whole numbers from 1 to {MAX_CONCURRENCY} separated "
                           "by commas, like 1,2,4,8", param_hint="--concurrency")
    return values


def _prices(c: Context) -> tuple[float, float]:
    from console.config.load import load

    try:
        cfg = load(c.config_file or c.paths.config_file)
    except Exception:  # a broken config is reported by the commands that need it
        return 0.0, 0.0
    return cfg.price_kwh, cfg.price_gpu_hour


def _print_steps(steps: list[dict[str, Any]]) -> None:
    table([[_cell(s.get(k), f) for k, _, f in FIGURE_COLUMNS] for s in steps],
          [h for _, h, _ in FIGURE_COLUMNS])
    missing = {k: v for s in steps for k, v in (s.get("missing") or {}).items()}
    for k, why in sorted(missing.items()):
        echo(f"  {k}: n/a ({visible(why)})")
    errors = {e for s in steps for e in s.get("error_samples", [])}
    for e in sorted(errors)[:3]:
        echo(f"  error: {visible(e)}")  # the server's words: its status line


def _print_sweep(sweep: dict[str, Any]) -> None:
    _print_steps(sweep["steps"])
    if sweep.get("agents"):
        echo("per agent, as recorded in the trace:")
        _agents_table(sweep["agents"], "lane")


@command()
@argument("trace_file", metavar="TRACE", type=path(dir_okay=False))
@option("--url", required=True, metavar="http://HOST:PORT/v1",
        help="The server's OpenAI-compatible base URL.")
@option("--model", required=True, metavar="M", help="Model name to ask for.")
@option("--concurrency", default="1,2,4,8", show_default=True, metavar="N,N,...",
        help="Lanes at once, one step each.")
@option("--think-time", "think", default="recorded", show_default=True,
        metavar="recorded|none|cap=S")
@option("--duration", type=float_range(0.1), metavar="S",
        help="Seconds per step (lanes loop); default: each lane plays once.")
@option("--gpus", type=int_range(1), help="GPUs serving the model (for per-GPU "
        "figures); default: how many NVML reports.")
@option("--gpu-index", metavar="I,J", help="Read only these GPUs' energy.")
@option("--price-kwh", type=float_range(0), help="$ per kWh (default: [gpu] price_kwh).")
@option("--price-gpu-hour", type=float_range(0), help="$ per GPU-hour (default: [gpu] "
        "price_gpu_hour).")
@option("--all-in-kw", type=float_range(0.001), metavar="KW",
        help="All-in kW per GPU (facility included), for the InferenceX-comparable "
             "tok/s per MW.")
@option("--block-size", type=int_range(1), metavar="N", help="Tokens per hash id "
        "of a mooncake trace (as exported; default 512). A pilothouse trace says.")
@option("--ignore-eos", is_flag=True, help="Ask the server to ignore end-of-sequence "
        "(vLLM, SGLang, llama.cpp), so answers have the recorded lengths.")
@option("--warmup", is_flag=True, help="Send each lane's first request once before a "
        "step's clock starts (as aiperf's --warmup-request-count); the timed pass still "
        "sends every request.")
@option("--no-store", is_flag=True, help="Do not keep the results in replay.db.")
@json_option
@pass_ctx
@friendly
def replay(c: Context, trace_file: str, url: str, model: str, concurrency: str, think: str,
           duration: float | None, gpus: int | None, gpu_index: str | None,
           price_kwh: float | None, price_gpu_hour: float | None, all_in_kw: float | None,
           block_size: int | None, ignore_eos: bool, warmup: bool, no_store: bool) -> None:
    """Replay a recorded trace against a local server, step by step, with energy."""
    import asyncio

    lanes = _concurrency(concurrency)  # a bad value is refused before the trace is read

    from console.replay import workload
    from console.replay.client import ClientError, Endpoint
    from console.replay.summary import summarise_trace
    from console.replay.sweep import Settings, run_sweep, think_policy
    from store import replay_results as results

    try:
        wl = workload.load(trace_file, block_size)
        agents = summarise_trace(trace_file)
        Endpoint(url)
        think_policy(think)
        index = [int(i) for i in gpu_index.split(",")] if gpu_index else None
    except (workload.TraceError, ClientError, ValueError) as exc:
        fail(f"cannot replay {trace_file}: {exc}", error="bad-trace")
    except OSError as exc:
        fail(f"cannot read {trace_file}: {exc.strerror or exc}", error="bad-trace")
    kwh, gpu_hour = _prices(c)
    st = Settings(url, model, lanes, think, duration, gpus, index,
                  kwh if price_kwh is None else price_kwh,
                  gpu_hour if price_gpu_hour is None else price_gpu_hour, all_in_kw,
                  extra={"ignore_eos": True} if ignore_eos else None, warmup=warmup)
    sweep_id = results.new_sweep_id()
    db = c.paths.data_dir / "replay.db"
    if not no_store:  # a damaged replay.db stops it here, not after a sweep's minutes
        with _replay_db(db):
            results.store_agents(db, sweep_id, agents)
    c.say(f"replaying {wl.requests} requests in {len(wl.lanes)} lane(s) "
          f"({wl.source_format}) against {url}", err=True)

    def on_step(step: dict[str, Any]) -> None:
        if not no_store:
            results.store_step(db, sweep_id, step, trace=str(Path(trace_file).resolve()),
                               url=url, model=model)
        c.say(f"  step {step['concurrency']}: {step['requests']} requests, "
              f"{step['errors']} errors in {step['seconds']:.1f} s", err=True)

    steps = asyncio.run(run_sweep(wl, st, on_step=on_step))
    out = {"sweep_id": None if no_store else sweep_id, "trace": trace_file, "url": url,
           "model": model, "gpu_status": steps[0].get("gpu_status") if steps else None,
           "steps": steps, "agents": agents}
    c.emit(out, _print_sweep)
    if any(s["requests"] == 0 for s in steps):
        sys.exit(1)


@contextmanager
def _replay_db(db: Path) -> Iterator[None]:
    """replay.db read or written: a damaged or unreadable file said in one line."""
    import sqlite3

    try:
        yield
    except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: a stored figure not JSON
        fail(f"cannot use the replay results in {db}: {exc}",
             "move that file aside: `pilothouse replay` starts a new one (--no-store keeps none)",
             error="store-failed")


@command("replay-report")
@argument("sweep_id", nargs="?", metavar="SWEEP")
@option("--limit", type=int_range(1), default=5, show_default=True)
@json_option
@pass_ctx
@friendly
def replay_report(c: Context, sweep_id: str | None, limit: int) -> None:
    """Stored replay sweeps: every figure per step, newest sweep first."""
    from store.replay_results import sweeps

    db = c.paths.data_dir / "replay.db"
    with _replay_db(db):
        found = sweeps(db, sweep_id, limit)
    if sweep_id and not found:
        fail(f"no replay sweep {sweep_id!r}", "list them with `pilothouse replay-report`",
             error="no-such-sweep")

    def human(items: list[dict[str, Any]]) -> None:
        if not items:
            echo("no replay results yet (run `pilothouse replay TRACE --url ... "
                 "--model ...`)")
        for s in items:
            echo(visible(f"sweep {s['sweep_id']}  {s['model']} at {s['url']}  trace {s['trace']}"))
            _print_sweep(s)

    c.emit(found, human)


COMMANDS = (trace, replay, replay_report)
