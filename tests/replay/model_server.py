"""A scripted OpenAI-compatible model server on 127.0.0.1 for the record and replay tests.

Not a model: a server that behaves like one where the benchmark can see it. A token is a
whitespace-separated word. /v1/chat/completions answers `max_tokens` tokens (16 if unset),
streamed as server-sent events (one chunk per token, then the usage chunk when
`stream_options.include_usage` is set, then [DONE]) or as one JSON body. Timing follows a
simple GPU-like shape: the first token after `prefill_s` per prompt token not found in the
prefix cache, then one token per `itl_s`, slowed by `slowdown` for every other request being
served at the same time (so throughput per user falls as concurrency grows). The prefix cache
keeps blocks of 16 words, so requests that share a prefix report `cached_tokens`.

Power: when given FakeGpu objects (tests/gpu/fake_nvml.py), their power follows the load:
`idle_w` plus `per_request_w` for each request being served (capped at `max_w`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "scripted-1b"
BLOCK = 16


class ScriptedModel:
    def __init__(self, *, prefill_s: float = 0.0002, itl_s: float = 0.002,
                 slowdown: float = 0.15, gpus: list[Any] | None = None, idle_w: float = 100.0,
                 per_request_w: float = 80.0, max_w: float = 700.0) -> None:
        self.prefill_s, self.itl_s, self.slowdown = prefill_s, itl_s, slowdown
        self.gpus = gpus or []
        self.idle_w, self.per_request_w, self.max_w = idle_w, per_request_w, max_w
        self.requests: list[dict[str, Any]] = []
        self.active = 0
        self.max_active = 0
        self._cache: set[str] = set()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": MODEL, "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, b'{"error": "bad json"}')
                    return
                if not self.path.endswith("/v1/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                owner._serve(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the model ------------------------------------------------------------------------------

    def _load(self, delta: int) -> None:
        with self._lock:
            self.active += delta
            self.max_active = max(self.max_active, self.active)
            watts = min(self.max_w, self.idle_w + self.per_request_w * self.active)
            for gpu in self.gpus:
                gpu.power_mw = int(watts * 1000)

    def _cached(self, words: list[str]) -> int:
        """Words of the prompt whose 16-word blocks (with everything before) were seen."""
        cached, chain = 0, b""
        with self._lock:
            hit = True
            for i in range(0, len(words) - len(words) % BLOCK, BLOCK):
                chain = hashlib.sha1(chain + " ".join(words[i:i + BLOCK]).encode()).digest()
                key = chain.hex()
                if hit and key in self._cache:
                    cached += BLOCK
                else:
                    hit = False
                    self._cache.add(key)
        return cached

    def _serve(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        words: list[str] = []
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                words += content.split()
        n_out = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        cached = self._cached(words)
        self.requests.append({"prompt_tokens": len(words), "max_tokens": n_out,
                              "cached": cached, "stream": bool(body.get("stream"))})
        usage = {"prompt_tokens": len(words), "completion_tokens": n_out,
                 "total_tokens": len(words) + n_out,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        self._load(+1)
        try:
            time.sleep(self.prefill_s * (len(words) - cached))
            if not body.get("stream"):
                for _ in range(n_out):
                    self._tick()
                handler._send(200, json.dumps({  # type: ignore[attr-defined]
                    "id": "c1", "object": "chat.completion", "model": MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant",
                                                         "content": "tok " * n_out}}],
                    "usage": usage}).encode())
                return
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()

            def event(obj: Any) -> None:
                data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
                data += b"\n\n"
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                handler.wfile.flush()

            for i in range(n_out):
                if i:
                    self._tick()
                event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                       "choices": [{"index": 0, "delta": {"content": "tok "}}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                       "choices": [], "usage": usage})
            event(b"[DONE]")
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        finally:
            self._load(-1)

    def _tick(self) -> None:
        time.sleep(self.itl_s * (1 + self.slowdown * max(0, self.active - 1)))


def main() -> None:
    """Serve in the foreground (bench/replay.py runs it in its own process so the client's
    CPU time is the client's alone); prints the base URL, then serves until killed."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--itl", type=float, default=0.002)
    ap.add_argument("--prefill", type=float, default=0.0002)
    ap.add_argument("--slowdown", type=float, default=0.15)
    args = ap.parse_args()
    model = ScriptedModel(prefill_s=args.prefill, itl_s=args.itl, slowdown=args.slowdown)
    print(model.url, flush=True)
    try:
        threading.Event().wait()
    finally:
        model.close()


if __name__ == "__main__":
    main()
