"""Review h136: a model server the replay is pointed at (127.0.0.1, scripted here with canned
bytes) and a recorded trace an agent shaped, against the replay client, its figures, what the
CLI prints of them, and the export."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from typing import Any

import pytest

from console.replay import client as replay_client
from console.replay import export
from console.replay.client import ChunkedBody, Connection, Endpoint
from console.replay.figures import step_figures


class Canned:
    """127.0.0.1 server: reads one request, answers `answer`, closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.port = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Canned:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(h.split(b":", 1)[1]) for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        writer.write(self.answer)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _json(body: bytes, status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body


async def _chat(answer: bytes, *, stream: bool = False) -> replay_client.Result:
    async with Canned(answer) as srv:
        conn = Connection(Endpoint(srv.url), timeout_s=5)
        try:
            return await conn.chat("m", "hello", 4, stream=stream)
        finally:
            await conn.close()


# --- 1. the usage a server reports is believed as it comes -----------------------------------

@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -1_000_000, "completion_tokens": -5},
    {"prompt_tokens": 10**15, "completion_tokens": 10**15},
    {"prompt_tokens": True, "completion_tokens": True},
], ids=["negative", "quadrillion", "bool"])
async def test_replay_does_not_believe_usage_no_server_makes(usage: dict[str, Any]) -> None:
    """The meter reads counts through token_count (0..10**8, no bool); the replay's client took
    any JSON int: negative tokens made negative tok/s and J/token, 10**15 made a figure a
    person would quote."""
    body = json.dumps({"choices": [{"message": {"content": "hi"}}], "usage": usage}).encode()
    result = await _chat(_json(body))
    assert result.error is None
    assert result.prompt_tokens is None and result.completion_tokens is None
    figures = step_figures([result], seconds=1.0, gpus=1, energy_j=100.0)
    assert figures["tok_s_out"] is not None and 0 <= figures["tok_s_out"] < 10**8
    assert figures["j_per_output_token"] is None or figures["j_per_output_token"] > 0


async def test_a_streamed_fake_usage_block_is_bounded_too() -> None:
    events = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":-7}}\n\n'
              b"data: [DONE]\n\n")
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
              b"\r\n" + events)
    result = await _chat(answer, stream=True)
    assert result.error is None and result.prompt_tokens == 5
    assert result.completion_tokens is None and result.output_tokens == 1


# --- 2. chunked framing: a negative size spins the event loop for ever ------------------------

def test_a_negative_chunk_size_is_refused_not_a_hang() -> None:
    """int(b"-6", 16) is -6: `left` went negative, `i` walked backwards, and feed() (plain
    code on the event loop, where no wait_for can stop it) never returned."""
    done: list[BaseException | bytes] = []

    def go() -> None:
        try:
            done.append(ChunkedBody().feed(b"-6\r\nab\r\n0\r\n\r\n"))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            done.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(3)
    assert done, "ChunkedBody.feed never returned on a chunk size of -6"
    assert isinstance(done[0], replay_client.ClientError | ValueError)


@pytest.mark.parametrize("size", [b"+5", b"0x5", b"5_0", b" 5"])
def test_chunk_sizes_http_does_not_allow_are_refused(size: bytes) -> None:
    with pytest.raises((replay_client.ClientError, ValueError)):
        ChunkedBody().feed(size + b"\r\n" + b"a" * 80 + b"\r\n0\r\n\r\n")


# --- 3. a response head past the reader's limit ends the whole replay ------------------------

async def test_a_huge_response_head_is_one_requests_error() -> None:
    """readuntil raises LimitOverrunError past 64 KiB (not an OSError nor a ValueError): it
    went through gather and ended the sweep with a traceback instead of counting an error."""
    answer = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n{}"
    result = await _chat(answer)
    assert result.error


# --- 4. an answer without a length is read into memory without bound -------------------------

async def test_an_endless_answer_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_client, "MAX_ANSWER", 1024 * 1024, raising=False)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
              + b" " * (4 * 1024 * 1024))
    result = await _chat(answer)
    assert result.error and "large" in result.error


async def test_an_event_without_its_end_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay_client, "MAX_EVENT", 1024 * 1024, raising=False)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
              b"data: " + b"x" * (4 * 1024 * 1024))
    result = await _chat(answer, stream=True)
    assert result.error and "large" in result.error


async def test_an_endless_stream_of_events_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each content event keeps its time (token_times): a stream that never ends grew it until
    the request's 600 s timeout (helper 137's note)."""
    monkeypatch.setattr(replay_client, "MAX_TOKEN_EVENTS", 1000, raising=False)
    event = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
              + event * 5000)
    result = await _chat(answer, stream=True)
    assert result.error and "content events" in result.error, result.error
    assert len(result.token_times) <= 1000


# --- 5. the server's status line reaches the terminal as it came ----------------------------

async def test_a_status_reason_with_terminal_escapes_is_printed_escaped(
        capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli.workload import _print_steps

    result = await _chat(_json(b"{}", status=b"500 \x1b]0;owned\x07\x1b[2J\x9b31m"))
    assert result.error
    step = step_figures([result], seconds=1.0, gpus=1, energy_j=None)
    _print_steps([{"concurrency": 1, **step}])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out


# --- 6. the export of a run whose server claimed 10**8 prompt tokens per request -------------

def test_export_hash_ids_are_bounded_over_the_whole_export(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each count is believed up to 10**8 (195,313 ids at 512), but nothing bounds the sum: a
    server the agent controls answering 1,000 requests with 99,999,999 prompt tokens makes an
    export of 195 million ids (about 33 MB of memory per request measured: 33 GB) and a 1.5 GB
    file. The export stops in words past a budget instead."""
    monkeypatch.setattr(export, "MAX_EXPORT_IDS", 1_000_000, raising=False)
    rows = [{"request_id": f"r{i}", "run_id": "run", "lane": "run/0", "start": float(i),
             "prompt_tokens": 99_999_999, "completion_tokens": 1,
             "blocks": json.dumps([[f"h{i}", 10]])} for i in range(20)]
    made = 0
    intern = export.HashIds._intern

    def counted(self: export.HashIds, key: Any) -> int:
        nonlocal made
        made += 1
        assert made <= 1_000_000, "past the export's budget of hash ids"
        return intern(self, key)

    monkeypatch.setattr(export.HashIds, "_intern", counted)
    with pytest.raises(ValueError, match="hash ids"):
        export.write(rows, "mooncake", io.StringIO())


def test_a_model_name_the_agent_sent_is_escaped_in_the_export() -> None:
    """The model is the request's (the agent's) or the server's text, exported as it came with
    ensure_ascii=False: a bidi override or a C1 control reached a terminal running
    `trace export --format pilothouse`, and U+2028 splits the line for readers that treat it
    as one. JSON's \\u escape means the same character."""
    from console.text import hides

    model = "qwen\u202e\u009b2J\u2028x"
    rows = [{"request_id": "r0", "run_id": "run", "lane": "run/0", "start": 0.0,
             "prompt_tokens": 10, "completion_tokens": 1, "model": model,
             "blocks": json.dumps([["h", 10]])}]
    out = io.StringIO()
    export.write(rows, "pilothouse", out)
    text = out.getvalue()
    assert not any(hides(ch) for ch in text if ch > "~")
    assert json.loads(text)["model"] == model
