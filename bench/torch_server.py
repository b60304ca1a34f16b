"""An OpenAI-compatible chat server running a random-weight Llama with PyTorch, on a GPU.

    python3 bench/torch_server.py [--port 0] [--layers 16] [--hidden 2048] [--max-batch 32]
                                  [--device cuda]

For record and replay on a lent GPU machine, where no inference server can be installed:
nothing can be fetched there, vLLM's wheels are far over what a lease carries, and building
llama.cpp for CUDA takes most of a lease. torch and transformers are there. The model is built
from a LlamaConfig with random weights (nothing downloaded); its work per token is a real
model's of that size, its words are not.

Prints its base URL (http://127.0.0.1:PORT/v1) on the first line, then serves until killed.
A token is a whitespace-separated word, as the replay's prompts and bench/word_tokenizer.py
count them: each word is one id, and each answer is exactly max_tokens greedy ids spelled as
words of console/replay/workload.WORDS (a random model has no useful end of sequence, so every
request runs as if ignore_eos were set). Requests that arrive while a batch is generating
wait for the next one (static batching): throughput per GPU rises with concurrency and per
user falls, as on a real server, without vLLM's scheduler. No prefix cache: cached_tokens 0.

Endpoints: POST /v1/chat/completions (streamed, with stream_options.include_usage, or not),
GET /v1/models, GET /metrics with vLLM's counter names (prompt and generation tokens, finished
requests), so a replay's token totals can be checked against the server's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import socket
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.replay.workload import WORDS  # noqa: E402

MODEL = "random-llama"
VOCAB = 32000
FIRST_WORD_ID = 100  # ids below are left alone (special tokens in a real vocabulary)
MAX_TOKENS = 4096


def word_id(word: str) -> int:
    if word in _WORD_IDS:
        return _WORD_IDS[word]
    return FIRST_WORD_ID + len(WORDS) + zlib.crc32(word.encode()) % (VOCAB - FIRST_WORD_ID
                                                                       - len(WORDS))


_WORD_IDS = {w: FIRST_WORD_ID + i for i, w in enumerate(WORDS)}


def random_llama(layers: int, hidden: int, device: str, max_positions: int = 16384) -> Any:
    """A Llama of this size with random weights (seed 0) on `device`, bf16 on a GPU: nothing
    is downloaded. Also bench/gpu_validate.py's model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = max(1, hidden // 128)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, max_position_embeddings=max_positions)
    torch.manual_seed(0)
    if device.startswith("cuda"):
        # torch 2.11 sends attention with a padding mask (a batch of unequal prompts) to cuDNN
        # first on Hopper, and cuDNN builds a plan for every new shape: every decode step took
        # ~70 ms on an H200 (the first lease's run). The other kernels need no plan.
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.set_default_dtype(torch.bfloat16 if device.startswith("cuda") else torch.float32)
    try:
        with torch.device(device):
            return LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)


