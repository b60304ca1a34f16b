"""With --duration, no request starts after the
duration is up, recorded think time included ("stop starting new ones when the duration is
up", console/replay/sweep.py). Structure only, never speed: the think time is made far longer
than the duration and than the bound on the step, so a step that waited it out fails."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from console.replay.sweep import Settings, run_sweep
from console.replay.workload import load
from tests.replay.model_server import MODEL, ScriptedModel


def _trace(tmp_path: Path) -> Path:
    recs = [{"lane": "r/0", "input_length": 40, "output_length": 4, "hash_ids": [0, 1, 2],
             "think_s": None if i == 0 else 60.0, "stream": True} for i in range(3)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({**r, "block_size": 16}) + "\n" for r in recs))
    return path


async def test_no_request_starts_after_the_duration_is_up(tmp_path: Path) -> None:
    model = ScriptedModel(itl_s=0.001)
    try:
        st = Settings(model.v1, MODEL, [1], think="recorded", duration_s=0.5)
        step = (await asyncio.wait_for(run_sweep(load(_trace(tmp_path)), st), 20))[0]
        starts = list(model.posts())
    finally:
        model.close()
    # The first request goes at once; the next would wait its recorded 60 s of thinking,
    # which ends after the 0.5 s duration: it must not be sent, nor the step wait for it
    # (the bound of 20 s on the step above).
    assert len(starts) == 1 and step["requests"] == 1, (len(starts), step["requests"])
