"""Token usage from response bodies fed in arbitrary pieces, as they pass through the gate."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.gate.usage import ChunkedDecoder, Usage, UsageMeter

OPENAI_JSON = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "qwen2.5-7b",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo {}\n"}}],
    "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
}, indent=2).encode()

SSE = b"".join([
    b'data: {"id":"c","model":"gpt-x","choices":[{"delta":{"role":"assistant"}}],'
    b'"usage":null}\n\n',
    b': keep-alive comment\n\n',
    b'data: {"id":"c","model":"gpt-x","choices":[{"delta":{"content":"data: {}"}}],'
    b'"usage":null}\r\n\r\n',
    b'data: {"id":"c","model":"gpt-x","choices":[],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":34,"total_tokens":46}}\n\n',
    b"data: [DONE]\n\n",
])

OLLAMA_NDJSON = b"".join(json.dumps(o).encode() + b"\n" for o in [
    {"model": "llama3.2", "response": "Hi", "done": False},
    {"model": "llama3.2", "response": "!", "done": False},
    {"model": "llama3.2", "response": "", "done": True, "prompt_eval_count": 26,
     "eval_count": 290, "total_duration": 5589157167},
])

OLLAMA_JSON = json.dumps({"model": "llama3.2", "response": "x", "done": True,
                          "prompt_eval_count": 5, "eval_count": 7}).encode()

ANTHROPIC_SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"model":"claude",'
    b'"usage":{"input_tokens":25,"output_tokens":1}}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n'
)

SAMPLES = [
    ("application/json", OPENAI_JSON, Usage(21, 9, 30, "qwen2.5-7b")),
    ("text/event-stream; charset=utf-8", SSE, Usage(12, 34, 46, "gpt-x")),
    ("application/x-ndjson", OLLAMA_NDJSON, Usage(26, 290, 316, "llama3.2")),
    ("application/json; charset=utf-8", OLLAMA_JSON, Usage(5, 7, 12, "llama3.2")),
    ("text/event-stream", ANTHROPIC_SSE, Usage(25, 15, 40, "claude")),
    ("", SSE, Usage(12, 34, 46, "gpt-x")),  # sniffed
    ("", OPENAI_JSON, Usage(21, 9, 30, "qwen2.5-7b")),
]


def chunked(body: bytes, size: int = 17) -> bytes:
    out = b"".join(f"{len(body[i:i + size]):x};ext=1\r\n".encode() + body[i:i + size] + b"\r\n"
                   for i in range(0, len(body), size))
    return out + b"0\r\nTrailer: x\r\n\r\n"


def feed(meter: UsageMeter, data: bytes, cuts: list[int]) -> Usage | None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    prev = 0
    for p in [*points, len(data)]:
        meter.feed(data[prev:p])
        prev = p
    return meter.finish()


@pytest.mark.parametrize("ctype,body,want", SAMPLES)
def test_whole_bodies(ctype: str, body: bytes, want: Usage) -> None:
    assert feed(UsageMeter(ctype), body, []) == want
    assert feed(UsageMeter(ctype, chunked=True), chunked(body), []) == want


@settings(max_examples=150)
@given(sample=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(0, 10_000), max_size=40),
       raw_chunked=st.booleans(), size=st.integers(1, 64))
def test_any_split_gives_the_same_usage(sample: tuple[str, bytes, Usage], cuts: list[int],
                                        raw_chunked: bool, size: int) -> None:
    ctype, body, want = sample
    data = chunked(body, size) if raw_chunked else body
    assert feed(UsageMeter(ctype, chunked=raw_chunked), data, cuts) == want


def test_bytewise_feed() -> None:
    meter = UsageMeter("text/event-stream")
    for i in range(len(SSE)):
        meter.feed(SSE[i : i + 1])
    assert meter.finish() == Usage(12, 34, 46, "gpt-x")


def test_no_usage_and_garbage_report_nothing() -> None:
    assert feed(UsageMeter("application/json"), b'{"choices": []}', []) is None
    assert feed(UsageMeter("text/event-stream"), b"data: {not json\n\n", []) is None
    assert feed(UsageMeter("text/html"), b"<html>", []) is None
    meter = UsageMeter("application/json", chunked=True)
    meter.feed(b"zz\r\n")  # not chunked framing: the meter gives up quietly
    assert meter.failed and meter.finish() is None


def test_large_json_body_is_bounded_and_still_read() -> None:
    big = json.dumps({"model": "m1", "choices": [{"text": "x" * 3_000_000}],
                      "usage": {"prompt_tokens": 1, "completion_tokens": 2}}).encode()
    meter = UsageMeter("application/json", max_buffer=256 * 1024, max_line=64 * 1024)
    for i in range(0, len(big), 8192):
        meter.feed(big[i : i + 8192])
        assert len(meter._buf) <= 256 * 1024 + 8192
        assert len(meter._line) <= 64 * 1024
    assert meter.finish() == Usage(1, 2, 3, "m1")


def test_huge_sse_line_is_skipped_not_buffered() -> None:
    meter = UsageMeter("text/event-stream", max_line=1024)
    meter.feed(b"data: " + b"x" * 100_000)
    assert len(meter._line) <= 1024
    meter.feed(b"\n\ndata: " + json.dumps({"usage": {"prompt_tokens": 3,
                                                     "completion_tokens": 4}}).encode() + b"\n\n")
    assert meter.finish() == Usage(3, 4, 7, None)


def test_cumulative_usage_takes_the_latest() -> None:
    """vLLM's continuous usage stats repeat cumulative counts in every chunk."""
    body = b"".join(
        b"data: " + json.dumps({"model": "v", "usage": {"prompt_tokens": 5,
                                                       "completion_tokens": n,
                                                       "total_tokens": 5 + n}}).encode()
        + b"\n\n" for n in range(1, 6))
    assert feed(UsageMeter("text/event-stream"), body, [3, 50]) == Usage(5, 5, 10, "v")


