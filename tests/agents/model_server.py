"""The scripted model server of the tests, on 127.0.0.1 (one server; what it answers is a script).

It speaks the three wire shapes the built-in agents use, each streamed (SSE) and not:
- Anthropic messages (POST /v1/messages; Claude Code), usage with cache creation and reads;
- OpenAI chat completions (POST /v1/chat/completions; aider through litellm), usage in the
  body, and in a last chunk when the request sets stream_options.include_usage;
- OpenAI Responses (POST /v1/responses; Codex), usage in response.completed.

The script is the same for every shape: while the conversation offers a shell tool and holds no
tool result yet, the answer is one call of that tool running `command`; after that (or with no
tool offered) it is `final_text`. Every request is recorded, and so is the usage of every
answer (`sent`), so that a test can compare what the gate metered with what was sent.
Each answer's usage is distinct (a counter is added), so a double count or a lost answer shows.

Other scripts change one API's answer: `Words` (the demo's fixed streamed
answer and usage) and, in tests/replay/model_server.py, `Lengths` (answers of the asked length
with a GPU-like timing and a prefix cache, for the record and replay tests). A script's `chat`
returns the answer; its `pace(srv, i)` waits before piece i (0: before the first); its
`responses` returns a Responses API answer (tests/agents/test_codex_attacks_s19.py plays a
list of tool calls with it).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted-model-1"
COMMAND = "echo hi > proof.txt"
FINAL_TEXT = "Done: proof.txt holds the word hi."

# The demo agent's review (tests/agents/test_demo_e2e.py): its words and usage, as
# vLLM and llama.cpp send them when stream_options.include_usage is set.
DEMO_MODEL = "demo-model-7b"
DEMO_WORDS = ["The ", "fix ", "guards ", "the ", "empty ", "list; ", "median ", "is ", "tested."]
DEMO_USAGE = {"prompt_tokens": 42, "completion_tokens": len(DEMO_WORDS),
              "total_tokens": 42 + len(DEMO_WORDS)}

# Shell tools the agents offer, and the arguments each takes for one command line.
SHELL_TOOLS = {
    "Bash": lambda cmd: {"command": cmd, "description": "Write the proof file"},  # Claude Code
    "exec_command": lambda cmd: {"cmd": cmd},  # Codex (unified exec)
    "shell_command": lambda cmd: {"command": cmd},  # Codex
    "shell": lambda cmd: {"command": ["bash", "-lc", cmd]},  # Codex (older)
}


@dataclass
class Sent:
    """The usage one answer carried, in the API's own field names."""

    api: str  # anthropic | chat | responses
    stream: bool
    usage: dict[str, Any]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class ChatAnswer:
    message: dict  # the assistant message (content or tool_calls)
    finish: str
    usage: dict
    pieces: list[str]  # the content as streamed, one chunk each


@dataclass
class Script:
    command: str = COMMAND
    final_text: str = FINAL_TEXT
    stream_usage: bool = True  # False: no usage chunk, whatever the request asks (llama-cpp-python)

    def chat(self, srv: ModelServer, body: dict) -> ChatAnswer:
        message, finish, usage = chat_answer(srv, body)
        pieces = [w + " " for w in (message.get("content") or "").split(" ")] \
            if message.get("content") else []
        return ChatAnswer(message, finish, usage, pieces)

    def responses(self, srv: ModelServer, body: dict) -> tuple[list[dict], dict]:
        """(output items, usage) for a Responses API request (Codex)."""
        return responses_answer(srv, body)

    def messages(self, srv: ModelServer, body: dict) -> tuple[list[dict], str, dict]:
        """(content blocks, stop_reason, usage) for an Anthropic Messages request (Claude Code)."""
        return anthropic_answer(srv, body)

    def pace(self, srv: ModelServer, piece: int) -> None:
        """No waiting: answers come as fast as the server writes them."""

    def on_load(self, active: int) -> None:
        """Told the number of answers being served whenever it changes."""


