"""Review s16 (metering): a hostile agent, or a hostile model server on 127.0.0.1, against the
token meter, the trace recorder, the export and the GPU ledger. Real gate, real sockets, real
SQLite; the only stand-ins are the model servers (scripted, or a raw one answering canned
bytes) and no GPU (the ledger is fed samples as the sampler would)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.gate.trace import TraceRecorder, request_shape
from console.gpu.energy import EnergyLedger
from console.gpu.scrape import Scraper
from console.replay import export
from store.writer import StoreWriter
from tests.gpu.test_scrape import Served, serve  # noqa: F401 - the fixture
from tests.replay.conftest import Through, rows, settle


class RawModel:
    """A model server on 127.0.0.1 that answers every request with the same canned bytes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> RawModel:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.write(self.answer)
        await writer.drain()
        writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def json_answer(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)) + body


@pytest.fixture
async def raw_through(request: pytest.FixtureRequest, tmp_path: Path, writer: StoreWriter
                      ) -> AsyncIterator[Through]:
    model = await RawModel(request.param).start()
    t = Through(tmp_path, model, writer, run_id="run-b")
    await t.gate.serve_unix(t.path)
    yield t
    await t.gate.close()
    model.close()


async def post(path: str, url: str, body: bytes) -> bytes:
    """One POST through a gate socket, as an agent's HTTP_PROXY client sends it."""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(f"POST {url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def chat_body(**extra: Any) -> bytes:
    return json.dumps({"model": "scripted-1b", "stream": False,
                       "messages": [{"role": "user", "content": "fix the bug"}],
                       **extra}).encode()


# --- 1. one request the store cannot take loses every row of its batch -----------------------


async def test_an_agents_oversized_max_tokens_does_not_lose_the_other_rows_of_its_batch(
        through: Through, writer: StoreWriter) -> None:
    """The agent asks with `max_output_tokens` 2**63 (any JSON integer is taken as the max
    tokens). SQLite cannot hold it: the batch's executemany raises, the savepoint undoes every
    row of the flush (its own and those of the requests beside it), and nobody hears of it."""
    honest = chat_body(max_tokens=3)
    hostile = chat_body(max_output_tokens=2**63)
    await asyncio.gather(post(through.path, through.url, honest),
                         post(through.path, through.url, hostile),
                         post(through.path, through.url, honest))
    got = await settle(writer, 3)
    assert len(got) == 3, f"rows lost: {len(got)} of 3 stored"
    assert sorted(r["completion_tokens"] for r in got) == [3, 3, 16]
    assert all(r["max_tokens"] in (3, None) for r in got)  # 2**63 is no max tokens


def test_trace_rows_the_store_refuses_are_counted_and_said(
        writer: StoreWriter, caplog: pytest.LogCaptureFixture) -> None:
    """Metering may be dropped, but it must be counted and said: rows whose insert fails in
    the writer (a full disk, say; here a trigger that refuses) must not vanish without a
    word because nobody looks at the writer's future."""
    conn = sqlite3.connect(writer.db_path)
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON trace_requests "
                  "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    conn.commit()
    conn.close()
    recorder = TraceRecorder(writer, None, key=b"k" * 32)
    caplog.set_level(logging.WARNING, logger="pilothouse.gate.trace")
    for _ in range(2):  # no event loop here: each row is built and handed over at once
        recorder.begin("run-a", "POST", "127.0.0.1:1/v1/chat/completions").finish(None, 200)
    writer.flush()
    assert recorder.lost == 2
    assert "not stored" in caplog.text and "database or disk is full" in caplog.text


# --- 2. a deeply nested body hides the request from the trace --------------------------------


def test_a_deeply_nested_or_surrogate_request_body_is_still_recorded(
        writer: StoreWriter) -> None:
    """json.loads raises RecursionError (not ValueError) past ~1000 levels, and a message
    holding a lone surrogate (JSON's \\ud800) raised UnicodeEncodeError when hashed: either way
    the row was never built, so the agent's request is missing from the trace and from every
    export, and no count says so."""
    recorder = TraceRecorder(writer, None, key=b"k" * 32)
    for run, body in (("run-a", b'{"messages": [{"role": "user", "content": "x"}], "x": '
                       + b"[" * 50_000 + b"]" * 50_000 + b"}"),
                      ("run-b", b'{"model": "\\ud800", "max_tokens": 4, "messages": '
                       b'[{"role": "user", "content": "hi \\udfff"}]}')):
        trace = recorder.begin(run, "POST", "127.0.0.1:1/v1/chat/completions")
        trace.request_body(body)
        trace.finish(None, 200)
    got = rows(writer)
    assert sorted(r["run_id"] for r in got) == ["run-a", "run-b"]
    assert recorder.lost == 0
    model = next(r for r in got if r["run_id"] == "run-b")["model"]
    assert model.startswith("\ufffd") and model.encode()  # repaired, as the store repairs text


# --- 3. many tiny messages: memory and row size without bound --------------------------------


def test_many_tiny_messages_are_not_a_block_each_without_bound() -> None:
    """A 1 MB body of 500,000 one-character messages became 500,000 hashed blocks: about 100
    MB of objects in the daemon and an 11 MB `blocks` column, per request (8 MB bodies: 4M
    blocks). The prefix hashes must stay bounded and still say what two requests share."""
    n = 500_000
    body = b'{"messages":[' + b",".join([b"0"] * n) + b"]}"
    other = b'{"messages":[' + b",".join([b"0"] * (n - 1) + [b"1"]) + b"]}"
    a, b = request_shape(body, b"k" * 32), request_shape(other, b"k" * 32)
    assert len(a.blocks) <= 4096
    assert len(json.dumps(a.blocks)) < 256 * 1024
    assert sum(c for _, c in a.blocks) >= n  # every character still counted (the token ratio)
    assert a.blocks[:-1] == b.blocks[:-1] and a.blocks[-1] != b.blocks[-1]


# --- 4. absurd token counts from the server ------------------------------------------------

HUGE = b"1" + b"0" * 400  # a JSON integer Python reads as is


@pytest.mark.parametrize("raw_through", [json_answer(
    b'{"model": "m", "usage": {"prompt_tokens": ' + HUGE + b', "completion_tokens": ' + HUGE
    + b', "total_tokens": 1}}')], indirect=True, ids=["401-digit-usage"])
async def test_absurd_usage_from_the_server_does_not_stop_gpu_attribution(
        raw_through: Through, writer: StoreWriter) -> None:
    """A 401-digit prompt_tokens passed the meter (any non-negative int): the gate published
    it, the ledger summed it and split_exact's float() overflowed at every window close from
    then on, for every run; the trace row's insert overflowed too (SQLite's 64-bit INTEGER)."""
    await post(raw_through.path, raw_through.url, chat_body(max_tokens=4))
    tokens = [e for e in raw_through.published() if e["kind"] == "tokens"]
    assert len(tokens) == 1
    ev = tokens[0]
    ledger = EnergyLedger()
    for t in range(0, 31):  # 300 W for 30 s
        ledger.add_power("g0", float(t), t * 300_000, 300_000)
    ledger.add_tokens("run-a", 100, 50, 2.0)  # an honest run beside it
    ledger.add_tokens("run-b", ev.get("prompt_tokens") or 0, ev.get("completion_tokens") or 0,
                      3.0)
    ledger.close_until(10.0)
    ledger.add_tokens("run-a", 100, 50, 12.0)
    ledger.close_until(20.0)
    assert ledger.runs["run-a"].energy_mj > 0
    assert ledger.accounted_mj() == ledger.total_mj
    got = await settle(writer, 1)
    assert len(got) == 1, "the request's trace row was lost"
    assert got[0]["prompt_tokens"] is None or got[0]["prompt_tokens"] < 10**9


OLLAMA_12 = b'{"model": "m", "prompt_eval_count": 999999999999, "eval_count": 999999999999}'


@pytest.mark.parametrize("raw_through", [json_answer(OLLAMA_12)], indirect=True,
                         ids=["ollama-12-digits"])
async def test_a_trillion_token_answer_does_not_hang_the_export(
        raw_through: Through, writer: StoreWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ollama-shaped counts of 12 digits were recorded as they came; `trace export` then makes
    ceil(10**12 / 512) hash ids for that one line (2 billion: a hang, then out of memory), and
    aiperf would be asked for a 10**12-token prompt and answer. The export counts its ids."""
    await post(raw_through.path, raw_through.url, chat_body(max_tokens=4))
    got = await settle(writer, 1)
    assert len(got) == 1
    made = 0
    intern = export.HashIds._intern

    def counted(self: export.HashIds, key: Any) -> int:
        nonlocal made
        made += 1
        if made > 1_000_000:
            raise AssertionError("over a million hash ids for one recorded request")
        return intern(self, key)

    monkeypatch.setattr(export.HashIds, "_intern", counted)
    out = io.StringIO()
    assert export.write(got, "mooncake", out) == 1
    line = json.loads(out.getvalue())
    assert line["input_length"] < 10**9 and line["output_length"] < 10**9


# --- 5. a scraped counter at the float limit ends scraping ---------------------------------


async def test_a_scraped_counter_near_float_max_does_not_end_the_scraper(serve) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Two vLLM series each jumping by 1e308 sum to inf; round(inf) raised OverflowError out
    of Scraper.scrape (outside its try), which ends Scraper.run's task for good."""
    base = ('vllm:prompt_tokens_total{{model_name="a"}} {v}\n'
            'vllm:prompt_tokens_total{{model_name="b"}} {v}\n'
            "vllm:generation_tokens_total 0\n")
    target = await serve(Served([base.format(v=0), base.format(v="1e308"),
                                 base.format(v="1e308")]))
    seen: list[tuple[int, int]] = []
    scraper = Scraper([target], on_delta=lambda url, p, g, ts: seen.append((p, g)))
    t = scraper.targets[0]
    await scraper.scrape(t)
    await scraper.scrape(t)  # raised here
    await scraper.scrape(t)
    assert t.scrapes + t.failures == 3
    assert all(p < 10**18 for p, _ in seen)
