"""Export and replay: requests recorded through a real Gate into the store of a temporary
PILOTHOUSE_HOME, exported by the real CLI, replayed against the scripted model server on
127.0.0.1 with the scripted NVML standing in for the GPU (its power follows the server's
load). Only structure and exact token counts are asserted, never speed."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from console.cli.main import main
from console.replay.client import Result
from console.replay.export import HashIds
from console.replay.figures import percentile, step_figures
from console.replay.sweep import Settings, run_sweep, think_policy
from console.replay.workload import TraceError, load, prompt
from store import replay_results as results
from store.writer import StoreWriter
from tests.core.cli_invoke import invoke
from tests.gpu.fake_nvml import FakeGpu, FakeNvml
from tests.replay.conftest import Through, chat, settle
from tests.replay.model_server import MODEL, ScriptedModel

SYSTEM = {"role": "system", "content": " ".join(f"rule{i}" for i in range(40))}


async def record_two_agents(through: Through, writer: StoreWriter) -> None:
    """Agent A: three turns of one conversation (a growing shared prefix), thinking between
    them; agent B meanwhile, in parallel: one call with the same system prompt."""
    async def agent_a() -> None:
        msgs = [SYSTEM, {"role": "user", "content": "fix the failing test please"}]
        for turn in range(3):
            await chat(through, msgs, max_tokens=6 + turn)
            msgs = [*msgs, {"role": "assistant", "content": "tok " * (6 + turn)},
                    {"role": "user", "content": f"next step {turn}"}]
            await asyncio.sleep(0.05)

    async def agent_b() -> None:
        await chat(through, [SYSTEM, {"role": "user", "content": "review the diff"}],
                   max_tokens=30)

    await asyncio.gather(agent_a(), agent_b())
    await settle(writer, 4)


def cli(*args: str) -> Any:
    result = invoke(main, list(args))
    return result


async def test_export_mooncake_and_pilothouse(through: Through, writer: StoreWriter,
                                              tmp_path: Path) -> None:
    await record_two_agents(through, writer)
    listed = await asyncio.to_thread(cli, "trace", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert len(rows) == 4 and {r["lane"] for r in rows} == {"run-1/0", "run-1/1"}
    assert all("content" not in r for r in rows)

    out = tmp_path / "trace.jsonl"
    done = await asyncio.to_thread(cli, "trace", "export", "--format", "mooncake",
                                   "--block-size", "16", "-o", str(out), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"requests": 4, "format": "mooncake", "file": str(out),
                                       "lanes": 2}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(set(x) == {"timestamp", "input_length", "output_length", "hash_ids"}
               for x in lines)
    assert lines[0]["timestamp"] == 0 and all(isinstance(x["timestamp"], int) for x in lines)
    assert [x["timestamp"] for x in lines] == sorted(x["timestamp"] for x in lines)
    by_len = sorted(lines, key=lambda x: x["input_length"])
    for x in lines:
        assert len(x["hash_ids"]) == -(-x["input_length"] // 16)  # ceil(input / block)
    # Agent A's turns grow one conversation: each turn's ids start with the previous turn's
    # full blocks; agent B shares the system prompt's blocks with A.
    a = [x for x in lines if x["output_length"] in (6, 7, 8)]
    b = next(x for x in lines if x["output_length"] == 30)
    assert a[1]["hash_ids"][:2] == a[0]["hash_ids"][:2]
    assert a[2]["hash_ids"][:len(a[1]["hash_ids"]) - 1] == a[1]["hash_ids"][:-1]
    assert b["hash_ids"][:2] == a[0]["hash_ids"][:2] and b["hash_ids"] != a[0]["hash_ids"]
    assert by_len[-1]["input_length"] > by_len[0]["input_length"]

    rich = tmp_path / "rich.jsonl"
    done = await asyncio.to_thread(cli, "trace", "export", "--format", "pilothouse",
                                   "--run", "run-1", "-o", str(rich))
    assert done.exit_code == 0, done.output
    recs = [json.loads(x) for x in rich.read_text().splitlines()]
    assert {r["lane"] for r in recs} == {"run-1/0", "run-1/1"}
    assert all(r["ttft_s"] is not None and r["duration_s"] >= r["ttft_s"] for r in recs)
    lane0 = [r for r in recs if r["lane"] == "run-1/0"]
    assert lane0[0]["think_s"] is None and all(r["think_s"] >= 0.04 for r in lane0[1:])
    assert {r["model"] for r in recs} == {MODEL} and all(r["stream"] for r in recs)

    none = await asyncio.to_thread(cli, "trace", "export", "--run", "nope")
    assert none.exit_code == 1 and "no recorded requests match" in none.output
    assert "Traceback" not in none.output


def test_hash_ids_are_prefix_stable() -> None:
    rows = [{"request_id": "a", "prompt_tokens": 40, "blocks": json.dumps([["h1", 80],
                                                                           ["h2", 80]])},
            {"request_id": "b", "prompt_tokens": 60, "blocks": json.dumps([["h1", 80],
                                                                           ["h2", 80],
                                                                           ["h3", 80]])},
            {"request_id": "c", "prompt_tokens": 20, "blocks": json.dumps([["x1", 80]])}]
    ids = HashIds(rows, block_size=10)  # 180 tokens / 720 chars: 20 tokens per block
    a, b, c = (ids.of(r, r["prompt_tokens"]) for r in rows)
    assert a == [0, 1, 2, 3] and b[:4] == a and len(b) == 6 and len(set(b[4:]) & set(a)) == 0
    assert set(c).isdisjoint(a)


def test_a_partial_last_block_never_shares_an_id_with_a_full_block() -> None:
    # 60 tokens over 300 characters: h1 spans tokens 0-19, h2 20-39. Request a (15 tokens)
    # ends inside h1, so its second block is partial (5 tokens); request b's second block is
    # full (10 tokens) and also ends inside h1. aiperf refuses one id at two sizes.
    rows = [{"request_id": "a", "prompt_tokens": 15, "blocks": json.dumps([["h1", 100]])},
            {"request_id": "b", "prompt_tokens": 45, "blocks": json.dumps([["h1", 100],
                                                                           ["h2", 100]])}]
    ids = HashIds(rows, block_size=10)
    a, b = (ids.of(r, r["prompt_tokens"]) for r in rows)
    assert a[0] == b[0] and a[1] != b[1]
    sizes: dict[int, set[int]] = {}
    for r, got in ((rows[0], a), (rows[1], b)):
        for k, i in enumerate(got):
            sizes.setdefault(i, set()).add(min(10, r["prompt_tokens"] - 10 * k))
    assert all(len(s) == 1 for s in sizes.values()), sizes


def trace_file(tmp_path: Path) -> Path:
    """A pilothouse trace like the export writes: two lanes, the second sharing a system
    prefix (hash ids 0, 1) with the first, lane 0 growing its own conversation."""
    recs = [
        {"lane": "r/0", "input_length": 40, "output_length": 5, "hash_ids": [0, 1, 2],
         "think_s": None, "stream": True},
        {"lane": "r/1", "input_length": 36, "output_length": 9, "hash_ids": [0, 1, 5],
         "think_s": None, "stream": True},
        {"lane": "r/0", "input_length": 60, "output_length": 4, "hash_ids": [0, 1, 2, 3],
         "think_s": 0.2, "stream": False},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({**r, "block_size": 16}) + "\n" for r in recs))
    return path


def test_workload_lanes_prompts_and_errors(tmp_path: Path) -> None:
    wl = load(trace_file(tmp_path))
    assert wl.source_format == "pilothouse" and wl.block_size == 16 and wl.requests == 3
    assert [lane.name for lane in wl.lanes] == ["r/0", "r/1"]
    assert wl.shared_ids == frozenset({0, 1})
    r0, r2 = wl.lanes[0].requests
    p0, p2 = prompt(r0, 16, shared=wl.shared_ids), prompt(r2, 16, shared=wl.shared_ids)
    assert len(p0.split()) == 40 and len(p2.split()) == 60
    assert p2.split()[:40] == p0.split()  # the recorded prefix, reproduced
    copy = prompt(r0, 16, salt="copy1", shared=wl.shared_ids)
    assert copy.split()[:32] == p0.split()[:32] and copy.split()[32:] != p0.split()[32:]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input_length": 0, "output_length": 1}\n')
    with pytest.raises(TraceError, match="line 1: input_length"):
        load(bad)
    assert think_policy("cap=0.5")(3.0) == 0.5 and think_policy("none")(3.0) == 0.0
    with pytest.raises(ValueError):
        think_policy("sometimes")


def test_figures_from_known_timings() -> None:
    # Two requests: TTFT 0.1 and 0.3 s; 11 output tokens over 1.0 s after the first token.
    rs = []
    for ttft in (0.1, 0.3):
        r = Result(start=0.0, end=ttft + 1.0, first_token=ttft, prompt_tokens=100,
                   completion_tokens=11, cached_tokens=50)
        r.token_times = [ttft + i * 0.1 for i in range(11)]
        rs.append(r)
    rs.append(Result(start=0.0, end=0.5, error="HTTP 500"))
    f = step_figures(rs, seconds=2.0, gpus=2, energy_j=440.0, price_kwh=0.36,
                     price_gpu_hour=3.6, all_in_kw_per_gpu=1.5)
    assert (f["requests"], f["errors"], f["tokens_in"], f["tokens_out"]) == (2, 1, 200, 22)
    assert f["tok_s"] == 111.0 and f["tok_s_out_per_gpu"] == 5.5
    assert f["ttft_p50_ms"] == 200.0 and f["tpot_p50_ms"] == 100.0
    assert f["tok_s_per_user"] == 10.0 and f["itl_p99_ms"] == pytest.approx(100.0)
    assert f["j_per_output_token"] == 20.0 and f["j_per_input_token"] == 2.2
    assert f["j_per_token"] == pytest.approx(440 / 222, rel=1e-5)
    assert f["tok_s_per_mw_board"] == pytest.approx(22 * 1e6 / 440)  # 11 tok/s at 220 W
    assert f["tok_s_per_mw_all_in"] == pytest.approx(11 / 0.003)  # 2 GPUs x 1.5 kW
    # $: 440 J = 1.222e-4 kWh x 0.36 = 4.4e-5; 2 GPUs x 2 s = 1/900 h x 3.6 = 4e-3
    assert f["usd_per_mtok"] == pytest.approx((4.4e-5 + 4e-3) / 22 * 1e6, rel=1e-5)
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None
    none = step_figures(rs, seconds=2.0, gpus=1, energy_j=None, energy_why="no NVIDIA GPU")
    assert none["j_per_token"] is None and none["missing"]["j_per_token"] == "no NVIDIA GPU"


async def test_replay_sweep_with_energy(tmp_path: Path) -> None:
    gpu = FakeGpu(0, power_w=100.0, energy_j=0.0)
    fake = FakeNvml([gpu], clock=time.monotonic)
    model = ScriptedModel(itl_s=0.002, gpus=[gpu])
    try:
        wl = load(trace_file(tmp_path))
        st = Settings(model.v1, MODEL, [1, 2, 4], think="cap=0.05", price_kwh=0.30,
                      price_gpu_hour=2.0, all_in_kw_per_gpu=1.2)
        began = time.time()
        steps = await run_sweep(wl, st, nvml=fake)
        done = time.time()
    finally:
        model.close()
    assert [s["concurrency"] for s in steps] == [1, 2, 4]
    # Each step's wall-clock span (what an outside power log is integrated over: on the H200,
    # nvidia-smi's power over it matched the step's energy within 0.3-3%), in order, inside
    # the sweep's time and as long as the step's own seconds.
    spans = [(s["started_at"], s["ended_at"]) for s in steps]
    assert began <= spans[0][0] and spans[-1][1] <= done
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    for s in steps:
        assert s["ended_at"] - s["started_at"] == pytest.approx(s["seconds"], abs=0.05)
    one, two, four = steps
    # Concurrency 1 plays lane r/0 (2 requests); 2 plays both lanes; 4 plays each twice.
    assert (one["requests"], two["requests"], four["requests"]) == (2, 3, 6)
    assert all(s["errors"] == 0 for s in steps)
    assert one["tokens_in"] == 100 and one["tokens_out"] == 9  # the recorded lengths
    assert two["tokens_in"] == 136 and four["tokens_in"] == 272
    assert one["tokens_cached"] == 32  # lane r/0's second request reuses its first's blocks
    assert model.max_active <= 4
    for s in steps:
        assert s["gpus"] == 1 and s["energy_j"] > 0 and s["missing"] == {}
        assert s["j_per_output_token"] == pytest.approx(s["energy_j"] / s["tokens_out"],
                                                        rel=1e-4)
        assert s["tok_s_per_mw_all_in"] == pytest.approx(s["tok_s_out"] / 1.2e-3, rel=1e-4)
        for name in ("ttft", "tpot", "itl", "e2e"):
            assert s[f"{name}_p50_ms"] <= s[f"{name}_p90_ms"] <= s[f"{name}_p99_ms"]
        assert s["tok_s_per_user"] > 0 and s["usd_per_mtok"] > 0
        # The counter moved at the scripted power: at least the idle 100 W over the step.
        assert s["energy_j"] >= 100 * s["seconds"] * 0.9


async def test_prompt_tokens_from_the_trace_when_a_stream_has_no_usage(tmp_path: Path) -> None:
    model = ScriptedModel(itl_s=0.001)
    model.lengths.stream_usage = False  # as llama-cpp-python's server streams
    try:
        wl = load(trace_file(tmp_path))
        st = Settings(model.v1, MODEL, [1, 4], think="none", private_copies=False)
        one, four = await run_sweep(wl, st)
    finally:
        model.close()
    # Lane r/0: a streamed request (no usage: its 40 asked-for tokens count) and a whole one
    # (the server's usage: 60); the output of the stream is counted by its content events.
    assert (one["tokens_in"], one["tokens_out"], one["tokens_in_source"]) == \
        (100, 9, "server+trace")
    assert four["tokens_in"] == 272 and four["requests"] == 6
    prompts = [p.body["messages"][0]["content"] for p in model.posts()]
    assert len(set(prompts[2:])) == 3  # copies sent the same three prompts, not salted ones


async def test_warmup_sends_each_lanes_first_request_before_the_clock(tmp_path: Path) -> None:
    """As aiperf's --warmup-request-count: one request per lane goes first and is not counted;
    the timed pass starts at the lane's next request and wraps, so it still sends them all."""
    model = ScriptedModel(itl_s=0.001)
    try:
        wl = load(trace_file(tmp_path))
        st = Settings(model.v1, MODEL, [1, 2], think="none", warmup=True)
        one, two = await run_sweep(wl, st)
        sent = [len(p.body["messages"][0]["content"].split()) for p in model.posts()]
    finally:
        model.close()
    # c=1 plays lane r/0 (40 then 60 words): warm 40, timed 60 then 40.
    # c=2 plays r/0 and r/1 (36): warm 40 and 36 at once, timed 60, 40 and 36.
    assert sent[:3] == [40, 60, 40]
    assert sorted(sent[3:5]) == [36, 40] and sorted(sent[5:]) == [36, 40, 60]
    assert (one["requests"], one["tokens_in"]) == (2, 100)
    assert (two["requests"], two["tokens_in"]) == (3, 136)
    # The warm request reached the server before the step began: the step's own requests
    # found its blocks cached (40 words = 2 blocks of 16 shared by the 60-word request).
    assert one["tokens_cached"] >= 32