@dataclass
class Words(Script):
    """One fixed streamed answer with one fixed usage, whatever is asked (the demo's)."""

    words: list[str] = field(default_factory=list)
    usage: dict = field(default_factory=dict)

    def chat(self, srv: ModelServer, body: dict) -> ChatAnswer:
        return ChatAnswer({"role": "assistant", "content": "".join(self.words)}, "stop",
                          dict(self.usage), list(self.words))


class ModelServer:
    def __init__(self, script: Script | None = None, *, model: str = MODEL) -> None:
        self.script = script or Script()
        self.model = model
        self.requests: list[Recorded] = []
        self.sent: list[Sent] = []
        self.active = self.max_active = 0  # answers being served, now and at most
        self._count = itertools.count(1)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"{self.url}/v1"

    def start(self) -> ModelServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, delta: int) -> None:
        with self.lock:
            self.active += delta
            self.max_active = max(self.max_active, self.active)
            self.script.on_load(self.active)

    def next_n(self) -> int:
        with self.lock:
            return next(self._count)

    def record_usage(self, api: str, stream: bool, usage: dict[str, Any]) -> None:
        with self.lock:
            self.sent.append(Sent(api, stream, usage))

    def posts(self, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.split("?")[0].endswith(suffix)]

    # -- usage per answer: distinct numbers, so the sums in a test mean something ------------
    def anthropic_usage(self) -> dict[str, int]:
        n = self.next_n()
        return {"input_tokens": 100 + n, "output_tokens": 20 + n,
                "cache_creation_input_tokens": 700 + n, "cache_read_input_tokens": 5000 + n}

    def chat_usage(self) -> dict[str, int]:
        n = self.next_n()
        return {"prompt_tokens": 300 + n, "completion_tokens": 30 + n, "total_tokens": 330 + 2 * n}

    def responses_usage(self) -> dict[str, Any]:
        n = self.next_n()
        return {"input_tokens": 400 + n, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 40 + n, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 440 + 2 * n}


def _shell_tool(names: list[str]) -> str | None:
    return next((n for n in SHELL_TOOLS if n in names), None)


# ----- Anthropic messages ----------------------------------------------------------------------


def anthropic_has_result(messages: list[Any]) -> bool:
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    return False


def anthropic_answer(srv: ModelServer, body: dict) -> tuple[list[dict], str, dict]:
    """(content blocks, stop_reason, usage)."""
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    tool = _shell_tool(names)
    usage = srv.anthropic_usage()
    if tool and not anthropic_has_result(body.get("messages") or []):
        block = {"type": "tool_use", "id": f"toolu_{srv.next_n():06d}", "name": tool,
                 "input": SHELL_TOOLS[tool](srv.script.command)}
        return [block], "tool_use", usage
    return [{"type": "text", "text": srv.script.final_text}], "end_turn", usage


