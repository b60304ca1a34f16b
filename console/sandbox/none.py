"""sandbox = "none": the command runs as a plain host process. UNSANDBOXED.

It has the host's network, files and sockets; only the resource limits (cgroups where we can)
and the process-group handling are kept. The backend name is "none" so the console can show
it in red, and the run's first output line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess

from .base import (
    BRIDGE_PORT,
    INSIDE_RUN_DIR,
    NothingEarly,
    Prepare,
    SandboxError,
    SandboxSpec,
    default_owner,
    run_cgroup_name,
)
from .cgroups import Limiter, RunLimits, remove_leftovers
from .procstats import SubprocessHandle

UNSANDBOXED_NOTE = (
    'UNSANDBOXED: sandbox = "none" - this command runs with your files, your network and your '
    "sockets; nothing but resource limits applies"
)


class NoSandboxHandle(SubprocessHandle):
    backend = "none"  # netns_pid stays None: the host's own network, no bridge

    def __init__(self, proc: asyncio.subprocess.Process, limits: RunLimits) -> None:
        super().__init__(proc, limits, [UNSANDBOXED_NOTE])

    async def wait(self) -> int:
        rc = await self.proc.wait()
        self.limits.cleanup()
        return rc

    def _signal(self, sig: int) -> None:
        # The command leads its own session: signal the whole process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float = 2.0) -> None:
        if self.proc.returncode is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        await self.kill()

    async def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self.limits.kill()
        await self.wait()

def host_env(spec: SandboxSpec) -> dict[str, str]:
    """The run's environment (made for a sandbox) as a host process needs it: the run folder,
    agent.sock and the workspace where they are on the host, the person's HOME, and no proxy
    at the bridge's 127.0.0.1:3128, which on the host is whatever listens there (there is no
    gate in front of an unsandboxed run). Before, ph-ask and the agents' hook looked for
    /run/pilothouse/agent.sock and could never ask."""
    env = dict(spec.env)
    bridge = f"http://127.0.0.1:{BRIDGE_PORT}"
    for name in [n for n, v in env.items() if n.lower().endswith("_proxy") and v == bridge]:
        del env[name]
    if env.get("NO_PROXY") == "" and env.get("no_proxy") == "":
        del env["NO_PROXY"], env["no_proxy"]
    inside_bin = f"{INSIDE_RUN_DIR}/bin"
    path = [d for d in env.get("PATH", os.defpath).split(":") if d != inside_bin]
    env["PATH"] = ":".join([str(spec.run_dir / "bin"), *path])  # the helpers first
    env["HOME"] = _home()
    env["PILOTHOUSE_RUN_ID"] = spec.run_id
    env["PILOTHOUSE_RUN_DIR"] = str(spec.run_dir)
    env["PILOTHOUSE_AGENT_SOCK"] = str(spec.run_dir / "agent.sock")
    env["PILOTHOUSE_WORKSPACE"] = str(spec.workspace)
    return env


def _home() -> str:
    """The daemon's user's home: an unsandboxed run works with that user's files."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.environ.get("HOME") or "/"


class NoSandboxBackend(NothingEarly):
    name = "none"

    def __init__(self, limiter: Limiter | None = None, owner: str | None = None) -> None:
        """owner: owner_key() of the runs folder whose leftover cgroups reconcile may remove."""
        self._limiter = limiter
        self.owner = owner or default_owner()

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = Limiter.detect()
        return self._limiter

    def usable(self) -> tuple[bool, str]:
        return True, ""

    async def start(self, spec: SandboxSpec, prepare: Prepare | None = None) -> NoSandboxHandle:
        if not spec.command:
            raise SandboxError("empty command", "the profile's command must name a program")
        limits = self.limiter.create(run_cgroup_name(spec.run_dir.parent, spec.run_id), spec.limits)
        env = host_env(spec)
        # The shell's stdin is a gate: it waits for one line until the limits are attached and
        # prepare() ran, then runs the command with stdin /dev/null (as every sandbox does).
        gate_r, gate_w = os.pipe()
        script = 'read -r _; exec "$@" </dev/null'
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", script, "sh", *spec.command,
                cwd=spec.workspace, env=env,
                stdin=gate_r, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            os.close(gate_w)
            limits.cleanup()
            raise SandboxError(f"cannot start {spec.command[0]}: {e.strerror}") from e
        finally:
            os.close(gate_r)
        handle = NoSandboxHandle(proc, limits)
        try:
            with contextlib.suppress(OSError):
                limits.attach(proc.pid)
            if prepare is not None:
                await prepare(handle)
            os.write(gate_w, b"go\n")
        except BaseException:
            await handle.kill()
            raise
        finally:
            os.close(gate_w)
        return handle

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """Its runs' processes outlive a daemon killed hard (no namespace ends them): those in
        cgroups are killed, and the cgroups removed."""
        return await remove_leftovers(self.limiter, self.owner, live_run_ids)
