"""Issue 15's "done means", with real parts only: an agent using the openai SDK in a bubblewrap
sandbox talks to a real OpenAI-compatible server (llama-cpp-python running a tiny random
model on CPU, tests/replay/llama_server.py) through its run's gate; the daemon records each
request; the CLI exports the trace and replays it against the same server at 1, 2 and 4
lanes; the report and the console's benchmark screen show every figure, per step and per
agent. Only structure and exact token counts are asserted, never speed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.paths import resolve
from console.tui.app import PilothouseApp
from console.tui.screens.bench import BenchScreen
from tests.conftest import Daemon, needs_bwrap
from tests.replay import llama_server
from tests.tui.fixed import FixedSource
from tests.tui.screen import attached, screen_text, until

pytestmark = [needs_bwrap, pytest.mark.skipif(llama_server.missing() is not None,
                                              reason=str(llama_server.missing()))]

# The agent: a conversation of three turns (the first streamed, as coding agents call) and a
# sub-agent's call in parallel, through HTTP_PROXY (the sandbox's bridge to the gate). The
# sub-agent starts when the first turn's first words arrive; that turn is long (400 tokens)
# so it is still streaming then, and the gate sees two requests at once (two lanes).
AGENT = """
import sys, threading, time
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=120)
system = {"role": "system", "content": "you write code with care and test it " * 12}
started = threading.Event()
def side():
    started.wait(60)
    client.chat.completions.create(model="MODEL", max_tokens=24, messages=[
        system, {"role": "user", "content": "review the change"}])
helper = threading.Thread(target=side)
helper.start()
msgs = [system, {"role": "user", "content": "fix the bug in the parser"}]
stream = client.chat.completions.create(model="MODEL", max_tokens=400, messages=msgs,
                                        stream=True, stream_options={"include_usage": True})
words = []
for chunk in stream:
    started.set()
    words += [c.delta.content for c in chunk.choices if c.delta.content]
print("streamed", len(words))
for turn in range(2):
    msgs += [{"role": "assistant", "content": "done"}, {"role": "user", "content": "now more"}]
    time.sleep(0.2)
    answer = client.chat.completions.create(model="MODEL", max_tokens=8 + turn, messages=msgs)
    print("usage", answer.usage.prompt_tokens, answer.usage.completion_tokens)
helper.join()
print("agent done")
""".replace("MODEL", llama_server.MODEL)


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[llama_server.LlamaServer]:
    srv = llama_server.LlamaServer(tmp_path / "llama")
    (home / "config.toml").write_text(
        f'[gate]\ninference = ["127.0.0.1:{srv.port}"]\n\n'
        f'[profiles.shell.network]\nallow = ["127.0.0.1:{srv.port}"]\n')
    yield srv
    srv.close()


async def bench_screen_text(home: Path) -> str:
    app = PilothouseApp(resolve(home), source=FixedSource(), desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, BenchScreen) and app.screen.loaded,
                    "the benchmark screen")
        await pilot.pause(0.2)
        top = screen_text(app)
        await pilot.press("end")
        await pilot.pause(0.2)
        return top + screen_text(app)


def test_openai_sdk_in_a_sandbox_recorded_exported_replayed_and_shown(
        server: llama_server.LlamaServer, daemon: Daemon, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "agent.py").write_text(AGENT)
    done = daemon.cli("run", "shell", "-w", str(ws), "--wait", "--", str(llama_server.PYTHON),
                      "/workspace/agent.py", server.v1, check=False, timeout=240)
    assert done.returncode == 0 and "agent done" in done.stdout, done.stdout + done.stderr
    assert "streamed 400" in done.stdout  # answers run to max_tokens: the model never ends
    rows: list = []
    for _ in range(50):  # the daemon writes each row after the answer ended
        rows = json.loads(daemon.cli("trace", "list", "--json").stdout)
        if len(rows) >= 4:
            break
        time.sleep(0.1)
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 1
    assert {r["lane"].rsplit("/", 1)[1] for r in rows} == {"0", "1"}  # the sub-agent's lane
    assert all(r["start"] < r["first_byte"] <= r["end"] and r["status"] == 200 for r in rows)
    assert sorted(r["max_tokens"] for r in rows) == [8, 9, 24, 400]
    whole = [r for r in rows if not r["stream"]]
    assert sorted(r["completion_tokens"] for r in whole) == [8, 9, 24]
    assert all(r["prompt_tokens"] > 20 for r in whole)
    streamed = next(r for r in rows if r["stream"])
    assert streamed["completion_tokens"] is None  # llama-cpp-python streams no usage
    assert sum(1 for r in rows if r["think_s"] is not None) == 2

    mooncake = tmp_path / "agents.jsonl"
    daemon.cli("trace", "export", "--format", "mooncake", "--block-size", "16", "-o",
               str(mooncake))
    lines = [json.loads(x) for x in mooncake.read_text().splitlines()]
    assert sorted(x["output_length"] for x in lines) == [8, 9, 24, 400]
    rich = tmp_path / "rich.jsonl"
    daemon.cli("trace", "export", "--format", "pilothouse", "--block-size", "16", "-o", str(rich))
    out = json.loads(daemon.cli("replay", str(rich), "--url", server.v1, "--model",
                                llama_server.MODEL, "--concurrency", "1,2,4", "--think-time",
                                "cap=0.05", "--price-kwh", "0.3", "--price-gpu-hour", "2",
                                "--all-in-kw", "1.2", "--json", timeout=300).stdout)
    steps = out["steps"]
    assert [s["concurrency"] for s in steps] == [1, 2, 4]
    assert [s["requests"] for s in steps[1:]] == [4, 8] and steps[0]["requests"] in (1, 3)
    assert all(s["errors"] == 0 for s in steps)
    assert steps[2]["tokens_out"] == 2 * (8 + 9 + 24 + 400)  # the recorded lengths, exactly
    for s in steps:
        assert s["tok_s_out_per_gpu"] > 0 and s["tok_s_per_user"] > 0 and s["tok_s_per_mw_all_in"] > 0
        for name in ("ttft", "tpot", "itl", "e2e"):
            assert 0 < s[f"{name}_p50_ms"] <= s[f"{name}_p90_ms"] <= s[f"{name}_p99_ms"]
        # No NVIDIA GPU here: the energy figures say why instead of a number.
        assert s["j_per_output_token"] is None and "j_per_output_token" in s["missing"]
    agents = {a["lane"].rsplit("/", 1)[1]: a for a in out["agents"]}
    assert (agents["0"]["requests"], agents["1"]["requests"]) == (3, 1)
    assert agents["0"]["tokens_out"] == 400 + 8 + 9 and agents["0"]["think_p50_s"] >= 0.15

    report = json.loads(daemon.cli("replay-report", "--json").stdout)
    assert report[0]["sweep_id"] == out["sweep_id"] and report[0]["agents"] == out["agents"]
    human = daemon.cli("replay-report").stdout
    for header in ("tok/s/user", "TTFT p50", "TPOT p50", "J/out tok", "$/Mtok", "think p50 s"):
        assert header in human, human

    import asyncio

    text = asyncio.run(bench_screen_text(daemon.home))
    assert f"{llama_server.MODEL} at {server.v1}" in text, text
    for s in steps:
        row = next((line for line in text.splitlines()
                    if line.strip("│ ").startswith(f"{s['concurrency']}  ")
                    and f"{s['requests']}" in line), None)
        assert row is not None, text
    assert "Per agent (lane)" in text and "/0" in text and "/1" in text, text
