"""Run as the ordinary-user daemon's account by test_docker_user_daemon_h141.py: a live bwrap
run in a folder, then a Docker run in a folder below it. The bwrap run's agent can write the
Docker run's workspace (it lies inside its own), so between the daemon's checks and the engine's
mounts it swaps that workspace for a link; the daemon waits there (no timing needed) until the
agent says it is done, as docker_swap_s20.py does for another user.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from console.sandbox import docker
from console.sandbox.base import Limits, SandboxSpec, prepare_run_dir
from console.sandbox.bwrap import BwrapBackend
from tests.sandbox.swap_handshake import hold_before_the_mounts

HANDSHAKE = Path(sys.argv[2])
hold_before_the_mounts(HANDSHAKE)


async def _with_prepare(job: dict) -> dict:
    """A Docker run as a real daemon starts one: with a `prepare` (the gate's bridge)."""
    spec = SandboxSpec(
        run_id=job["run_id"], profile="test", command=job["command"],
        workspace=Path(job["workspace"]), run_dir=Path(job["run_dir"]), env=job["env"],
        limits=Limits(), image=job["image"],
    )  # fmt: skip

    async def prepare(handle) -> None:  # type: ignore[no-untyped-def]
        from console.sandbox.bridge import open_bridge_listener

        (await open_bridge_listener(handle.netns_pid)).close()

    handle = await docker.DockerBackend(owner=job["owner"]).start(spec, prepare)
    try:
        out = await asyncio.wait_for(handle.output.read(), 60)
    finally:
        await handle.kill()
    return {"rc": handle.exit_code, "out": out.decode(errors="replace"), "notes": handle.notes}


async def _main(job: dict) -> dict:
    if job.get("prepare"):
        return await _with_prepare(job)
    spec = SandboxSpec(
        run_id=job["run_id"], profile="test", command=job["command"],
        workspace=Path(job["workspace"]), run_dir=Path(job["run_dir"]), env=job["env"],
        limits=Limits(), image=job["image"],
    )  # fmt: skip
    outer_dir = Path(job["run_dir"] + "-outer")
    prepare_run_dir(outer_dir)
    outer = await BwrapBackend(owner=job["owner"]).start(
        replace(spec, run_id=job["run_id"] + "o", run_dir=outer_dir, image=None,
                workspace=Path(job["outer"]), command=["/bin/sh", "-c", job["outer_script"]]),
        None)  # fmt: skip
    try:
        handle = await docker.DockerBackend(owner=job["owner"]).start(spec, None)
        try:
            out = await asyncio.wait_for(handle.output.read(), 60)
            rc = await asyncio.wait_for(handle.wait(), 60)
        finally:
            await handle.kill()
    finally:
        await outer.kill()
    return {"rc": rc, "out": out.decode(errors="replace"), "notes": list(handle.notes)}


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    try:
        result = asyncio.run(_main(job))
    except Exception as e:  # noqa: BLE001 - the parent shows it
        result = {"rc": -1, "out": "", "notes": [], "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