class Job:
    """One request's place in the engine: its ids, how many tokens to answer, and where the
    engine puts each one (an asyncio queue on the server's loop)."""

    def __init__(self, ids: list[int], max_tokens: int, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self.ids, self.max_tokens, self.loop = ids, max_tokens, loop
        self.out: asyncio.Queue[int | None | BaseException] = asyncio.Queue()

    def put(self, item: int | None | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)


class Engine(threading.Thread):
    """Greedy generation in batches: takes every request waiting (up to max_batch), prefills
    them left-padded, then decodes one token for all per step until the longest is done."""

    def __init__(self, layers: int, hidden: int, device: str, max_batch: int) -> None:
        super().__init__(daemon=True, name="engine")
        import torch

        self.torch, self.device, self.max_batch = torch, device, max_batch
        self.pending: queue.Queue[Job] = queue.Queue()
        self.model = random_llama(layers, hidden, device)
        self.max_positions = self.model.config.max_position_embeddings
        self.counters = {"prompt": 0, "generation": 0, "requests": 0, "batches": 0,
                         "steps": 0, "step_s": 0.0}
        self.lock = threading.Lock()
        self._generate([Job([FIRST_WORD_ID] * 32, 4, _NullLoop())])  # kernels, allocator

    def run(self) -> None:
        while True:
            batch = [self.pending.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._generate(batch)
            except Exception as exc:  # the requests get the error, the engine goes on
                for job in batch:
                    job.put(exc)

    def _generate(self, batch: list[Job]) -> None:
        torch = self.torch
        width = max(len(j.ids) for j in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, job in enumerate(batch):
            ids[i, width - len(job.ids):] = torch.tensor(job.ids)
            mask[i, width - len(job.ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        steps = max(j.max_tokens for j in batch)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1)
            t0 = time.perf_counter()
            for step in range(steps):
                nxt = out.logits[:, -1].argmax(-1)
                tokens = nxt.tolist()  # waits for the GPU: the token exists now
                for i, job in enumerate(batch):
                    if step < job.max_tokens:
                        job.put(tokens[i])
                        if step + 1 == job.max_tokens:
                            job.put(None)
                if step + 1 == steps:
                    break
                mask = torch.cat([mask, mask.new_ones((len(batch), 1))], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=nxt[:, None], attention_mask=mask,
                                 position_ids=positions, past_key_values=out.past_key_values,
                                 use_cache=True)
        with self.lock:  # steps and their time: a decode step's mean, for the log
            self.counters["steps"] += steps
            self.counters["step_s"] += time.perf_counter() - t0
            self.counters["prompt"] += sum(len(j.ids) for j in batch)
            self.counters["generation"] += sum(j.max_tokens for j in batch)
            self.counters["requests"] += len(batch)
            self.counters["batches"] += 1


class _NullLoop:
    """The warm-up job's loop: its tokens go nowhere."""

    def call_soon_threadsafe(self, *args: Any) -> None:
        return None


def prompt_ids(body: dict[str, Any]) -> list[int]:
    words: list[str] = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts: their text
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str):
            words += content.split()
    return [word_id(w) for w in words] or [FIRST_WORD_ID]


class Server:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # each streamed piece goes out at once, as real servers send
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self.one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError):  # ValueError: a Content-Length that is not a count
            pass
        finally:
            writer.close()

    async def one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = (lines[0].split(" ") + ["", "", ""])[:3]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        if method == "GET" and path == "/metrics":
            await self.send(writer, 200, "text/plain; version=0.0.4", self.metrics(), keep)
        elif method == "GET" and path == "/v1/models":
            await self.send(writer, 200, "application/json", json.dumps(
                {"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode(), keep)
        elif method == "POST" and path == "/v1/chat/completions":
            await self.chat(writer, body, keep)
        else:
            await self.send(writer, 404, "application/json",
                            b'{"error": {"message": "not found"}}', keep)
        return keep

    async def send(self, writer: asyncio.StreamWriter, status: int, ctype: str, data: bytes,
                   keep: bool) -> None:
        writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                     f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                     f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode() + data)
        await writer.drain()

    def metrics(self) -> bytes:
        with self.engine.lock:
            c = dict(self.engine.counters)
        label = f'model_name="{MODEL}"'
        return (f"# TYPE vllm:prompt_tokens_total counter\n"
                f"vllm:prompt_tokens_total{{{label}}} {c['prompt']}\n"
                f"# TYPE vllm:generation_tokens_total counter\n"
                f"vllm:generation_tokens_total{{{label}}} {c['generation']}\n"
                f"# TYPE vllm:request_success_total counter\n"
                f"vllm:request_success_total{{finished_reason=\"length\",{label}}} "
                f"{c['requests']}\n"
                f"# the engine's own (not vLLM names)\nbatches_total {c['batches']}\n"
                f"decode_steps_total {c['steps']}\ndecode_seconds_total {c['step_s']:.6f}\n"
                ).encode()

    async def chat(self, writer: asyncio.StreamWriter, raw: bytes, keep: bool) -> None:
        try:
            body = json.loads(raw)
            ids = prompt_ids(body)
            n_out = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        except (ValueError, TypeError, AttributeError) as exc:
            await self.send(writer, 400, "application/json", json.dumps(
                {"error": {"message": f"bad request: {exc}"}}).encode(), keep)
            return
        if not 1 <= n_out <= MAX_TOKENS or len(ids) + n_out > self.engine.max_positions:
            await self.send(writer, 400, "application/json", json.dumps({"error": {
                "message": f"{len(ids)} prompt tokens + max_tokens {n_out} do not fit "
                           f"({self.engine.max_positions} positions, max_tokens "
                           f"1..{MAX_TOKENS})"}}).encode(), keep)
            return
        job = Job(ids, n_out, asyncio.get_running_loop())
        self.engine.pending.put(job)
        usage = {"prompt_tokens": len(ids), "completion_tokens": n_out,
                 "total_tokens": len(ids) + n_out,
                 "prompt_tokens_details": {"cached_tokens": 0}}
        ident = f"chatcmpl-{id(job):x}"
        base = {"id": ident, "created": int(time.time()), "model": MODEL}
        if not body.get("stream"):
            words = []
            while (item := await job.out.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                words.append(WORDS[item % len(WORDS)])
            await self.send(writer, 200, "application/json", json.dumps({
                **base, "object": "chat.completion", "usage": usage, "choices": [{
                    "index": 0, "finish_reason": "length",
                    "message": {"role": "assistant", "content": " ".join(words)}}]}).encode(),
                keep)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                     + (b"Connection: keep-alive\r\n\r\n" if keep else
                        b"Connection: close\r\n\r\n"))

        def event(obj: Any) -> bytes:
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) \
                + b"\n\n"
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        chunk = {**base, "object": "chat.completion.chunk"}
        first = True
        while (item := await job.out.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if first:  # the role comes with the first token, as vLLM sends it
                writer.write(event({**chunk, "choices": [{"index": 0, "delta": {
                    "role": "assistant", "content": ""}, "finish_reason": None}]}))
                first = False
            writer.write(event({**chunk, "choices": [{"index": 0, "delta": {
                "content": WORDS[item % len(WORDS)] + " "}, "finish_reason": None}]}))
            await writer.drain()
        writer.write(event({**chunk, "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "length"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            writer.write(event({**chunk, "choices": [], "usage": usage}))
        writer.write(event(b"[DONE]") + b"0\r\n\r\n")
        await writer.drain()


async def serve(args: argparse.Namespace) -> None:
    engine = Engine(args.layers, args.hidden, args.device, args.max_batch)
    engine.start()
    server = await asyncio.start_server(Server(engine).handle, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
