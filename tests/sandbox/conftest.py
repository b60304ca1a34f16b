"""Fixtures for the sandbox tests: real bubblewrap, a real Docker engine, local images only.

`sandbox` is parametrised over both backends; an absent backend skips with its reason. It runs
`sh -c SCRIPT` in a fresh workspace and run folder under a temporary PILOTHOUSE_HOME and returns
(exit code, output). Tools come from busybox in both (the host's /usr/bin/busybox under bwrap,
the test image's under Docker), so one script means the same thing in both.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from tests.conftest import accounts_locked, ensure_user  # noqa: E402
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
            chown_tree(self.workspace, self.uid, self.uid)

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
        kw.pop("daemon_env", None)  # in-process: the test sets this process's environment
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


# --- the ordinary-user daemon: the same backends run by a real second user -----------------------

DAEMON_USER = "phdaemon"  # an ordinary user, in the docker group for the Docker variant


def _ensure_daemon_user() -> Any:
    import grp
    import pwd
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("creating the ordinary-user daemon's account needs root")
    ensure_user(DAEMON_USER, "--no-create-home", "--shell", "/usr/sbin/nologin")
    with contextlib.suppress(KeyError), accounts_locked():
        if DAEMON_USER not in grp.getgrnam("docker").gr_mem:
            subprocess.run(["usermod", "-aG", "docker", DAEMON_USER], check=True,
                           capture_output=True)  # fmt: skip
    return pwd.getpwnam(DAEMON_USER)


def _python_for_others() -> tuple[str, str] | None:
    """(interpreter, site-packages) other users can run and read, or None."""
    import sysconfig

    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]

    def reachable(p: Path) -> bool:
        return all(os.stat(d).st_mode & 0o001 for d in p.parents)

    if not reachable(Path(site)):
        return None
    for cand in (sys.executable, f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        p = Path(cand).resolve()
        if p.exists() and reachable(p):
            return str(p), site
    return None


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """lchown a tree, never through links: chown(1) walks with fts, so a path deeper than
    PATH_MAX, or a tree deeper than Python's recursion limit (os.fwalk recurses), as attack
    tests build, is reached too."""
    import subprocess

    subprocess.run(["chown", "-hR", f"{uid}:{gid}", "--", str(top)], check=True)


@dataclass
class UserBox(Box):
    """A Box whose backend runs in a child process as DAEMON_USER (the ordinary-user daemon)."""

    user: Any = None
    python: tuple[str, str] = ("", "")

    def run_dir_owner(self) -> None:
        for p in (self.home, self.home / "runs", self.run_dir, self.workspace):
            os.chown(p, self.user.pw_uid, self.user.pw_gid)
        chown_tree(self.home, self.user.pw_uid, self.user.pw_gid)

    async def run(self, script: str, timeout: float = 60.0, **kw: Any) -> Result:
        import json
        import subprocess

        self.run_dir_owner()
        job = {
            "backend": self.name.split("-")[0], "owner": owner_key(self.home / "runs"),
            "run_id": self.run_id, "command": ["/bin/sh", "-c", script],
            "workspace": str(self.workspace), "run_dir": str(self.run_dir),
            "env": kw.pop("env", {"PATH": "/usr/bin:/bin"}), "image": kw.pop("image", self.image),
            "timeout": timeout, "sibling": kw.pop("sibling", False),
            "limits": vars(kw.pop("limits", Limits())),
        }  # fmt: skip
        python, site = self.python
        repo = str(Path(__file__).resolve().parents[2])
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "PYTHONPATH": f"{repo}:{site}",
               "PILOTHOUSE_HOME": str(self.home), **kw.pop("daemon_env", {})}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            python, str(Path(__file__).with_name("daemon_user.py")), json.dumps(job), env=env,
            cwd=self.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            user=self.user.pw_uid, group=self.user.pw_gid,
            extra_groups=os.getgrouplist(DAEMON_USER, self.user.pw_gid),
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 30)
        lines = out.decode().strip().splitlines()
        if not lines:
            raise AssertionError(f"the user daemon printed nothing: {err.decode()[-3000:]}")
        res = json.loads(lines[-1])
        if res.get("error"):
            raise AssertionError(f"the user daemon failed: {res['error']}\n{err.decode()[-2000:]}")
        self.new_run_dir()
        handle = type("Notes", (), {"notes": res["notes"], "end_notes": res["end_notes"]})()
        return Result(res["rc"], res["out"], handle)


def _user_box(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> UserBox:
    user = _ensure_daemon_user()
    python = _python_for_others()
    if python is None:
        pytest.skip("no python3 and site-packages that another user can run and read")
    if backend == "bwrap":
        if not shutil.which("busybox"):
            pytest.skip("the host has no busybox (apt install busybox-static)")
        image = None
    else:
        if _docker_client()[0] is None:
            pytest.skip(_docker_client()[1])
        image = request.getfixturevalue("busybox_ref")
    # Not below pytest's tmp folders: pytest keeps pytest-of-root at 0700 (and another pytest
    # session on the machine resets it), and the ordinary user must reach its own home.
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="ph-userbox-"))
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    os.chmod(tmp_path, 0o755)
    # The one admin step a person's daemon needs (doctor says so): the empty mountpoint for
    # Claude Code's managed settings in the host's /etc, which bwrap binds read-only.
    os.makedirs("/etc/claude-code", exist_ok=True)
    box = UserBox(f"{backend}-user", None, tmp_path, image=image, user=user, python=python)
    box.run_dir_owner()
    return box


@pytest.fixture(params=["bwrap-root", "bwrap-user", "docker-root", "docker-user"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Box:
    """Both backends, each under a root daemon (this process) and an ordinary-user daemon."""
    home = tmp_path / "home"
    home.mkdir()
    backend, who = request.param.split("-")
    if who == "user":
        return _user_box(home, backend, request)
    box = _bwrap_box(home) if backend == "bwrap" else _docker_box(home, request)
    box.name = request.param
    return box
