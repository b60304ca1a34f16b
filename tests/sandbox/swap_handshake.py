"""For the scripts a test runs as the ordinary-user daemon's account (docker_swap_s20.py,
docker_nested_h141.py): hold DockerBackend.start between the daemon's checks and the engine's
mounts until another process has swapped the workspace, so the test needs no timing. The hold
writes `checked` into the handshake folder and waits (30 s at most) for `swapped`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from console.sandbox import docker


def hold_before_the_mounts(handshake: Path) -> None:
    config = docker.DockerBackend.container_config

    def config_after_the_swap(self: Any, *args: Any, **kw: Any) -> Any:
        (handshake / "checked").write_text("")
        deadline = time.monotonic() + 30
        while not (handshake / "swapped").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return config(self, *args, **kw)

    docker.DockerBackend.container_config = config_after_the_swap  # type: ignore[method-assign]
