"""Review h144: a model server's answer that is JSON but not an object (`[]`, `"usage"` inside
an array), or JSON nested past Python's recursion limit, raised AttributeError or
RecursionError out of Connection.chat: no request error was recorded, the lane's task failed
and the whole sweep stopped with a traceback. Each is one failed request now, as any other
answer the client cannot read."""

from __future__ import annotations

import pytest

from tests.replay.test_replay_hostile_h136 import _chat, _json

DEEP = b"[" * 200_000 + b"]" * 200_000


def _sse(*events: bytes) -> bytes:
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body


@pytest.mark.parametrize("answer,stream", [
    (_json(b"[]"), False),
    (_json(b'"usage"'), False),
    (_json(b'{"usage": ' + DEEP + b"}"), False),
    (_sse(b'["usage"]'), True),
    (_sse(b'{"usage": ' + DEEP + b"}"), True),
    (_sse(b'{"usage": {"prompt_tokens": 1}, "choices": 5}', b"[DONE]"), True),
], ids=["array", "string", "deep", "sse-array", "sse-deep", "sse-choices-int"])
async def test_an_answer_that_is_not_an_object_is_one_failed_request(
        answer: bytes, stream: bool) -> None:
    result = await _chat(answer, stream=stream)  # raised out of chat() before
    assert result.end >= result.start
    if b"choices" not in answer:
        assert result.error, result


async def test_more_output_tokens_than_asked_for_read_as_unreported() -> None:
    """A count within MAX_TOKENS (h136's bound) but over max_tokens (4 here): 10**8 output
    tokens for one content event made 10**8 tok/s and a $/Mtok of almost nothing."""
    import json

    from console.replay.figures import step_figures

    body = json.dumps({"choices": [{"message": {"content": "hi"}}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 10**8}}).encode()
    result = await _chat(_json(body))
    assert result.error is None and result.completion_tokens is None, result
    figures = step_figures([result], seconds=1.0, gpus=1, energy_j=100.0, price_kwh=0.3)
    assert figures["tok_s_out"] <= 4, figures
    honest = json.dumps({"choices": [{"message": {"content": "hi"}}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 4}}).encode()
    assert (await _chat(_json(honest))).completion_tokens == 4
