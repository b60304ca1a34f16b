"""Replay a workload against a server at several concurrencies, one step each, with energy.

A step: N lanes (see workload.py) run at once against the server, each on its own keep-alive
connection, honouring think time as asked ("recorded", "none", or "cap=S": recorded but at
most S seconds). Without a duration each lane plays its requests once; with one, lanes loop
over their requests and stop starting new ones when the duration is up (answers in flight
are awaited). Energy is the NVML energy counter's difference over exactly the step (read
just before the first request and just after the last answer), summed over the GPUs asked
for; a GPU without a counter makes the step's energy "n/a" with the reason, never a guess.
With `warmup`, each lane's first request goes once before the clock (see Settings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from console.gpu.nvml import NvmlSampler
from console.replay.client import Connection, Endpoint, Result
from console.replay.figures import step_figures
from console.replay.workload import Lane, Workload, prompt


@dataclass
class Settings:
    url: str
    model: str
    concurrency: list[int]
    think: str = "recorded"  # recorded | none | cap=S
    duration_s: float | None = None
    gpus: int | None = None  # GPUs serving the model (per-GPU figures); default: NVML's count
    gpu_index: list[int] | None = None  # which GPUs' energy to read; default: all
    price_kwh: float = 0.0
    price_gpu_hour: float = 0.0
    all_in_kw_per_gpu: float | None = None
    timeout_s: float = 600.0
    extra: dict[str, Any] | None = None  # merged into every request body (e.g. ignore_eos)
    # Copies of a lane (concurrency above the lanes recorded) are other users: their private
    # blocks get other words. False sends every copy the same prompts, the copies taking the
    # lane's requests in turn from one cursor (as aiperf keeps N of a trace's entries in
    # flight), for comparing the two clients on one server.
    private_copies: bool = True
    # Each lane sends its first request once before the step's clock starts, on the
    # connection it then keeps (aiperf's --warmup-request-count, one per lane): neither the
    # client's cold start nor the server's switch from whatever it served before (another
    # client's prompts in its prefix cache) lands in the step. The timed pass then starts at
    # the lane's next request and wraps round, so it still sends every request once.
    warmup: bool = False


def think_policy(text: str) -> Callable[[float | None], float]:
    """"recorded", "none" or "cap=S" as a function of the recorded think time."""
    if text == "recorded":
        return lambda t: max(0.0, t or 0.0)
    if text == "none":
        return lambda t: 0.0
    if text.startswith("cap="):
        try:
            cap = float(text[4:])
        except ValueError:
            cap = -1.0
        if cap >= 0:
            return lambda t: min(max(0.0, t or 0.0), cap)
    raise ValueError(f"think time must be recorded, none or cap=SECONDS, not {text!r}")


class Energy:
    """Energy counters of the GPUs, read at the step's edges."""

    def __init__(self, nvml: Any = None, gpu_index: list[int] | None = None) -> None:
        self.sampler = NvmlSampler(nvml=nvml)
        self.gpu_index = gpu_index
        self.status = ""

    def read(self) -> tuple[dict[int, int | None], str | None]:
        """Counter (mJ) per GPU, or the reason there is none."""
        tick = self.sampler.sample_once()
        self.status = self.sampler.status
        if tick is None:
            return {}, self.sampler.status
        gpus = [g for g in tick.gpus if self.gpu_index is None or g.index in self.gpu_index]
        if not gpus:
            return {}, f"no GPU with index {self.gpu_index} ({self.sampler.status})"
        why = next((f"GPU {g.index}: energy counter {g.missing.get('energy_mj', 'missing')}"
                    for g in gpus if g.energy_mj is None), None)
        return {g.index: g.energy_mj for g in gpus}, why

    def close(self) -> None:
        self.sampler.stop()


def _joules(before: dict[int, int | None], after: dict[int, int | None]) -> tuple[
        float | None, str | None]:
    total = 0
    for index, e0 in before.items():
        e1 = after.get(index)
        if e0 is None or e1 is None:
            return None, f"GPU {index}: no energy counter"
        if e1 < e0:
            return None, f"GPU {index}: energy counter reset during the step"
        total += e1 - e0
    return total / 1000.0, None