async def test_replay_cli_warmup(cli_home: Path, tmp_path: Path) -> None:
    model = ScriptedModel(itl_s=0.001)
    try:
        done = await asyncio.to_thread(cli, "replay", str(trace_file(tmp_path)), "--url",
                                       model.v1, "--model", MODEL, "--concurrency", "1",
                                       "--think-time", "none", "--warmup", "--no-store", "--json")
        sent = [len(p.body["messages"][0]["content"].split()) for p in model.posts()]
    finally:
        model.close()
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["steps"][0]["requests"] == 2
    assert sent == [40, 60, 40]  # one warm request, then the lane's two


async def test_replay_cli_without_a_gpu_stores_and_reports(cli_home: Path, tmp_path: Path) -> None:
    model = ScriptedModel(itl_s=0.001)
    try:
        path = trace_file(tmp_path)
        done = await asyncio.to_thread(cli, "replay", str(path), "--url", model.v1,
                                       "--model", MODEL, "--concurrency", "1,2",
                                       "--think-time", "none", "--json")
    finally:
        model.close()
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert [s["concurrency"] for s in out["steps"]] == [1, 2]
    step = out["steps"][0]
    # This machine has no NVIDIA driver: energy figures say why instead of a number.
    assert step["energy_j"] is None and step["missing"]["energy_j"].startswith("no NVIDIA GPU")
    assert out["gpu_status"].startswith("no NVIDIA GPU")
    stored = results.sweeps(cli_home / "data" / "replay.db")
    assert stored[0]["sweep_id"] == out["sweep_id"] and len(stored[0]["steps"]) == 2
    report = await asyncio.to_thread(cli, "replay-report", "--json")
    assert json.loads(report.output)[0]["steps"][1]["requests"] == 3
    human = await asyncio.to_thread(cli, "replay-report")
    assert "tok/s/user" in human.output and "TTFT p50" in human.output
    # Per agent (lane) of the trace, as recorded, kept with the sweep and reported.
    agents = {a["lane"]: a for a in out["agents"]}
    assert (agents["r/0"]["requests"], agents["r/0"]["tokens_in"],
            agents["r/0"]["tokens_out"], agents["r/0"]["think_p50_s"]) == (2, 100, 9, 0.2)
    assert (agents["r/1"]["requests"], agents["r/1"]["think_p50_s"]) == (1, None)
    assert stored[0]["agents"] == out["agents"]
    assert "per agent" in human.output and "r/0" in human.output

    down = await asyncio.to_thread(cli, "replay", str(path), "--url", "http://127.0.0.1:9/v1",
                                   "--model", MODEL, "--concurrency", "1", "--no-store")
    assert down.exit_code == 1 and "Traceback" not in down.output
    assert "error:" in down.output
    bad = await asyncio.to_thread(cli, "replay", str(path), "--url", "https://x.invalid/v1",
                                  "--model", MODEL)
    assert bad.exit_code == 1 and "http://HOST:PORT/v1" in bad.output


