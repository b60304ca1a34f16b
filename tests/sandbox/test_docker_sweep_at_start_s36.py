"""The daemon's start does not wait on the Docker engine (s36): the sweep of orphan containers
runs beside the daemon's first answers, and every Docker start waits for it.

Before, the start loaded the engine's client and asked the engine synchronously, on the loop,
before the socket answered (~0.15 s of every start); an engine that accepted and never answered
held the daemon's start for the client's whole 60 s timeout.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from console.paths import resolve
from console.sandbox.base import owner_key
from tests.conftest import Daemon, needs_bwrap


def silent_engine(folder: Path) -> tuple[socket.socket, dict[str, str]]:
    """A Docker engine socket that takes connections and never answers, and the environment
    that points a daemon at it."""
    engine = folder / "silent-docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(engine))
    listener.listen(16)  # connections queue and are never answered
    return listener, {"DOCKER_HOST": f"unix://{engine}"}


@needs_bwrap
def test_a_silent_docker_engine_holds_neither_the_start_nor_a_bwrap_run(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    listener, engine_env = silent_engine(tmp_path)
    d = Daemon(home, {**daemon_env, **engine_env})
    try:
        d.start(timeout=15)  # before: no answer for the client's 60 s
        r = d.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", "echo ran-$((6*7))",
                  check=False, timeout=30)
        assert r.returncode == 0 and "ran-42" in r.stdout, (r.stdout, r.stderr, d.log())
        assert d.cli("ps", "--json").returncode == 0
    finally:
        listener.close()  # the engine goes: the sweep's call fails and its thread ends
        rc = d.stop()
    assert rc == 0, d.log()
    assert "Traceback" not in d.log(), d.log()


def test_an_orphan_container_goes_after_the_start_and_a_docker_run_right_after_it_runs(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    from tests.images.build import busybox_image, docker_client_or_skip

    client = docker_client_or_skip()
    image = busybox_image(client)
    owner = owner_key(resolve(home).runs_dir)
    orphan = client.containers.create(image, ["sleep", "60"],
                                      labels={"pilothouse.run": "r-orphan", "pilothouse.owner": owner})
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        f'[profiles.boxed]\ncommand = ["true"]\nsandbox = "docker"\nimage = "{image}"\n')
    if os.geteuid() == 0:  # a root daemon runs containers as 1000
        os.lchown(workspace, 1000, 1000)
    d = Daemon(home, daemon_env)
    try:
        d.start()
        r = d.cli("run", "boxed", "-w", str(workspace), "--wait", "--", "sh", "-c", "echo in-box",
                  check=False, timeout=120)
        assert r.returncode == 0 and "in-box" in r.stdout, (r.stdout, r.stderr, d.log())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            swept = json.loads(d.cli("history", "--kind", "sandbox.orphans_removed", "--json").stdout)
            if swept:
                break
            time.sleep(0.2)
        assert [h["data"]["removed"] for h in swept] == [["r-orphan"]], swept
        labelled = client.containers.list(all=True, filters={"label": f"pilothouse.owner={owner}"})
        assert labelled == [], labelled  # the orphan, and the run's own container after its end
    finally:
        d.stop()
        try:
            orphan.remove(force=True)
        except Exception:  # noqa: BLE001 - removed by the sweep, as expected
            pass
