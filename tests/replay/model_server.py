"""The scripted model server (tests/agents/model_server.py) answering as the record and replay
tests need: answers of the asked length, timed like a GPU, with a prefix cache.

Not a model: a token is a whitespace-separated word. A chat completion answers `max_tokens`
tokens (16 if unset), streamed one chunk per token or as one JSON body, with the usage
(prompt words, tokens answered, cached words). Timing follows a simple GPU-like shape: the
first token after `prefill_s` per prompt token not found in the prefix cache, then one token
per `itl_s`, slowed by `slowdown` for every other request being served at the same time (so
throughput per user falls as concurrency grows). The prefix cache keeps blocks of 16 words,
so requests that share a prefix report `cached_tokens`.

Power: when given FakeGpu objects (tests/gpu/fake_nvml.py), their power follows the load:
`idle_w` plus `per_request_w` for each request being served (capped at `max_w`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.agents.model_server import ChatAnswer, ModelServer, Script

MODEL = "scripted-1b"
BLOCK = 16


@dataclass
class Lengths(Script):
    prefill_s: float = 0.0002
    itl_s: float = 0.002
    slowdown: float = 0.15
    gpus: list[Any] = field(default_factory=list)
    idle_w: float = 100.0
    per_request_w: float = 80.0
    max_w: float = 700.0
    cache: set[str] = field(default_factory=set)
    uncached: dict[int, int] = field(default_factory=dict)  # thread -> prompt words to prefill

    def on_load(self, active: int) -> None:
        watts = min(self.max_w, self.idle_w + self.per_request_w * active)
        for gpu in self.gpus:
            gpu.power_mw = int(watts * 1000)

    def cached(self, words: list[str]) -> int:
        """Words of the prompt whose 16-word blocks (with everything before) were seen."""
        cached, chain, hit = 0, b"", True
        for i in range(0, len(words) - len(words) % BLOCK, BLOCK):
            chain = hashlib.sha1(chain + " ".join(words[i:i + BLOCK]).encode()).digest()
            key = chain.hex()
            if hit and key in self.cache:
                cached += BLOCK
            else:
                hit = False
                self.cache.add(key)
        return cached

    def chat(self, srv: ModelServer, body: dict) -> ChatAnswer:
        words: list[str] = []
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                words += content.split()
        n_out = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        with srv.lock:
            cached = self.cached(words)
        self.uncached[threading.get_ident()] = len(words) - cached
        usage = {"prompt_tokens": len(words), "completion_tokens": n_out,
                 "total_tokens": len(words) + n_out,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        return ChatAnswer({"role": "assistant", "content": "tok " * n_out}, "length", usage,
                          ["tok "] * n_out)

    def pace(self, srv: ModelServer, piece: int) -> None:
        if piece == 0:
            time.sleep(self.prefill_s * self.uncached.pop(threading.get_ident(), 0))
        else:
            time.sleep(self.itl_s * (1 + self.slowdown * max(0, srv.active - 1)))


class ScriptedModel(ModelServer):
    """The server with the Lengths script, started; `v1` is its OpenAI base URL."""

    def __init__(self, *, prefill_s: float = 0.0002, itl_s: float = 0.002,
                 slowdown: float = 0.15, gpus: list[Any] | None = None, idle_w: float = 100.0,
                 per_request_w: float = 80.0, max_w: float = 700.0) -> None:
        self.lengths = Lengths(prefill_s=prefill_s, itl_s=itl_s, slowdown=slowdown,
                               gpus=gpus or [], idle_w=idle_w, per_request_w=per_request_w,
                               max_w=max_w)
        super().__init__(self.lengths, model=MODEL)
        self.start()

    @property
    def itl_s(self) -> float:
        return self.lengths.itl_s

    @itl_s.setter
    def itl_s(self, value: float) -> None:
        self.lengths.itl_s = value


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
    print(model.v1, flush=True)
    try:
        threading.Event().wait()
    finally:
        model.close()


if __name__ == "__main__":
    main()