def anthropic_events(content: list[dict], stop: str, usage: dict, model: str = MODEL
                     ) -> list[tuple[str, dict]]:
    start_usage = {**usage, "output_tokens": 1}
    events: list[tuple[str, dict]] = [("message_start", {"type": "message_start", "message": {
        "id": "msg_scripted", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
    for i, block in enumerate(content):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {**block, "input": {}}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


# ----- OpenAI chat completions -------------------------------------------------------------------


def chat_answer(srv: ModelServer, body: dict) -> tuple[dict, str, dict]:
    """(assistant message, finish_reason, usage)."""
    names = [(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    tool = _shell_tool(names)
    has_result = any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or [])
    usage = srv.chat_usage()
    if tool and not has_result:
        call = {"id": f"call_{srv.next_n():06d}", "type": "function", "function": {
            "name": tool, "arguments": json.dumps(SHELL_TOOLS[tool](srv.script.command))}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", usage
    return {"role": "assistant", "content": srv.script.final_text}, "stop", usage


def chat_chunks(answer: ChatAnswer, with_usage: bool, model: str = MODEL) -> list[dict]:
    """The stream after the role chunk: tool calls or one chunk per piece, the finish, and
    the usage when asked for."""
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}
    if answer.message.get("tool_calls"):
        calls = [{"index": i, **c} for i, c in enumerate(answer.message["tool_calls"])]
        chunks = [{**base, "choices": [{"index": 0, "delta": {"tool_calls": calls}}]}]
    else:
        chunks = [{**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
                  for piece in answer.pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": answer.finish}]})
    if with_usage:
        chunks.append({**base, "choices": [], "usage": answer.usage})
    return chunks


# ----- OpenAI Responses -------------------------------------------------------------------------


def _responses_tools(body: dict) -> list[dict]:
    """Tools offered in `tools` and, as Codex sends them, in `additional_tools` input items
    (grouped in namespaces)."""
    def flat(tools: list) -> list[dict]:
        out: list[dict] = []
        for t in tools:
            if isinstance(t, dict):
                out += flat(t.get("tools") or []) if t.get("type") == "namespace" else [t]
        return out
    found = flat(body.get("tools") or [])
    for item in body.get("input") if isinstance(body.get("input"), list) else []:
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            found += flat(item.get("tools") or [])
    return found


def responses_answer(srv: ModelServer, body: dict) -> tuple[list[dict], dict]:
    """(output items, usage). A shell tool is called directly; offered only Codex's code mode
    (a custom tool "exec" that runs JavaScript), the command goes through its exec_command."""
    tools = _responses_tools(body)
    tool = _shell_tool([t.get("name") for t in tools])
    code_mode = any(t.get("type") == "custom" and t.get("name") == "exec" for t in tools)
    items = body.get("input") if isinstance(body.get("input"), list) else []
    has_result = any(isinstance(i, dict) and str(i.get("type", "")).endswith("call_output") for i in items)
    usage = srv.responses_usage()
    if (tool or code_mode) and not has_result:
        n = srv.next_n()
        if tool:
            return [{"type": "function_call", "id": f"fc_{n:06d}", "call_id": f"call_{n:06d}",
                     "name": tool, "arguments": json.dumps(SHELL_TOOLS[tool](srv.script.command)),
                     "status": "completed"}], usage
        js = f"const r = await tools.exec_command({json.dumps({'cmd': srv.script.command})}); text(JSON.stringify(r));"
        return [{"type": "custom_tool_call", "id": f"ctc_{n:06d}", "call_id": f"call_{n:06d}",
                 "name": "exec", "input": js, "status": "completed"}], usage
    return [{"type": "message", "id": "msg_scripted", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": srv.script.final_text, "annotations": []}]}], usage


def responses_object(output: list[dict], usage: dict | None, status: str, model: str = MODEL
                     ) -> dict:
    return {"id": "resp_scripted", "object": "response", "created_at": int(time.time()),
            "status": status, "model": model, "output": output, "usage": usage}


def responses_events(output: list[dict], usage: dict, model: str = MODEL) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = [("response.created", {
        "type": "response.created", "response": responses_object([], None, "in_progress", model)})]
    for i, item in enumerate(output):
        events.append(("response.output_item.added", {"type": "response.output_item.added",
                                                      "output_index": i, "item": item}))
        if item["type"] == "message":
            events.append(("response.output_text.delta", {
                "type": "response.output_text.delta", "item_id": item["id"], "output_index": i,
                "content_index": 0, "delta": item["content"][0]["text"]}))
        events.append(("response.output_item.done", {"type": "response.output_item.done",
                                                     "output_index": i, "item": item}))
    events.append(("response.completed", {"type": "response.completed",
                                          "response": responses_object(output, usage, "completed", model)}))
    return events


# ----- HTTP ---------------------------------------------------------------------------------------


def _handler(srv: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As inference servers do (uvicorn through asyncio, vLLM, SGLang): each streamed piece
        # goes out at once. With Nagle on, a piece waits for the client's delayed ACK of the
        # one before (up to 40 ms), and what a benchmark measures is how its client ACKs.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # quiet in test output
            pass

        def _record(self, body: Any = None) -> None:
            srv.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))

        def _json(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: Iterable[tuple[str | None, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for name, data in events:
                text = data if isinstance(data, str) else json.dumps(data)
                payload = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
                raw = payload.encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def do_HEAD(self) -> None:
            self._record()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._record()
            path = self.path.split("?")[0].rstrip("/")
            if path.endswith("/responses"):  # Codex asks for the Responses API over a WebSocket
                # first. 426 says "not here": Codex goes to POST at once; to a 404 it retried the
                # WebSocket six times with backoff (~6 s a run, Codex 0.171) before falling back.
                self._json(426, {"error": {"type": "upgrade_required", "message":
                                           "the Responses API is served over POST here, no WebSocket"}})
            elif path.endswith("/models"):
                self._json(200, {"object": "list", "data": [
                    {"id": srv.model, "object": "model", "type": "model", "display_name": srv.model}]})
            else:
                self._json(404, {"error": {"type": "not_found", "message": f"no {path} here"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = None
            self._record(body)
            path = self.path.split("?")[0].rstrip("/")
            if not isinstance(body, dict):
                self._json(400, {"error": {"type": "invalid_request_error", "message": "JSON body"}})
            elif path.endswith("/messages/count_tokens"):
                self._json(200, {"input_tokens": 42})
            elif path.endswith("/messages"):
                self._anthropic(body)
            elif path.endswith("/chat/completions"):
                self._chat(body)
            elif path.endswith("/responses"):
                self._responses(body)
            else:
                self._json(404, {"error": {"type": "not_found", "message": f"no {path} here"}})

        def _anthropic(self, body: dict) -> None:
            content, stop, usage = srv.script.messages(srv, body)
            stream = bool(body.get("stream"))
            srv.record_usage("anthropic", stream, usage)
            if stream:
                self._sse(anthropic_events(content, stop, usage, srv.model))
            else:
                self._json(200, {"id": "msg_scripted", "type": "message", "role": "assistant",
                                 "model": srv.model, "content": content, "stop_reason": stop,
                                 "stop_sequence": None, "usage": usage})

        def _chat(self, body: dict) -> None:
            answer = srv.script.chat(srv, body)
            stream = bool(body.get("stream"))
            with_usage = bool((body.get("stream_options") or {}).get("include_usage")) \
                and srv.script.stream_usage
            srv.record_usage("chat", stream, answer.usage if with_usage or not stream else {})
            srv.load(+1)
            try:
                srv.script.pace(srv, 0)  # until the first piece (prefill)
                if stream:
                    self._sse(self._paced(answer, with_usage))
                    return
                for i in range(1, len(answer.pieces)):
                    srv.script.pace(srv, i)
                self._json(200, {"id": "chatcmpl-scripted", "object": "chat.completion",
                                 "created": int(time.time()), "model": srv.model, "choices": [
                                     {"index": 0, "message": answer.message,
                                      "finish_reason": answer.finish}],
                                 "usage": answer.usage})
            finally:
                srv.load(-1)

        def _paced(self, answer: ChatAnswer, with_usage: bool
                   ) -> Iterator[tuple[str | None, Any]]:
            role = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": srv.model,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            yield None, role
            for i, chunk in enumerate(chat_chunks(answer, with_usage, srv.model)):
                if 0 < i < len(answer.pieces):
                    srv.script.pace(srv, i)
                yield None, chunk
            yield None, "[DONE]"

        def _responses(self, body: dict) -> None:
            output, usage = srv.script.responses(srv, body)
            stream = bool(body.get("stream"))
            srv.record_usage("responses", stream, usage)
            if stream:
                self._sse(responses_events(output, usage, srv.model))
            else:
                self._json(200, responses_object(output, usage, "completed", srv.model))

    return Handler


if __name__ == "__main__":  # python -m tests.agents.model_server: serve until ^C, for trying by hand
    with ModelServer() as served:
        print(f"scripted model server on {served.url}", flush=True)
        while True:
            time.sleep(3600)
