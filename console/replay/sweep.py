"""Replay a workload against a server at several concurrencies, one step each, with energy.

A step: N lanes (see workload.py) run at once against the server, each on its own keep-alive
connection, honouring think time as asked ("recorded", "none", or "cap=S": recorded but at
most S seconds). Without a duration each lane plays its requests once; with one, lanes loop
over their requests and stop starting new ones when the duration is up (answers in flight
are awaited). Energy is the NVML energy counter's difference over exactly the step (read
just before the first request and just after the last answer), summed over the GPUs asked
for; a GPU without a counter makes the step's energy "n/a" with the reason, never a guess.
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
    # blocks get other words. False sends every copy the same prompts, each copy starting at
    # its own place in the lane (as aiperf keeps N of a trace's entries in flight), for
    # comparing the two clients on one server.
    private_copies: bool = True


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


async def _lane(lane: Lane, copy: int, copies: int, workload: Workload, st: Settings,
                think: Callable[[float | None], float], deadline: float | None,
                results: list[Result]) -> None:
    conn = Connection(Endpoint(st.url), st.timeout_s)
    salt = f"copy{copy}" if copy and st.private_copies else ""
    start = 0 if st.private_copies else copy * len(lane.requests) // copies
    order = list(enumerate(lane.requests))
    order = order[start:] + order[:start]
    try:
        first = True
        while True:
            for n, req in order:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if not first:
                    await asyncio.sleep(think(req.think_s))
                first = False
                text = prompt(req, workload.block_size, salt=salt, shared=workload.shared_ids,
                              unique=f"{lane.name}:{n}")
                result = await conn.chat(st.model, text, req.output_length,
                                         stream=req.stream, extra=st.extra)
                result.sent_tokens = req.input_length
                results.append(result)
            if deadline is None:
                return
    finally:
        await conn.close()


async def run_step(workload: Workload, st: Settings, concurrency: int, energy: Energy
                   ) -> dict[str, Any]:
    think = think_policy(st.think)
    before, why = await asyncio.to_thread(energy.read)
    results: list[Result] = []
    t0 = time.perf_counter()
    deadline = t0 + st.duration_s if st.duration_s else None
    lanes = [workload.lanes[i % len(workload.lanes)] for i in range(concurrency)]
    copies = -(-concurrency // len(workload.lanes))
    await asyncio.gather(*(_lane(lane, i // len(workload.lanes), copies, workload, st, think,
                                 deadline, results) for i, lane in enumerate(lanes)))
    seconds = time.perf_counter() - t0
    after, why_after = await asyncio.to_thread(energy.read)
    energy_j, why_delta = (None, why or why_after) if (why or why_after) else \
        _joules(before, after)
    gpus = st.gpus or max(1, len(before))
    figures = step_figures(results, seconds=seconds, gpus=gpus, energy_j=energy_j,
                           energy_why=why_delta, price_kwh=st.price_kwh,
                           price_gpu_hour=st.price_gpu_hour,
                           all_in_kw_per_gpu=st.all_in_kw_per_gpu)
    return {"concurrency": concurrency, **figures}


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
