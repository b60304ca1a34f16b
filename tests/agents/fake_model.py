"""A tiny OpenAI-compatible model server for tests: /v1/models and a streamed
/v1/chat/completions with a final usage chunk (the shape vLLM and llama.cpp send when
stream_options.include_usage is set). Runs in a thread on 127.0.0.1 and records requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "demo-model-7b"
WORDS = ["The ", "fix ", "guards ", "the ", "empty ", "list; ", "median ", "is ", "tested."]
USAGE = {"prompt_tokens": 42, "completion_tokens": len(WORDS), "total_tokens": 42 + len(WORDS)}


class FakeModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet in test output
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                owner.requests.append({"method": "GET", "path": self.path})
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": MODEL, "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append({"method": "POST", "path": self.path, "body": body})
                if not self.path.endswith("/v1/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                # Chunked SSE, one chunk per word, then the usage chunk and [DONE].
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = [{"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                           "choices": [{"index": 0, "delta": {"content": w}}]} for w in WORDS]
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                                   "choices": [], "usage": USAGE})
                for data in [json.dumps(e) for e in events] + ["[DONE]"]:
                    payload = f"data: {data}\n\n".encode()
                    self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeModel:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # python -m tests.agents.fake_model: serve until ^C, for trying by hand
    import time

    with FakeModel() as fake:
        print(f"fake model server on http://127.0.0.1:{fake.port}/v1", flush=True)
        while True:
            time.sleep(3600)
