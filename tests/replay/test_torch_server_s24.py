"""bench/torch_server.py, the server the H200 check recorded and replayed against (s24), with
its model replaced: the engine here answers ids from a thread, as the GPU's does, so its HTTP
framing, usage and counters are what ran on the GPU. torch is not needed (imported by the
real engine only).

What is checked: stdlib http.client (an oracle for the chunked framing) reads its streamed
and plain answers; two requests share a keep-alive connection; bad requests are answered 400
without a traceback; the gate meters its streamed answers exactly (the GPU run compared the
replay's tokens with the server's counters, which this pins); and the power log's integral
(bench/gpu_validate.py, which gpu_replay uses too) against a hand computation.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bench.gpu_validate import integrate
from bench.torch_server import MODEL, Server
from console.replay.workload import WORDS
from store.writer import StoreWriter
from tests.replay.conftest import Through, chat, settle


class StandInEngine:
    """The Engine's face to the server: `pending`, `counters`, `lock`, `max_positions`; answers
    each job with ids 0, 1, 2, ... from its own thread."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Any] = queue.Queue()
        self.counters = {"prompt": 0, "generation": 0, "requests": 0, "batches": 0,
                         "steps": 0, "step_s": 0.0}
        self.lock = threading.Lock()
        self.max_positions = 256
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while True:
            job = self.pending.get()
            for i in range(job.max_tokens):
                job.put(i)
            job.put(None)
            with self.lock:
                self.counters["prompt"] += len(job.ids)
                self.counters["generation"] += job.max_tokens
                self.counters["requests"] += 1


class Served:
    """The real Server on 127.0.0.1 in a loop of its own; `port` for the gate's fixture."""

    def __init__(self) -> None:
        self.engine = StandInEngine()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self.server = await asyncio.start_server(Server(self.engine).handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert ready.wait(10)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def post(conn: http.client.HTTPConnection, body: Any) -> http.client.HTTPResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
    return conn.getresponse()


def test_plain_and_streamed_answers_on_one_connection(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    messages = [{"role": "system", "content": "the of and"},
                {"role": "user", "content": [{"type": "text", "text": "to in is it"}]}]
    resp = post(conn, {"model": MODEL, "max_tokens": 5, "messages": messages})
    assert resp.status == 200
    answer = json.loads(resp.read())
    assert answer["usage"] == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
                               "prompt_tokens_details": {"cached_tokens": 0}}
    assert answer["choices"][0]["message"]["content"] == " ".join(WORDS[:5])

    # The same connection (keep-alive), streamed: http.client undoes the chunking.
    resp = post(conn, {"model": MODEL, "max_tokens": 3, "messages": messages, "stream": True,
                       "stream_options": {"include_usage": True}})
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    events = [line[6:] for line in resp.read().decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}  # with the first token, as vLLM
    assert "".join(d.get("content", "") for d in deltas) == "".join(w + " " for w in WORDS[:3])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3 and chunks[-1]["choices"] == []
    conn.close()

    metrics = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    assert f'vllm:prompt_tokens_total{{model_name="{MODEL}"}} 14' in text
    assert f'vllm:generation_tokens_total{{model_name="{MODEL}"}} 8' in text
    metrics.close()


@pytest.mark.parametrize("body, why", [
    (b"not json", "bad request"),
    ({"model": MODEL, "max_tokens": 300, "messages": []}, "do not fit"),
    ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "a " * 260}]},
     "do not fit"),
    ({"model": MODEL, "max_tokens": "x", "messages": []}, "bad request"),
])
def test_bad_requests_are_answered_400_and_the_connection_goes_on(served: Served, body: Any,
                                                                   why: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    resp = post(conn, body)
    assert resp.status == 400 and why in json.loads(resp.read())["error"]["message"]
    resp = post(conn, {"model": MODEL, "max_tokens": 1, "messages": []})
    assert resp.status == 200
    conn.close()


async def test_the_gate_meters_its_streamed_answers_exactly(tmp_path: Any,
                                                            writer: StoreWriter) -> None:
    served = await asyncio.to_thread(Served)
    t = Through(tmp_path, served, writer)
    await t.gate.serve_unix(t.path)
    try:
        for n in (4, 9):
            raw = await chat(t, [{"role": "user", "content": "one two three"}], max_tokens=n)
            assert raw.startswith(b"HTTP/1.1 200")
        got = await settle(writer, 2)
    finally:
        await t.gate.close()
        await asyncio.to_thread(served.close)
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in got] == [(3, 4), (3, 9)]
    usage = [p for k, p in t.records if k == "tokens"]
    assert [(u["prompt_tokens"], u["completion_tokens"]) for u in usage] == [(3, 4), (3, 9)]


def test_the_power_integral_against_a_hand_computation() -> None:
    points = [(0.0, 100.0), (1.0, 100.0), (2.0, 300.0), (3.0, 300.0)]
    # 0.5..1.0 at 100 W = 50 J; 1.0..1.5 from 100 W to 200 W = 75 J.
    assert integrate(points, 0.5, 1.5) == pytest.approx(125.0)
    assert integrate(points, 0.0, 3.0) == pytest.approx(100 + 200 + 300)
    assert integrate(points, -1.0, 2.0) is None  # the log does not cover the span
    assert integrate(points[:1], 0.0, 0.0) is None
