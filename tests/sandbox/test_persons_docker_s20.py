"""Attack review s20 (prep): a person's (not root) daemon gives the Docker engine paths, and the
engine, as root, follows every link in them when it mounts. The daemon checks each path just
before (openat2, no links), but another user who can write the workspace (a teammate who asked
for the run: a workspace must be writable by whoever asks; or anyone else with write access to
a shared folder) can put a link there between that check and the engine's mount. The container
runs as the daemon's owner, so it then reads and writes what the link names with the owner's
rights: their keys, their shell's start-up files, Pilothouse's own state.

Such a daemon now refuses a Docker run while a folder the engine resolves can be changed by
another user, saying which and what to do. Failed before the fix
(/work/notes/review-s20-prep-before.txt).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.sandbox.conftest import DAEMON_USER, _user_box

OUTSIDER = "phoutsider"  # another user on the machine, who can write the shared workspace
CANARY = "ph-owner-secret-5d1e"


@pytest.fixture
def persons_docker(request: pytest.FixtureRequest, tmp_path: Path):
    if subprocess.run(["id", OUTSIDER], capture_output=True).returncode != 0:
        pytest.skip(f"no {OUTSIDER} account on this machine")
    return _user_box(tmp_path, "docker", request)


async def _run_with_a_swap(box, swap: str) -> dict:
    """The run, and between the daemon's checks and the engine's mounts, `swap` (a shell
    script) run as OUTSIDER in the workspace."""
    handshake = box.home / "handshake"
    handshake.mkdir(mode=0o777)
    os.chmod(handshake, 0o777)
    box.run_dir_owner()
    os.chmod(box.workspace, 0o777)  # a folder shared with another user, as teams have them
    attacker = subprocess.Popen(
        ["setpriv", f"--reuid={OUTSIDER}", f"--regid={OUTSIDER}", "--clear-groups", "sh", "-c",
         f"while [ ! -e {handshake}/checked ]; do sleep 0.01; done; cd {box.workspace} && "
         f"{{ {swap}; }}; touch {handshake}/swapped"])  # fmt: skip
    job = {"backend": "docker", "owner": "s20", "run_id": box.run_id,
           "command": ["/bin/sh", "-c", "cat /workspace/.claude/canary 2>&1; echo END"],
           "workspace": str(box.workspace), "run_dir": str(box.run_dir),
           "env": {"PATH": "/usr/bin:/bin"}, "image": box.image, "timeout": 60}  # fmt: skip
    python, site = box.python
    repo = str(Path(__file__).resolve().parents[2])
    proc = await asyncio.create_subprocess_exec(
        python, str(Path(__file__).with_name("docker_swap_s20.py")), json.dumps(job),
        str(handshake), env={"PATH": "/usr/bin:/bin", "HOME": str(box.home),
                             "PYTHONPATH": f"{repo}:{site}", "PILOTHOUSE_HOME": str(box.home)},
        cwd=box.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        user=box.user.pw_uid, group=box.user.pw_gid,
        extra_groups=os.getgrouplist(DAEMON_USER, box.user.pw_gid),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    (handshake / "checked").touch()  # a refused start never got there: let the attacker end
    attacker.wait(30)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-3000:]
    return json.loads(lines[-1])


async def test_a_link_put_in_a_shared_workspace_after_the_check_does_not_reach_the_engine(
        persons_docker) -> None:
    """OUTSIDER swaps the workspace's `.claude` (read-only in the sandbox, checked just before)
    for a link to a folder of the daemon's owner that OUTSIDER cannot read."""
    box = persons_docker
    secret = box.home / "owners-secret"
    secret.mkdir(mode=0o700)
    (secret / "canary").write_text(CANARY + "\n")
    (box.workspace / ".claude").mkdir()
    (box.workspace / ".claude" / "canary").write_text("the workspace's own\n")
    box.run_dir_owner()
    os.chmod(secret, 0o700)
    res = await _run_with_a_swap(box, f"mv .claude .claude.real && ln -s {secret} .claude")
    assert CANARY not in res.get("out", ""), (
        "the engine followed another user's link to the daemon owner's private folder", res)
    assert res.get("error"), res  # refused: not started with a folder another user can change
    assert "another user" in res["error"] and str(box.workspace) in res["error"], res["error"]