def test_mooncake_trace_per_agent_is_one_lane_without_timings(tmp_path: Path) -> None:
    from console.replay.summary import summarise_trace

    path = tmp_path / "m.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 40, "output_length": 5, "hash_ids": [0, 1]}\n'
                    '{"timestamp": 900, "input_length": 60, "output_length": 4, '
                    '"hash_ids": [0, 1, 2]}\n')
    (lane,) = summarise_trace(path)
    assert (lane["lane"], lane["requests"], lane["tokens_in"], lane["tokens_out"]) == \
        ("trace", 2, 100, 9)
    assert lane["duration_p50_ms"] is None and lane["think_p50_s"] is None
    assert lane["prefix_reuse"] == 0.4  # two of the five blocks were sent before


def test_chunked_framing_split_anywhere() -> None:
    from console.replay.client import ChunkedBody

    wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\n"
    for cut in range(len(wire) + 1):
        d = ChunkedBody()
        got = d.feed(wire[:cut]) + d.feed(wire[cut:])
        assert got == b"hello world!" and d.done and d.buf == b""


async def test_duration_loops_lanes_and_gpu_index_picks_the_energy(tmp_path: Path) -> None:
    busy, other = FakeGpu(0, power_w=100.0), FakeGpu(1, power_w=600.0)
    fake = FakeNvml([busy, other], clock=time.monotonic)
    model = ScriptedModel(itl_s=0.001, gpus=[busy])
    try:
        wl = load(trace_file(tmp_path))
        st = Settings(model.v1, MODEL, [1], think="none", duration_s=0.4, gpu_index=[0])
        step = (await run_sweep(wl, st, nvml=fake))[0]
    finally:
        model.close()
    assert step["requests"] > 2  # lane r/0 (2 requests) looped until the duration was up
    assert step["gpus"] == 1
    # Only GPU 0 is read: its scripted power is 100-180 W, GPU 1's 600 W would show.
    assert step["watts"] < 300