class _Cursor:
    """Where a lane is in its requests; the copies of a lane that send the same prompts share
    one, so each takes the lane's next request when it is free (as aiperf's N in flight take
    a trace's entries in order)."""

    def __init__(self, lane: Lane) -> None:
        self.order = list(enumerate(lane.requests))
        self.at = 0

    def next(self) -> tuple[int, Any]:
        item = self.order[self.at % len(self.order)]
        self.at += 1
        return item


class _Lane:
    """One lane of a step: its connection, and where it takes its requests from."""

    def __init__(self, lane: Lane, copy: int, cursor: _Cursor, workload: Workload,
                 st: Settings) -> None:
        self.lane, self.cursor, self.workload, self.st = lane, cursor, workload, st
        self.conn = Connection(Endpoint(st.url), st.timeout_s)
        self.salt = f"copy{copy}" if copy and st.private_copies else ""

    async def send(self, n: int, req: Any) -> Result:
        text = prompt(req, self.workload.block_size, salt=self.salt,
                      shared=self.workload.shared_ids, unique=f"{self.lane.name}:{n}")
        result = await self.conn.chat(self.st.model, text, req.output_length,
                                      stream=req.stream, extra=self.st.extra)
        result.sent_tokens = req.input_length
        return result

    async def warm(self) -> None:
        if self.lane.requests:
            await self.send(*self.cursor.next())

    async def run(self, think: Callable[[float | None], float], deadline: float | None,
                  results: list[Result]) -> None:
        """The lane's requests once (as many as it has, from where its cursor is), or on
        and on until the deadline. A lane without requests has nothing to send."""
        sent = 0
        while self.lane.requests and (deadline is not None or sent < len(self.lane.requests)):
            if deadline is not None and time.perf_counter() >= deadline:
                return
            n, req = self.cursor.next()
            if sent:
                pause = think(req.think_s)
                if deadline is not None and time.perf_counter() + pause >= deadline:
                    # Its think time ends after the duration: it would start too late.
                    await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
                    return
                await asyncio.sleep(pause)
            sent += 1
            results.append(await self.send(n, req))


async def run_step(workload: Workload, st: Settings, concurrency: int, energy: Energy
                   ) -> dict[str, Any]:
    think = think_policy(st.think)
    n = len(workload.lanes)
    shared = [_Cursor(lane) for lane in workload.lanes]  # lane i and its copies, i + n, ...
    lanes = [_Lane(workload.lanes[i % n], i // n,
                   _Cursor(workload.lanes[i % n]) if st.private_copies else shared[i % n],
                   workload, st) for i in range(concurrency)]
    results: list[Result] = []
    try:
        if st.warmup:
            await asyncio.gather(*(lane.warm() for lane in lanes))
        before, why = await asyncio.to_thread(energy.read)
        started_at, t0 = time.time(), time.perf_counter()
        deadline = t0 + st.duration_s if st.duration_s else None
        await asyncio.gather(*(lane.run(think, deadline, results) for lane in lanes))
        seconds = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(lane.conn.close() for lane in lanes), return_exceptions=True)
    ended_at = time.time()  # with started_at: the wall-clock span the energy covers
    after, why_after = await asyncio.to_thread(energy.read)
    energy_j, why_delta = (None, why or why_after) if (why or why_after) else \
        _joules(before, after)
    gpus = st.gpus or max(1, len(before))
    figures = step_figures(results, seconds=seconds, gpus=gpus, energy_j=energy_j,
                           energy_why=why_delta, price_kwh=st.price_kwh,
                           price_gpu_hour=st.price_gpu_hour,
                           all_in_kw_per_gpu=st.all_in_kw_per_gpu)
    return {"concurrency": concurrency, "started_at": started_at, "ended_at": ended_at,
            **figures}


async def run_sweep(workload: Workload, st: Settings, *, nvml: Any = None,
                    on_step: Callable[[dict[str, Any]], None] | None = None
                    ) -> list[dict[str, Any]]:
    energy = Energy(nvml, st.gpu_index)
    steps = []
    try:
        for c in st.concurrency:
            step = await run_step(workload, st, c, energy)
            step["gpu_status"] = energy.status
            steps.append(step)
            if on_step is not None:
                on_step(step)
    finally:
        await asyncio.to_thread(energy.close)
    return steps
