"""Fixtures for the sandbox tests: real bubblewrap, a real Docker engine, local images only.

`sandbox` is parametrised over both backends; an absent backend skips with its reason. It runs
`sh -c SCRIPT` in a fresh workspace and run folder under a temporary PILOTHOUSE_HOME and returns
(exit code, output). Tools come from busybox in both (the host's /usr/bin/busybox under bwrap,
the test image's under Docker), so one script means the same thing in both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from console.sandbox.base import Limits, SandboxSpec, owner_key, prepare_run_dir

# tests/ is not a package of its own; make the image builders importable however pytest runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.images.build import busybox_image, python_image  # noqa: E402

DOCKER_UID = 1000  # workspace owner for Docker runs, so the container user (not root) owns it


def _docker_client() -> tuple[Any, str]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
        return client, ""
    except Exception as e:  # noqa: BLE001
        return None, f"Docker engine not reachable: {e}"


@pytest.fixture(scope="session")
def docker_client() -> Any:
    client, why = _docker_client()
    if client is None:
        pytest.skip(why)
    return client


@pytest.fixture(scope="session")
def busybox_ref(docker_client: Any) -> str:
    return busybox_image(docker_client)


@pytest.fixture(scope="session")
def python_ref(docker_client: Any) -> str:
    return python_image(docker_client)


@dataclass
class Result:
    rc: int
    out: str
    handle: Any = None


@dataclass
class Box:
    """One backend plus a fresh workspace and run folder."""

    name: str
    backend: Any
    home: Path
    image: str | None = None
    uid: int = 0
    workspace: Path = field(init=False)
    run_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workspace = self.home / "ws"
        self.workspace.mkdir()
        self.new_run_dir()

    def new_run_dir(self) -> Path:
        self.run_id = "t" + uuid.uuid4().hex[:10]
        self.run_dir = self.home / "runs" / self.run_id
        prepare_run_dir(self.run_dir)
        return self.run_dir

    def own(self) -> None:
        """Give the workspace to the sandbox's user (Docker runs as DOCKER_UID, not root)."""
        if self.uid:
            for root, dirs, files in os.walk(self.workspace):
                for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
                    os.lchown(n, self.uid, self.uid)

    def spec(self, script: str, **kw: Any) -> SandboxSpec:
        self.own()
        return SandboxSpec(
            run_id=self.run_id,
            profile="test",
            command=kw.pop("command", None) or ["/bin/sh", "-c", script],
            workspace=self.workspace,
            run_dir=self.run_dir,
            env=kw.pop("env", {"PATH": "/usr/bin:/bin"}),
            limits=kw.pop("limits", Limits()),
            image=kw.pop("image", self.image),
            **kw,
        )

    async def start(self, script: str, prepare: Callable[[Any], Awaitable[None]] | None = None,
                    **kw: Any) -> Any:  # fmt: skip
        return await self.backend.start(self.spec(script, **kw), prepare)

    async def run(self, script: str, timeout: float = 60.0, **kw: Any) -> Result:
        prepare = kw.pop("prepare", None)
        h = await self.start(script, prepare, **kw)
        try:
            out = await asyncio.wait_for(h.output.read(), timeout)
            rc = await asyncio.wait_for(h.wait(), timeout)
        finally:
            await h.kill()
        self.new_run_dir()
        return Result(rc, out.decode(errors="replace"), h)


def _bwrap_box(tmp_path: Path) -> Box:
    from console.sandbox.bwrap import BwrapBackend

    b = BwrapBackend(owner=owner_key(tmp_path / "runs"))
    ok, why = b.usable()
    if not ok:
        pytest.skip(f"bubblewrap not usable: {why}")
    if not shutil.which("busybox"):
        pytest.skip("the host has no busybox (apt install busybox-static)")
    return Box("bwrap", b, tmp_path)


def _docker_box(tmp_path: Path, request: pytest.FixtureRequest) -> Box:
    from console.sandbox.docker import DockerBackend

    client, why = _docker_client()
    if client is None:
        pytest.skip(why)
    image = request.getfixturevalue("busybox_ref")
    backend = DockerBackend(client, owner=owner_key(tmp_path / "runs"))
    return Box("docker", backend, tmp_path, image=image, uid=DOCKER_UID)


@pytest.fixture(params=["bwrap", "docker"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Box:
    home = tmp_path / "home"
    home.mkdir()
    if request.param == "bwrap":
        return _bwrap_box(home)
    return _docker_box(home, request)


@pytest.fixture
def bwrap_box(tmp_path: Path) -> Box:
    return _bwrap_box(tmp_path)


@pytest.fixture
def docker_box(tmp_path: Path, request: pytest.FixtureRequest) -> Box:
    return _docker_box(tmp_path, request)