async def test_trace_summary_per_agent(through: Through, writer: StoreWriter) -> None:
    await record_two_agents(through, writer)
    done = await asyncio.to_thread(cli, "trace", "summary", "--by", "lane", "--json")
    assert done.exit_code == 0, done.output
    lanes = {g["lane"]: g for g in json.loads(done.output)}
    assert set(lanes) == {"run-1/0", "run-1/1"}
    a = max(lanes.values(), key=lambda g: g["requests"])
    b = min(lanes.values(), key=lambda g: g["requests"])
    assert (a["requests"], a["tokens_out"]) == (3, 6 + 7 + 8) and b["tokens_out"] == 30
    assert a["think_p50_s"] >= 0.04 and a["ttft_p50_ms"] > 0
    # A's later turns resend A's earlier turns; B's system prompt was A's (or A's was B's).
    assert 0.5 < a["prefix_reuse"] < 1.0 and a["prefix_reuse"] > 0
    runs = json.loads((await asyncio.to_thread(cli, "trace", "summary", "--json")).output)
    assert [(g["run"], g["requests"], g["profile"]) for g in runs] == [("run-1", 4, "demo")]
    human = await asyncio.to_thread(cli, "trace", "summary")
    assert "prefix reuse" in human.output and "run-1" in human.output
