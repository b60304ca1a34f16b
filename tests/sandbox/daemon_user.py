"""Run a sandbox backend as a real second user: the ordinary-user daemon, for the escape suite.

The root test process cannot become another user in-process, so `UserBox.run` starts this file
as a child under that user's uid and gid (supplementary groups from the group database, so a
user in the docker group reaches the engine as a real deployment would). The child builds the
same SandboxSpec the in-process Box builds, runs it, and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


async def _main(job: dict) -> dict:
    from console.sandbox.base import Limits, SandboxSpec

    if job["backend"] == "bwrap":
        from console.sandbox.bwrap import BwrapBackend

        backend = BwrapBackend(owner=job["owner"])
    else:
        from console.sandbox.docker import DockerBackend

        backend = DockerBackend(owner=job["owner"])
    spec = SandboxSpec(
        run_id=job["run_id"], profile="test", command=job["command"],
        workspace=Path(job["workspace"]), run_dir=Path(job["run_dir"]), env=job["env"],
        limits=Limits(**job.get("limits", {})), image=job.get("image"),
    )  # fmt: skip
    sibling = None
    if job.get("sibling"):  # a live bwrap run in the same workspace first
        from dataclasses import replace

        from console.sandbox.base import prepare_run_dir
        from console.sandbox.bwrap import BwrapBackend

        rd = Path(job["run_dir"] + "-sibling")
        prepare_run_dir(rd)
        sibling = await BwrapBackend(owner=job["owner"]).start(
            replace(spec, run_id=job["run_id"] + "s", run_dir=rd, command=["sleep", "20"],
                    image=None), None)  # fmt: skip
    try:
        handle = await backend.start(spec, None)
    finally:
        if sibling is not None:
            await sibling.kill()
    try:
        out = await asyncio.wait_for(handle.output.read(), job["timeout"])
        rc = await asyncio.wait_for(handle.wait(), job["timeout"])
    finally:
        await handle.kill()
    return {"rc": rc, "out": out.decode(errors="replace"), "notes": list(handle.notes),
            "end_notes": list(getattr(handle, "end_notes", []))}


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    try:
        result = asyncio.run(_main(job))
    except Exception as e:  # noqa: BLE001 - the parent shows it as the run's output
        result = {"rc": -1, "out": "", "notes": [], "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
