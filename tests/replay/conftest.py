"""Real parts for the record and replay tests: the scripted model server on 127.0.0.1, a
StoreWriter on a temporary PILOTHOUSE_HOME's database, and a Gate with a TraceRecorder."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from console import paths as paths_mod
from console.daemon.bus import Bus
from console.gate import Gate, NetworkRules
from console.gate.trace import TraceRecorder
from store.writer import StoreWriter
from tests.replay.model_server import ScriptedModel


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PILOTHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PILOTHOUSE_CONFIG", raising=False)
    return tmp_path / "home"


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    m = ScriptedModel(itl_s=0.001)
    yield m
    m.close()


@pytest.fixture
def writer(cli_home: Path) -> Iterator[StoreWriter]:
    """The history database where the CLI will look for it (PILOTHOUSE_HOME)."""
    w = StoreWriter(paths_mod.resolve().db_file, os.urandom(32)).start()
    yield w
    w.close()


class Through:
    """The gate of run `run_id` metering `model` (anything with a port), with a trace recorder,
    and what it published."""

    def __init__(self, tmp: Path, model: Any, writer: StoreWriter, run_id: str = "run-1") -> None:
        self.bus = Bus()
        self.events = self.bus.subscribe(("inference", "tokens"))
        self.recorder = TraceRecorder(writer, self.bus, key=b"k" * 32,
                                      profile_of=lambda run: "demo")
        self.records: list[tuple[str, dict[str, Any]]] = []

        async def record(kind: str, payload: dict[str, Any]) -> None:
            self.records.append((kind, payload))
            self.bus.publish({"kind": kind, "ts": time.time(), **payload})

        rules = NetworkRules(allow=[(f"127.0.0.1:{model.port}", "test")], default="deny",
                             ports=[model.port])
        self.gate = Gate(run_id, rules, ask=None, record=record, profile="demo",
                         meter={("127.0.0.1", model.port)}, trace=self.recorder)
        self.path = str(tmp / f"gate-{run_id}.sock")
        self.url = f"http://127.0.0.1:{model.port}/v1/chat/completions"

    def published(self) -> list[dict[str, Any]]:
        out = []
        while not self.events.queue.empty():
            out.append(self.events.queue.get_nowait())
        return out


@pytest.fixture
async def through(tmp_path: Path, model: ScriptedModel, writer: StoreWriter
                  ) -> AsyncIterator[Through]:
    t = Through(tmp_path, model, writer)
    await t.gate.serve_unix(t.path)
    yield t
    await t.gate.close()


async def chat(t: Through, messages: list[dict[str, str]], *, max_tokens: int = 8,
               stream: bool = True) -> bytes:
    """One POST through the gate (absolute-form, as HTTP_PROXY clients send), whole answer."""
    body = json.dumps({"model": "scripted-1b", "messages": messages, "max_tokens": max_tokens,
                       "stream": stream, "stream_options": {"include_usage": True}}).encode()
    reader, writer = await asyncio.open_unix_connection(t.path)
    try:
        writer.write(f"POST {t.url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def rows(writer: StoreWriter) -> list[dict[str, Any]]:
    writer.flush()
    conn = sqlite3.connect(writer.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM trace_requests ORDER BY start")]
    finally:
        conn.close()


async def settle(writer: StoreWriter, n: int) -> list[dict[str, Any]]:
    for _ in range(100):  # the row is built in a worker thread after the answer ends
        got = await asyncio.to_thread(rows, writer)
        if len(got) >= n:
            return got
        await asyncio.sleep(0.02)
    return await asyncio.to_thread(rows, writer)


