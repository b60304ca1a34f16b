"""The Docker backend: one container per run, no network, read-only root, no capabilities.

Container settings: network_mode none (the daemon adds the bridge inside), read_only root with
tmpfs /tmp and HOME (and each image VOLUME), cap_drop ALL, no-new-privileges (our seccomp
profile replaces the engine's default), pids / memory (swap included) / CPU limits, init=True
(tini reaps and forwards signals), labels pilothouse.run and pilothouse.profile, workspace bound
rw at /workspace with the protected paths read-only on top, the run folder read-only at
/run/pilothouse.

User: identity.py decides (the same rule as bubblewrap): never uid 0; a root-owned workspace is
shown through an id-mapped mount to the dedicated pilothouse-agent account. The run folder and
its sockets are made reachable for that uid. With a root daemon the container binds the staged
workspace view (view.py), where protected paths are already covered without following links;
a person's daemon binds the checked paths. Our seccomp profile (seccomp.py) refuses io_uring
and the other calls the bubblewrap filter refuses.

No start-up race: when the image has /bin/sh the command is wrapped in
`sh -c 'read -r _ < /run/pilothouse/.go; exec "$@"'`; .go is a FIFO the daemon writes only after
`prepare` has put the bridge into the container's network namespace. The FIFO needs no polling
and no `sleep` in the image. An image without /bin/sh starts at once (noted in the run's output).

Every docker SDK call is blocking and runs in a thread; the loop never waits on the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.agents import write_passwd

from .base import (
    CLAUDE_MANAGED_DIR,
    CORE_LIMIT,
    INSIDE_HOME,
    INSIDE_RUN_DIR,
    INSIDE_WORKSPACE,
    MANAGED_DIR,
    NO_PYTHON_NOTE,
    NothingEarly,
    Prepare,
    SandboxError,
    SandboxSpec,
    default_owner,
    ensure_masks,
    home_folders,
    mask_source,
    owner_key,
    sandbox_env,
)
from .docker_sweep import LABEL_OWNER, LABEL_RUN, remove_orphans
from .end_look import nested_repo_notes
from .engine_paths import bridge_refusal, changeable_by_others, unnameable
from .image_files import exists, read_text
from .procstats import ProcStats, tree
from .seccomp import docker_profile
from .stream_pump import StreamPump, attach_output
from .view import WorkspaceView, live_views, open_view

LABEL_PROFILE = "pilothouse.profile"
GO_FIFO = ".go"
IMAGE_PASSWD = "image-passwd"  # in the run folder: the image's accounts, login shells guarded
WAIT_SCRIPT = f'read -r _ < {INSIDE_RUN_DIR}/{GO_FIFO}; exec "$@"'
TMPFS_OPTS = "rw,nosuid,nodev,size=512m"
# The engine's json-file log holds every byte the agent prints, escaped (a NUL takes 6), on the
# host's disk, unbounded by default (review h140: 48 MB printed, 288 MB there). We read the
# output from the attach stream; the log is only `docker logs` for a person: a bounded tail.
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "8m", "max-file": "1"}}
FAILURE_TTL = 10.0


@dataclass(frozen=True)
class ImageInfo:
    id: str
    has_sh: bool
    has_python: bool
    passwd: str | None = None  # its /etc/passwd, shown with the guard as every login shell
    volumes: tuple[str, ...] = ()  # its VOLUMEs: each a tmpfs in the run (volume_tmpfs)


class DockerHandle:
    backend = "docker"

    def __init__(self, backend: DockerBackend, container: Any) -> None:
        self._backend = backend
        self.container = container
        self.pid = 0
        self.netns_pid: int | None = None
        self.notes: list[str] = []
        self.output = asyncio.StreamReader(limit=2**20)
        self.view: WorkspaceView | None = None
        self.end_notes: list[str] = []  # what the run's end found (nested repositories)
        self.go_fd: int | None = None
        self.exit_code: int | None = None
        self.oom_killed = False
        self._stats = ProcStats()
        self._wait_task: asyncio.Task[int] | None = None
        self._pump_thread: threading.Thread | None = None

    def host_pids(self) -> list[int]:
        return tree(self.pid or None)

    def release(self) -> None:
        """Let the command run (it is blocked reading the .go FIFO)."""
        if self.go_fd is not None:
            os.write(self.go_fd, b"go\n")

    async def wait(self) -> int:
        if self._wait_task is None:
            self._wait_task = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._wait_task)

    async def _wait(self) -> int:
        try:
            result = await asyncio.to_thread(self.container.wait)
            code = int(result.get("StatusCode", -1))
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.container.reload)
                self.oom_killed = bool(self.container.attrs["State"].get("OOMKilled"))
        except Exception:  # removed under us (reconcile, a person with `docker rm`)
            code = -1
        if self._pump_thread is not None:
            await asyncio.to_thread(self._pump_thread.join, 5.0)
        if not self.output.at_eof():
            self.output.feed_eof()
        await self._remove()
        self.exit_code = code
        return code

    async def _remove(self) -> None:
        with contextlib.suppress(Exception):
            # v: the anonymous volumes of the image's VOLUMEs too (review h133: each run left one,
            # holding whatever the agent wrote there, on the host's disk)
            await asyncio.to_thread(self.container.remove, force=True, v=True)
        if self.view is not None:
            view, self.view = self.view, None
            try:
                self.end_notes.extend(await asyncio.to_thread(nested_repo_notes, view))
            finally:  # whatever the look met, the view is never left mounted (review s16)
                view.close()
        if self.go_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.go_fd)
            self.go_fd = None

    async def stop(self, grace: float = 2.0) -> None:
        with contextlib.suppress(Exception):
            # The engine sends SIGTERM (tini passes it on), then SIGKILL after `grace`.
            await asyncio.to_thread(self.container.stop, timeout=max(0, math.ceil(grace)))
        await self.kill()

    async def kill(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.container.kill)
        await self.wait()

    def stats(self) -> dict[str, float | int | None]:
        return self._stats.sample(self.host_pids())


class DockerBackend(NothingEarly):
    name = "docker"

    def __init__(self, client: Any = None, owner: str | None = None) -> None:
        """owner: owner_key() of the runs folder whose leftovers reconcile may remove
        (default: this process's PILOTHOUSE_HOME's or the user's runs folder)."""
        self._client = client
        self.owner = owner or default_owner()
        self._usable: tuple[bool, str] | None = None
        self._probed = 0.0
        self._images: dict[str, ImageInfo] = {}
        self._lock = threading.Lock()
        self.swept: asyncio.Future[list[str]] | None = None  # the daemon's start sweep (core.py)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import docker

                # A connection a call: the engine may close a kept-alive one as a call goes on it (s30)
                self._client = docker.from_env(timeout=60)
                self._client.api.headers["Connection"] = "close"
                self._client.api.close()  # the version lookup's connection, kept alive
            return self._client

    def usable(self) -> tuple[bool, str]:
        """A working engine is remembered; a failure only for a few seconds (it may start)."""
        now = time.monotonic()
        if self._usable is None or (not self._usable[0] and now - self._probed > FAILURE_TTL):
            self._probed = now
            try:
                self.client.ping()
                self._usable = (True, "")
            except Exception as e:  # DockerException, connection refused, permission denied
                self._usable = (False, _engine_error(e))
        return self._usable

    def image_info(self, image: str) -> ImageInfo:
        """Does the image have /bin/sh and python3? Looked up once per image id (blocking)."""
        import docker.errors

        try:
            img = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"Docker image {image!r} is not on this machine",
                f"docker pull {image} (or build it), then start the run again",
            ) from None
        cached = self._images.get(img.id)
        if cached is not None:
            return cached
        env = img.attrs.get("Config", {}).get("Env") or []
        path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/local/bin:/usr/bin:/bin")
        probe = self.client.containers.create(
            img.id, command=["/nonexistent"], entrypoint=[], network_mode="none"
        )
        try:
            has_sh = exists(probe, "/bin/sh")
            has_py = any(exists(probe, f"{d}/python3") for d in path.split(":") if d)
            passwd = read_text(probe, "/etc/passwd")
        finally:
            with contextlib.suppress(Exception):
                probe.remove(force=True, v=True)
        volumes = tuple(sorted(img.attrs.get("Config", {}).get("Volumes") or {}))
        info = ImageInfo(img.id, has_sh, has_py, passwd, volumes)
        self._images[img.id] = info
        return info

    def container_config(
        self,
        spec: SandboxSpec,
        info: ImageInfo,
        user: tuple[int, int],
        view: WorkspaceView | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for containers.create (pure but for reading the view; tests inspect
        it). Without a view (tests) the workspace is bound as it is."""
        from docker.types import DeviceRequest, Mount, Ulimit

        empty_file, empty_dir = ensure_masks(spec.run_dir)
        uid, gid = user
        staged = view.staged if view is not None else None
        mounts = [
            Mount(INSIDE_WORKSPACE, str(staged or spec.workspace), type="bind", read_only=False),
            Mount(INSIDE_RUN_DIR, str(spec.run_dir), type="bind", read_only=True),
        ]
        if info.passwd is not None:  # Codex runs a bash login shell by its passwd path
            passwd = write_passwd(spec.run_dir / IMAGE_PASSWD, info.passwd)
            mounts.append(Mount("/etc/passwd", str(passwd), type="bind", read_only=True))
        if (spec.run_dir / MANAGED_DIR).is_dir():
            mounts.append(Mount(CLAUDE_MANAGED_DIR, str(spec.run_dir / MANAGED_DIR),
                                type="bind", read_only=True))  # fmt: skip
        for b in view.binds() if view is not None and staged is None else []:
            # A person's daemon: the engine takes paths; each was checked link-free just now.
            src = str(spec.workspace / b.rel if b.fd is not None
                      else mask_source(spec.run_dir, b.kind, b.content))  # fmt: skip
            mounts.append(Mount(f"{INSIDE_WORKSPACE}/{b.rel}", src, type="bind",
                                read_only=b.kind != "pin"))  # fmt: skip
        # Folders under HOME that hold mounted files (~/.claude/settings.json): a tmpfs each,
        # owned by the run's user so the agent can still write its own files there, and a mount
        # point, so it cannot be renamed away with the read-only file in it (base.home_folders).
        home_dirs = home_folders(spec.extra_mounts)
        for m in spec.extra_mounts:
            mounts.append(Mount(m.target, str(m.source), type="bind", read_only=m.read_only))
        env = sandbox_env(spec)
        cmd = list(spec.command)
        if info.has_sh:
            entrypoint, command = ["/bin/sh", "-c", WAIT_SCRIPT, "sh"], cmd
        else:
            entrypoint, command = cmd[:1], cmd[1:]
        kw: dict[str, Any] = {
            "image": info.id,
            "name": f"pilothouse-{spec.run_id}",  # readable in `docker ps` and lazydocker
            "entrypoint": entrypoint,
            "command": command,
            "environment": env,
            "user": f"{uid}:{gid}",
            "working_dir": INSIDE_WORKSPACE,
            "hostname": "pilothouse",
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {
                "/tmp": f"{TMPFS_OPTS},mode=1777",
                INSIDE_HOME: f"{TMPFS_OPTS},mode=0700,uid={uid},gid={gid}",
                **{d: f"{TMPFS_OPTS},mode=0700,uid={uid},gid={gid}"
                   for d in [*home_dirs, *spec.scratch]},
                **volume_tmpfs(info.volumes,
                               [m["Target"] for m in mounts] + home_dirs + spec.scratch),
            },
            "log_config": LOG_CONFIG,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true", f"seccomp={docker_profile()}"],
            "init": True,
            "ulimits": [Ulimit(name="core", soft=CORE_LIMIT, hard=CORE_LIMIT)],  # base.py: why
            "ipc_mode": "private",
            "labels": {
                LABEL_RUN: spec.run_id,
                LABEL_PROFILE: spec.profile,
                LABEL_OWNER: owner_key(spec.run_dir.parent),
            },
            "mounts": mounts,
            "stdin_open": False,
            "tty": False,
            "detach": True,
        }
        lim = spec.limits
        if lim.pids:
            kw["pids_limit"] = lim.pids
        if lim.memory_bytes:
            kw["mem_limit"] = lim.memory_bytes
            kw["memswap_limit"] = lim.memory_bytes  # no swap on top of the limit
        if lim.cpus:
            kw["nano_cpus"] = int(lim.cpus * 1e9)
        if spec.gpu:
            if spec.gpus is not None:
                req = DeviceRequest(device_ids=[str(i) for i in spec.gpus], capabilities=[["gpu"]])
            else:
                req = DeviceRequest(count=-1, capabilities=[["gpu"]])
            kw["device_requests"] = [req]
        return kw

    async def start(self, spec: SandboxSpec, prepare: Prepare | None = None) -> DockerHandle:
        if not spec.image:
            raise SandboxError("no Docker image for this run", 'set image = "..." in the profile')
        if not spec.command:
            raise SandboxError("empty command", "the profile's command must name a program")
        if not spec.workspace.is_dir():
            raise SandboxError(
                f"workspace {spec.workspace} is not a directory", "create it or fix the profile"
            )
        if self.swept is not None:  # it removes every container no live run holds: made after it
            await asyncio.wait([self.swept])
        ok, why = await asyncio.to_thread(self.usable)
        if not ok:
            raise SandboxError(why, "pilothouse doctor")
        if prepare is not None and (no := await asyncio.to_thread(bridge_refusal, self.client)):
            raise no  # rootful engine, a person's daemon: nothing made or run (review h141)
        info = await asyncio.to_thread(self.image_info, spec.image)
        identity, view = await open_view(spec)
        user = identity.uid, identity.gid
        # The view is mounted from here on (a root daemon's): every way out before the handle
        # holds it closes it, whatever raised (review s32, helper 117: a bwrap start that raised
        # other than OSError left it mounted).
        go_fd = None
        try:
            _share_run_dir(spec.run_dir, user)
            if view.staged is None and live_views(view.ws_fd) > 1:  # here, above or inside (h141)
                # A person's daemon cannot stage: the root engine binds paths and follows links,
                # which a live run in the same workspace could plant between our check and its
                # bind.
                raise SandboxError(
                    f"another run is live in {spec.workspace}, in a folder above it or in one "
                    "inside it: a Docker run cannot start beside it when the daemon is not root "
                    "(the engine would follow links that run can plant)",
                    "wait for that run to end, or use sandbox = \"bwrap\" for parallel runs",
                )
            refusal = None if view.staged else unnameable(b.rel for b in view.binds()) or (
                await asyncio.to_thread(  # engine_paths.py: why
                    changeable_by_others, spec.workspace, view.ws_fd,
                    [b.rel for b in view.binds()], spec.run_dir))  # fmt: skip
            if refusal is not None:
                raise refusal
            try:
                go_fd = _make_go_fifo(spec.run_dir) if info.has_sh else None
                kw = self.container_config(spec, info, user, view)
                container = await asyncio.to_thread(self.client.containers.create, **kw)
            except Exception as e:
                raise SandboxError(f"Docker refused the container: {e}",
                                   "pilothouse doctor") from e
        except BaseException:
            view.close()
            if go_fd is not None:
                os.close(go_fd)
            raise
        handle = DockerHandle(self, container)
        handle.view, handle.go_fd = view, go_fd
        try:
            handle.notes.extend(view.notes)
            if not info.has_python:
                handle.notes.append(NO_PYTHON_NOTE)
            if info.volumes:
                handle.notes.append(
                    f"this image's VOLUMEs ({', '.join(info.volumes)}) are empty in-memory folders "
                    "in the run (bounded like /tmp): the image's files there are not shown")
            if not info.has_sh:
                handle.notes.append(
                    "this image has no /bin/sh: the command starts before the network bridge is "
                    "ready; its first connections to 127.0.0.1:3128 may be refused"
                )
            # Attach before start (logs=True too) so not a byte of output is lost.
            stream = await asyncio.to_thread(attach_output, container)
            pump = StreamPump(asyncio.get_running_loop(), handle.output)
            handle._pump_thread = threading.Thread(
                target=pump.run, args=(stream,), name=f"docker-out-{spec.run_id}", daemon=True
            )
            handle._pump_thread.start()
            await asyncio.to_thread(container.start)
            await asyncio.to_thread(container.reload)
            handle.pid = int(container.attrs["State"].get("Pid") or 0)
            handle.netns_pid = handle.pid or None
            if prepare is not None and handle.netns_pid:
                await prepare(handle)
            _chown_sockets(spec.run_dir, user)
            handle.release()
        except BaseException:
            await handle.kill()
            raise
        return handle

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """Remove this installation's containers whose run is not live (after a daemon restart).

        Only containers labelled with our owner key: another daemon's runs are not ours.
        """
        ok, _ = await asyncio.to_thread(self.usable)
        if not ok:
            return []
        return await asyncio.to_thread(remove_orphans, self.client, self.owner, live_run_ids)


def volume_tmpfs(volumes: tuple[str, ...], taken: list[str]) -> dict[str, str]:
    """A tmpfs at each of the image's VOLUMEs that no mount or tmpfs of ours is (`taken`, HOME,
    /tmp: ours keep their modes and owners). An image's VOLUME
    is writable under the read-only root and lives on the host's disk, unbounded while the run
    lives (review h140; h133 removed it after the run): a tmpfs is bounded by its size and the
    memory limit. It starts empty: the engine copies no image files into a tmpfs (start() notes
    it)."""
    out: dict[str, str] = {}
    for v in volumes:
        path = os.path.normpath("/" + v.strip("/"))
        if path != "/" and path not in taken and path not in (INSIDE_HOME, "/tmp"):
            out[path] = f"{TMPFS_OPTS},mode=1777"
    return out


def _make_go_fifo(run_dir: Path) -> int:
    fifo = run_dir / GO_FIFO
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    os.mkfifo(fifo, 0o644)
    os.chmod(fifo, 0o644)
    # O_RDWR: opens without waiting for a reader and keeps the pipe alive until the container's
    # shell has opened it, so the "go" line is never lost.
    return os.open(fifo, os.O_RDWR | os.O_CLOEXEC)


def _share_run_dir(run_dir: Path, user: tuple[int, int]) -> None:
    """The container's uid must traverse the run folder (its parent stays private)."""
    ensure_masks(run_dir)
    mode = stat.S_IMODE(run_dir.stat().st_mode)
    if mode & 0o055 != 0o055:
        os.chmod(run_dir, mode | 0o755)
    _chown_sockets(run_dir, user)


def _chown_sockets(run_dir: Path, user: tuple[int, int]) -> None:
    """agent.sock and gate.sock must be connectable by the container's uid (connect needs w)."""
    if os.geteuid() != 0 or user[0] == 0:
        return
    for name in ("agent.sock", "gate.sock"):
        p = run_dir / name
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(p.lstat().st_mode):
                os.chown(p, user[0], user[1])


def _engine_error(e: Exception) -> str:
    text = str(e)
    if "Permission denied" in text:
        return (
            "the Docker engine refused this user (permission denied on its socket): add the user "
            "to the docker group, or use rootless Docker"
        )
    if "No such file" in text or "Connection refused" in text or "FileNotFoundError" in text:
        return (
            "the Docker engine is not running or not installed: start it (systemctl start docker)"
        )
    return f"the Docker engine is not reachable: {text}"
