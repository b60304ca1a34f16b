"""Recording at the gate: a real Gate on a unix socket, a real store, a scripted model server
on 127.0.0.1; a client sends chat requests through the gate the way an agent would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from console.gate.trace import request_shape
from store.writer import StoreWriter
from tests.replay.conftest import Through, chat, settle
from tests.replay.model_server import ScriptedModel

SECRET = "the-secret-codeword-in-the-prompt"


async def test_each_request_is_recorded_with_times_tokens_lane_and_prefix_hashes(
        through: Through, writer: StoreWriter) -> None:
    system = {"role": "system", "content": "you are a careful coder " * 20}
    turn1 = [system, {"role": "user", "content": f"fix the bug {SECRET}"}]
    answer = await chat(through, turn1, max_tokens=8)
    assert b"[DONE]" in answer
    await asyncio.sleep(0.15)  # think time before the next call in the same lane
    turn2 = [*turn1, {"role": "assistant", "content": "tok " * 8},
             {"role": "user", "content": "now run the tests"}]
    await chat(through, turn2, max_tokens=5, stream=False)
    got = await settle(writer, 2)
    assert len(got) == 2
    first, second = got
    for r in got:
        assert r["run_id"] == "run-1" and r["profile"] == "demo" and r["lane"] == "run-1/0"
        assert r["start"] < r["first_byte"] <= r["end"] and r["status"] == 200
        assert r["endpoint"].endswith("/v1/chat/completions") and r["method"] == "POST"
        assert r["model"] == "scripted-1b" and r["content"] is None
    assert (first["stream"], first["max_tokens"], first["completion_tokens"]) == (1, 8, 8)
    assert first["prompt_tokens"] == 5 * 20 + 4 and first["think_s"] is None
    assert (second["stream"], second["max_tokens"], second["completion_tokens"]) == (0, 5, 5)
    assert second["cached_tokens"] == 96  # six 16-word blocks of the shared prefix
    assert second["think_s"] == pytest.approx(second["start"] - first["end"])
    assert second["think_s"] >= 0.1
    b1, b2 = json.loads(first["blocks"]), json.loads(second["blocks"])
    assert len(b1) == 2 and len(b2) == 4 and b2[:2] == b1  # the shared prefix, as hashes
    assert b1[0][1] == len(json.dumps(system, sort_keys=True, separators=(",", ":")))
    raw = Path(writer.db_path).read_bytes() + Path(f"{writer.db_path}-wal").read_bytes()
    assert SECRET.encode() not in raw  # no content unless asked


async def test_parallel_requests_are_separate_lanes(through: Through,
                                                    writer: StoreWriter) -> None:
    msgs = [{"role": "user", "content": "a b c d"}]
    await asyncio.gather(*(chat(through, msgs, max_tokens=30) for _ in range(3)))
    await chat(through, msgs, max_tokens=2)
    got = await settle(writer, 4)
    assert sorted(r["lane"] for r in got[:3]) == ["run-1/0", "run-1/1", "run-1/2"]
    assert got[3]["lane"] == "run-1/0" and got[3]["think_s"] is not None


async def test_gate_publishes_the_request_start_for_energy_attribution(
        through: Through, writer: StoreWriter) -> None:
    await chat(through, [{"role": "user", "content": "hello there"}], max_tokens=4)
    events = through.published()
    kinds = [e["kind"] for e in events]
    assert kinds == ["inference.start", "tokens", "inference.end"]
    start, tokens, end = events
    assert start["request_id"] == tokens["request_id"] == end["request_id"]
    assert start["run_id"] == "run-1" and tokens["started"] <= tokens["ts"]
    assert tokens["started"] == pytest.approx(start["ts"], abs=0.05)
    assert (tokens["prompt_tokens"], tokens["completion_tokens"]) == (2, 4)


def test_request_shape_of_each_api() -> None:
    key = b"k" * 32
    anthropic = request_shape(json.dumps({
        "model": "c", "system": "s", "max_tokens": 9, "stream": True,
        "messages": [{"role": "user", "content": "x"}]}).encode(), key)
    assert (anthropic.model, anthropic.max_tokens, anthropic.stream) == ("c", 9, True)
    assert len(anthropic.blocks) == 2
    responses = request_shape(json.dumps({"model": "g", "instructions": "be brief",
                                          "input": "hi", "max_output_tokens": 3}).encode(), key)
    assert responses.max_tokens == 3 and len(responses.blocks) == 2
    tgi = request_shape(json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 7}})
                        .encode(), key)
    assert tgi.max_tokens == 7 and len(tgi.blocks) == 1
    assert request_shape(b"not json", key).blocks == []
    other = request_shape(json.dumps({"inputs": "hi"}).encode(), b"other key")
    assert other.blocks[0][0] != tgi.blocks[0][0]  # keyed: not comparable across installs
    kept = request_shape(json.dumps({"prompt": "p"}).encode(), key, keep_content=True)
    assert kept.content == ['{"prompt":"p"}']


async def test_a_cut_answer_ends_its_request_and_frees_its_lane(
        through: Through, writer: StoreWriter, model: ScriptedModel) -> None:
    model.itl_s = 0.01  # 300 tokens: 3 s, cut after 0.3 s
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "long"}],
                       "max_tokens": 300, "stream": True}).encode()
    reader, w = await asyncio.open_unix_connection(through.path)
    w.write(f"POST {through.url} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)
    await w.drain()
    await reader.readuntil(b"tok")  # streaming has begun
    await asyncio.sleep(0.3)
    w.close()  # the client hangs up mid-answer
    kinds: list[str] = []
    for _ in range(100):
        kinds += [e["kind"] for e in through.published()]
        if "inference.end" in kinds:
            break
        await asyncio.sleep(0.05)
    assert kinds.count("inference.start") == kinds.count("inference.end") == 1
    got = await settle(writer, 1)
    assert got[0]["completion_tokens"] is None and got[0]["end"] > got[0]["first_byte"]
    model.itl_s = 0.001
    await chat(through, [{"role": "user", "content": "next"}], max_tokens=2)
    got = await settle(writer, 2)
    assert got[1]["lane"] == "run-1/0"  # the cut request's slot was given back


def test_lanes_think_time_and_forgetting_idle_runs() -> None:
    from console.gate.trace import TraceRecorder

    now = [0.0]
    rec = TraceRecorder(None, None, clock=lambda: now[0])
    a = rec.begin("old", "POST", "h/v1/chat/completions")
    now[0] = 2.0
    a.finish(None, 200)
    now[0] = 5.0
    b = rec.begin("old", "POST", "h/v1/chat/completions")
    assert (b.lane, b.think_s) == ("old/0", 3.0)
    b.finish(None, 200)
    now[0] = 5000.0  # over an hour later; other runs keep the recorder busy
    for _ in range(256):
        rec.begin("busy", "POST", "h/x").finish(None, 200)
    c = rec.begin("old", "POST", "h/v1/chat/completions")
    assert (c.lane, c.think_s) == ("old/0", None)  # a fresh start, not 4995 s of thinking
