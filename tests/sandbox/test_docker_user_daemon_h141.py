"""Review h141: the Docker backend under a person's daemon (a user in the `docker` group).

A person's daemon gives the root engine paths, checked link-free just before, and refuses a
Docker run beside a live run in the same workspace, whose agent could plant a link between that
check and the engine's mount. A live run in a folder *above* the Docker run's workspace was not
counted: its agent can write the Docker run's workspace too (it lies inside its own), swap it
for a link after the check, and the engine (root) then bound what the link names, here a
folder of the daemon's owner that no run was given, into the Docker run. Now a live run whose
workspace holds the Docker run's workspace, or lies inside it, refuses such a start too.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.sandbox.base import owner_key
from tests.sandbox.conftest import DAEMON_USER, chown_tree

CANARY = "ph-owner-secret-h141"


@pytest.fixture
def persons_docker(request: pytest.FixtureRequest, tmp_path: Path):
    from tests.sandbox.conftest import _user_box

    if not shutil.which("bwrap"):
        pytest.skip("no bubblewrap on this machine")
    return _user_box(tmp_path, "docker", request)


async def _nested_run(box, outer: Path, inner: Path, outer_script: str, command: str,
                      handshake: Path, more: dict | None = None) -> dict:
    """A bwrap run of `outer_script` live in `outer`, then a Docker run of `command` in `inner`
    (both under the person's daemon)."""
    box.run_dir_owner()
    chown_tree(box.home, box.user.pw_uid, box.user.pw_gid)
    job = {"owner": owner_key(box.home / "runs"), "run_id": box.run_id,
           "command": ["/bin/sh", "-c", command], "workspace": str(inner),
           "run_dir": str(box.run_dir), "env": {"PATH": "/usr/bin:/bin"}, "image": box.image,
           "outer": str(outer), "outer_script": outer_script, **(more or {})}  # fmt: skip
    python, site = box.python
    repo = str(Path(__file__).resolve().parents[2])
    proc = await asyncio.create_subprocess_exec(
        python, str(Path(__file__).with_name("docker_nested_h141.py")), json.dumps(job),
        str(handshake), env={"PATH": "/usr/bin:/bin", "HOME": str(box.home),
                                 "PYTHONPATH": f"{repo}:{site}",
                                 "PILOTHOUSE_HOME": str(box.home)},
        cwd=box.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        user=box.user.pw_uid, group=box.user.pw_gid,
        extra_groups=os.getgrouplist(DAEMON_USER, box.user.pw_gid),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 150)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-3000:]
    return json.loads(lines[-1])


async def test_a_live_run_in_a_folder_above_cannot_swap_the_docker_workspace(
        persons_docker) -> None:
    """The outer run's agent swaps the Docker run's workspace for a link to the owner's private
    folder between the daemon's check and the engine's mount."""
    box = persons_docker
    secret = box.home / "owners-secret"
    secret.mkdir(mode=0o700)
    (secret / "canary").write_text(CANARY + "\n")
    outer = box.workspace
    inner = outer / "sub"
    inner.mkdir()
    (inner / "canary").write_text("the workspace's own\n")
    (outer / ".hs").mkdir()
    swap = (f"while [ ! -e /workspace/.hs/checked ]; do sleep 0.01; done; cd /workspace && "
            f"mv sub sub.orig && ln -s {secret} sub; touch .hs/swapped; sleep 30")  # fmt: skip
    res = await _nested_run(box, outer, inner, swap, "cat /workspace/canary; echo END",
                            outer / ".hs")
    assert CANARY not in res.get("out", ""), res
    assert "another run is live" in res.get("error", ""), res


async def test_a_live_run_in_a_folder_inside_refuses_a_docker_run_around_it(
        persons_docker) -> None:
    """The inner run's agent writes the paths below it that the engine is given (a nested
    repository's protected files), so a Docker run around it is refused too."""
    box = persons_docker
    inner = box.workspace / "sub"
    (inner / ".git").mkdir(parents=True)
    (inner / ".git" / "config").write_text("[core]\n")
    handshake = box.home / "hs"
    handshake.mkdir()
    (handshake / "swapped").touch()  # nothing is swapped here: the start is refused before
    res = await _nested_run(box, inner, box.workspace, "sleep 30", "echo started", handshake)
    assert "started" not in res.get("out", ""), res
    assert "another run is live" in res.get("error", ""), res


async def test_a_rootful_engine_runs_nothing_for_a_persons_daemon(persons_docker,
                                                                  docker_client) -> None:
    """Rootful Docker, a daemon in the docker group: the bridge cannot be put into the
    container, so the run must fail before the engine mounts or starts anything. It failed only
    after: an image without /bin/sh ran the agent's command (it wrote in the workspace) while
    the run was reported as not started."""
    from tests.images.build import noshell_image

    if "rootless" in str(docker_client.info().get("SecurityOptions")):
        pytest.skip("the engine is rootless: a person's daemon can bridge into it")
    box = persons_docker
    handshake = box.home / "hs"
    handshake.mkdir()
    (handshake / "swapped").touch()
    image = noshell_image(docker_client)
    res = await _nested_run(
        box, box.home / "elsewhere", box.workspace, "true", "",
        handshake, {"prepare": True, "image": image, "command": [
            "/busybox", "sh", "-c", "/busybox touch /workspace/ran; /busybox sleep 5"]})
    assert not (box.workspace / "ran").exists(), res
    assert "rootful" in res.get("error", ""), res
