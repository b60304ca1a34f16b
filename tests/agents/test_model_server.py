"""The scripted model server itself: each wire shape, streamed and not, over real HTTP on
127.0.0.1; the script (tool call, then the final answer); and the gate's meter reading from
each answer exactly the usage the server says it sent."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from console.gate.usage import UsageMeter

from .model_server import COMMAND, FINAL_TEXT, MODEL, ModelServer


def post(srv: ModelServer, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        return resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def sse_data(raw: bytes) -> list[Any]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            text = line[6:]
            out.append(text if text == "[DONE]" else json.loads(text))
    return out


def metered(ctype: str, raw: bytes):
    meter = UsageMeter(ctype)
    meter.feed(raw)
    return meter.finish()


ANTHROPIC_TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "shell_command", "parameters": {}}}]
RESPONSES_TOOLS = [{"type": "function", "name": "exec_command", "parameters": {}}]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_tool_call_then_answer(stream: bool) -> None:
    with ModelServer() as srv:
        first = {"model": "m", "stream": stream, "tools": ANTHROPIC_TOOLS,
                 "messages": [{"role": "user", "content": "go"}]}
        ctype, raw = post(srv, "/v1/messages", first)
        if stream:
            events = sse_data(raw)
            assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
            start = next(e for e in events if e["type"] == "content_block_start")
            delta = next(e for e in events if e["type"] == "content_block_delta")
            assert start["content_block"]["name"] == "Bash"
            assert json.loads(delta["delta"]["partial_json"])["command"] == COMMAND
        else:
            block = json.loads(raw)["content"][0]
            assert (block["type"], block["name"], block["input"]["command"]) == ("tool_use", "Bash", COMMAND)
        second = {**first, "messages": first["messages"] + [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]}
        ctype2, raw2 = post(srv, "/v1/messages", second)
        assert FINAL_TEXT in raw2.decode()
        assert [s.api for s in srv.sent] == ["anthropic", "anthropic"]
        for (ct, body), sent in zip([(ctype, raw), (ctype2, raw2)], srv.sent, strict=True):
            usage = metered(ct, body)
            assert usage is not None and usage.model == MODEL
            assert usage.completion_tokens == sent.usage["output_tokens"]
            assert sent.usage["cache_read_input_tokens"] > 0 and sent.usage["cache_creation_input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_chat_completions_tool_call_then_answer(stream: bool) -> None:
    with ModelServer() as srv:
        first = {"model": "m", "stream": stream, "tools": CHAT_TOOLS,
                 "messages": [{"role": "user", "content": "go"}]}
        if stream:
            first["stream_options"] = {"include_usage": True}
        ctype, raw = post(srv, "/v1/chat/completions", first)
        if stream:
            chunks = sse_data(raw)
            assert chunks[-1] == "[DONE]"
            call = next(c for c in chunks[:-1] if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
            args = call["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        else:
            args = json.loads(raw)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        assert json.loads(args) == {"command": COMMAND}
        second = {**first, "messages": first["messages"] + [{"role": "tool", "tool_call_id": "c", "content": "ok"}]}
        ctype2, raw2 = post(srv, "/v1/chat/completions", second)
        assert FINAL_TEXT.split(" ")[0] in raw2.decode()
        for (ct, body), sent in zip([(ctype, raw), (ctype2, raw2)], srv.sent, strict=True):
            usage = metered(ct, body)
            assert usage is not None
            assert (usage.prompt_tokens, usage.completion_tokens) == (
                sent.usage["prompt_tokens"], sent.usage["completion_tokens"])


def test_chat_stream_without_include_usage_sends_no_usage() -> None:
    with ModelServer() as srv:
        ctype, raw = post(srv, "/v1/chat/completions", {"model": "m", "stream": True,
                                                        "messages": [{"role": "user", "content": "go"}]})
        assert all("usage" not in c for c in sse_data(raw) if isinstance(c, dict))
        assert srv.sent[0].usage == {}
        assert metered(ctype, raw) is None


@pytest.mark.parametrize("stream", [False, True])
def test_responses_tool_call_then_answer(stream: bool) -> None:
    with ModelServer() as srv:
        first = {"model": "m", "stream": stream, "tools": RESPONSES_TOOLS,
                 "input": [{"type": "message", "role": "user", "content": "go"}]}
        ctype, raw = post(srv, "/v1/responses", first)
        if stream:
            events = sse_data(raw)
            assert events[-1]["type"] == "response.completed"
            item = next(e["item"] for e in events if e["type"] == "response.output_item.done")
        else:
            item = json.loads(raw)["output"][0]
        assert (item["type"], item["name"]) == ("function_call", "exec_command")
        assert json.loads(item["arguments"]) == {"cmd": COMMAND}
        second = {**first, "input": first["input"] + [
            item, {"type": "function_call_output", "call_id": item["call_id"], "output": "ok"}]}
        ctype2, raw2 = post(srv, "/v1/responses", second)
        assert FINAL_TEXT in raw2.decode()
        for (ct, body), sent in zip([(ctype, raw), (ctype2, raw2)], srv.sent, strict=True):
            usage = metered(ct, body)
            assert usage is not None
            assert (usage.prompt_tokens, usage.completion_tokens) == (
                sent.usage["input_tokens"], sent.usage["output_tokens"])


def test_no_tool_offered_means_the_final_answer_and_every_request_is_recorded() -> None:
    with ModelServer() as srv:
        _, raw = post(srv, "/v1/messages", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert json.loads(raw)["content"] == [{"type": "text", "text": FINAL_TEXT}]
        assert [(r.method, r.path) for r in srv.requests] == [("POST", "/v1/messages")]
        assert srv.requests[0].headers["Host"] == f"127.0.0.1:{srv.port}"


def test_responses_code_mode_gets_javascript_calling_exec_command() -> None:
    """Codex sends its tools as additional_tools input items; offered only code mode's custom
    exec tool, the answer is JavaScript that runs the command through tools.exec_command."""
    tools = [{"type": "namespace", "name": "functions", "tools": [
        {"type": "custom", "name": "exec"}, {"type": "function", "name": "wait"}]}]
    with ModelServer() as srv:
        body = {"model": "m", "input": [{"type": "additional_tools", "role": "developer", "tools": tools},
                                        {"type": "message", "role": "user", "content": "go"}]}
        _, raw = post(srv, "/v1/responses", body)
        item = json.loads(raw)["output"][0]
        assert (item["type"], item["name"]) == ("custom_tool_call", "exec")
        assert "tools.exec_command" in item["input"] and json.dumps(COMMAND) in item["input"]


def test_a_websocket_ask_for_the_responses_api_is_told_426_not_404() -> None:
    # Codex asks GET /v1/responses with Upgrade: websocket first. To a 404 it retried six times
    # with backoff (~6 s a run) before posting; a 426 sends it to POST at once
    # (test_real_codex.py checks that it asked once).
    with ModelServer() as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            conn.request("GET", "/v1/responses", headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            resp = conn.getresponse()
            assert resp.status == 426, resp.status
            assert "POST" in json.loads(resp.read())["error"]["message"]
        finally:
            conn.close()
        assert [(r.method, r.path) for r in srv.requests] == [("GET", "/v1/responses")]