def test_chunked_decoder() -> None:
    d = ChunkedDecoder()
    out = b"".join(d.feed(bytes([b])) for b in chunked(b"hello world", 3))
    assert out == b"hello world" and d.done
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(b"-1\r\n")
    with pytest.raises(ValueError):
        ChunkedDecoder().feed(b"1" * 5000)


def test_anthropic_prompt_counts_cache_writes_and_reads() -> None:
    """input_tokens leaves both cache counts out: the prompt is all three (issue 13, point 4);
    the cache reads are kept apart as cached tokens."""
    from console.gate.usage import UsageMeter

    events = [
        ("message_start", {"type": "message_start", "message": {"model": "claude-x", "usage": {
            "input_tokens": 12, "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 4000, "output_tokens": 1}}}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 42}}),
    ]
    body = b"".join(f"event: {k}\ndata: {json.dumps(v)}\n\n".encode() for k, v in events)
    meter = UsageMeter("text/event-stream")
    meter.feed(body)
    u = meter.finish()
    assert u is not None
    assert (u.prompt_tokens, u.completion_tokens, u.cached_tokens) == (4312, 42, 4000)
    assert u.total_tokens == 4354


def test_an_event_of_endless_data_lines_is_not_kept_without_bound() -> None:
    """A metered upstream streaming `data:` lines with no blank line between them: the meter
    holds at most one line's bound of them (the event is dropped, not metered), and the next
    whole event is read as usual (review H round 2, session 12)."""
    meter = UsageMeter("text/event-stream", max_line=4096)
    for _ in range(10_000):
        meter.feed(b"data: " + b"x" * 100 + b"\n")
    held = sum(len(v) for v in meter._event)  # noqa: SLF001 - the bound is the point
    assert held <= 4096
    meter.feed(b"\ndata: " + json.dumps({"usage": {"prompt_tokens": 3, "completion_tokens": 4,
                                                    "total_tokens": 7}}).encode() + b"\n\n")
    got = meter.finish()
    assert got is not None and got.total_tokens == 7
