"""The bubblewrap backend: a fresh set of namespaces per run, the host system read-only.

What the sandbox sees is bwrap_args.py. No network namespace but an empty one (the daemon adds
the bridge), no host home, no /root, no /var/run, no daemon folders.

Start-up is race-free: bwrap reports the sandbox's pid on --info-fd and then blocks on
--block-fd; we move that pid into the run's cgroups (in a thread) while `prepare` puts the
bridge into its network namespace, and only when both are done release it to exec the command.

The options travel through `--args FD` (a memfd), not the command line: the environment may
carry API keys and /proc/PID/cmdline is readable by every host user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor

import psutil

from .base import (
    NO_PYTHON_NOTE,
    Limits,
    Prepare,
    SandboxError,
    SandboxSpec,
    default_owner,
    run_cgroup_name,
)
from .bwrap_args import (
    FdBinds,
    args_memfd,
    build_args,
    ensure_managed_mountpoint,
    system_root,
)
from .cgroups import Limiter, RunLimits, no_core_dumps, remove_leftovers
from .end_look import nested_repo_notes
from .identity import AgentIdentity
from .procstats import SubprocessHandle
from .seccomp import filter_fd
from .view import WorkspaceView, open_view

BWRAP = "/usr/bin/bwrap"
START_TIMEOUT = 30.0
PROBE_FAILURE_TTL = 10.0  # seconds a failed probe is believed before bwrap is tried again


def find_bwrap() -> str | None:
    return shutil.which("bwrap") or (BWRAP if os.access(BWRAP, os.X_OK) else None)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _read_info(fd: int) -> dict[str, int]:
    """bwrap's --info-fd JSON, read as the loop sees the pipe readable (no thread to wake);
    {} when bwrap died first."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    buf = b""
    while True:
        readable = loop.create_future()
        loop.add_reader(fd, _wake, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            return {}
        buf += chunk
        with contextlib.suppress(ValueError):
            return json.loads(buf)


class BwrapHandle(SubprocessHandle):
    backend = "bwrap"

    def __init__(self, proc: asyncio.subprocess.Process, limits: RunLimits) -> None:
        super().__init__(proc, limits)
        self.limits_enforced: dict[str, str] = dict(limits.enforced)
        self.view: WorkspaceView | None = None
        self.identity: AgentIdentity | None = None
        self.end_notes: list[str] = []  # what the run's end found (nested repositories)
        self.oom_killed = False  # set when the run ends: the kernel OOM killer acted inside
        self._cleaned = False
        self._wait_lock = asyncio.Lock()

    async def wait(self) -> int:
        rc = await self.proc.wait()
        async with self._wait_lock:
            if not self._cleaned:
                self._cleaned = True
                await self._cleanup()
        return rc

    async def _cleanup(self) -> None:
        self.oom_killed = self.limits.oom_killed()
        # The workspace side (the look for new nested repositories, then the view's unmount and
        # its mountpoints' removal) waits on the file system; it runs in a thread beside the
        # cgroup side, and the run's end is reported once both are done.
        view_side = asyncio.ensure_future(asyncio.to_thread(_close_view, self.view)) if (
            self.view is not None) else None  # fmt: skip
        try:
            # The pid namespace dies with its init, but the kernel reaps it asynchronously:
            # retry the cgroup removal briefly (1, 2, 4 ... 20 ms apart; about a second in all)
            # instead of leaving empty cgroups behind.
            pause = 0.001
            for _ in range(60):
                if not self.limits.pids():
                    break
                self.limits.kill()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
            self.limits.cleanup()
        finally:
            if view_side is not None:
                self.end_notes.extend(await view_side)

    def _agent_pids(self) -> list[int]:
        """Processes of the command: descendants of the namespace's init (not bwrap itself)."""
        if self.netns_pid is None:
            return []
        try:
            return [c.pid for c in psutil.Process(self.netns_pid).children(recursive=True)]
        except psutil.Error:
            return []

    async def stop(self, grace: float = 2.0) -> None:
        if self.proc.returncode is None:
            # bwrap's pid 1 ignores SIGTERM (an init without a handler); the agent gets it.
            for pid in self._agent_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=grace)
            except TimeoutError:
                pass
        await self.kill()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            # Killing a pid namespace's init makes the kernel SIGKILL everything inside it. Not
            # known yet, it is bwrap's child (one blocked on --block-fd outlived bwrap and the
            # wait below never ended: s32), found now or, forked after, in bwrap's group (s33).
            inits = [self.netns_pid] if self.netns_pid is not None else _children(self.pid)
            for pid in (*inits, self.pid):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # bwrap leads its group: start_new_session
            self.limits.kill()
        await self.wait()

    def stats(self) -> dict[str, float | int | None]:
        out = super().stats()
        out["cgroup_memory_bytes"] = self.limits.memory_bytes()
        return out


class BwrapBackend:
    name = "bwrap"

    def __init__(
        self, bwrap: str | None = None, limiter: Limiter | None = None, owner: str | None = None
    ) -> None:
        """owner: owner_key() of the runs folder whose leftover cgroups reconcile may remove."""
        self.bwrap = bwrap or find_bwrap() or BWRAP
        self.owner = owner or default_owner()
        self._limiter = limiter
        self._usable: tuple[bool, str] | None = None
        self._probed = 0.0
        self._early: Future[None] | None = None  # the latest early cgroup.procs write

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = Limiter.detect()
        return self._limiter

    def usable(self) -> tuple[bool, str]:
        """Actually try a sandbox: a present binary may still be refused by the kernel. A
        success is remembered; a failure only for PROBE_FAILURE_TTL seconds (it may pass: a
        fix made, or a transient error), never for the daemon's life."""
        now = time.monotonic()
        if self._usable is None or (
                not self._usable[0] and now - self._probed > PROBE_FAILURE_TTL):
            self._probed = now
            self._usable = probe_bwrap(self.bwrap)
        return self._usable

    def limits_enforced(self) -> dict[str, str]:
        return self.limiter.can_enforce()

    def prestart(self) -> None:
        """A run is about to start here: begin the kernel's slow part of moving it into its
        cgroups now, while the run manager checks, names and records it (see start())."""
        if self.limiter.mode in ("v1", "v2") and (self._early is None or self._early.done()):
            # Best effort, never fails: an error is ignored and nothing moves.
            self._early = _CGROUP_WORK.submit(self.limiter.start_move_early)

    async def start(self, spec: SandboxSpec, prepare: Prepare | None = None) -> BwrapHandle:
        if not spec.command:
            raise SandboxError("empty command", "the profile's command must name a program")
        if not spec.workspace.is_dir():
            raise SandboxError(
                f"workspace {spec.workspace} is not a directory", "create it or fix the profile"
            )
        loop = asyncio.get_running_loop()
        no_core_dumps()  # inherited by bwrap and the sandbox: base.CORE_LIMIT says why
        managed_note = ensure_managed_mountpoint()
        # cgroup names carry the owner key so another daemon's reconcile never touches them.
        name = run_cgroup_name(spec.run_dir.parent, spec.run_id)
        # Moving a process into a cgroup waits for the kernel: the first write to any
        # cgroup.procs waits out an RCU grace period (5-15 ms), and writes within about one
        # more grace period do not. prestart() began that wait as the run manager took the
        # run; the cgroups are made after it, in a thread, beside the view and bwrap's own
        # start, so the sandbox's move below is quick (cgroups.py).
        made: Future[RunLimits]
        if self.limiter.mode in ("v1", "v2"):
            self.prestart()  # shares a write still waiting; else one more, quick after it
            made = _CGROUP_WORK.submit(_create_after, self._early, self.limiter, name,
                                       spec.limits)
        else:
            made = Future()
            made.set_result(self.limiter.create(name, spec.limits))
        try:
            identity, view = await open_view(spec)
        except BaseException:
            _cleanup_when_made(made)
            raise
        # From here on the view is mounted (a root daemon's: in the run folder, on the
        # workspace's own files and under /run/pilothouse-handoff). Every way out closes it:
        # before bwrap runs, the handlers below; after, the handle's kill and cleanup. A start
        # that raised anything but an OSError here (a NameError in build_args) left it mounted,
        # in the run folder that went back to the spares as `.spare-*` (review s32, helper 117).
        binds = FdBinds()
        opened: list[int] = []  # made here: closed on any way out before bwrap has them
        try:
            opts = build_args(spec, view, fds=binds, tmpfs_sized=sizes_tmpfs(self.bwrap))
            args_fd = args_memfd(opts)
            opened.append(args_fd)
            seccomp_fd = filter_fd()
            opened += [] if seccomp_fd is None else [seccomp_fd]
            info_r, info_w = os.pipe()
            opened += [info_r, info_w]
            block_r, block_w = os.pipe()
            opened += [block_r, block_w]
            for fd in (info_r, block_w):
                os.set_inheritable(fd, False)
            argv = [
                self.bwrap,
                "--args", str(args_fd),
                "--info-fd", str(info_w),
                "--block-fd", str(block_r),
            ]  # fmt: skip
            passed = [args_fd, info_w, block_r, *binds.fds]
            if seccomp_fd is not None:
                argv += ["--seccomp", str(seccomp_fd)]
                passed.append(seccomp_fd)
            argv += ["--", *spec.command]
            # A root daemon never runs the agent as root: bwrap itself starts as the agent's
            # identity (no supplementary groups) and builds an unprivileged user namespace.
            argv, switch = as_agent(argv, identity) if os.geteuid() == 0 else (argv, {})
        except BaseException as e:  # out of descriptors (EMFILE), cut short, or a bug
            for fd in opened:
                os.close(fd)
            binds.close()
            _cleanup_when_made(made)
            view.close()
            if not isinstance(e, OSError):
                raise
            raise SandboxError(f"cannot prepare the sandbox: {e}") from e
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(passed),
                # bwrap's PID 1 keeps this environment: none, so no daemon's in /proc/1/environ.
                env={},
                start_new_session=True,  # a terminal's ^C to the daemon must not reach runs
                **switch,  # type: ignore[arg-type]
            )
        except BaseException as e:  # cut short too: asyncio has killed what it started
            for fd in (*passed, info_r, block_w):
                os.close(fd)
            _cleanup_when_made(made)
            view.close()
            if not isinstance(e, OSError):
                raise
            raise SandboxError(
                f"cannot run bubblewrap ({self.bwrap}): {e.strerror}", "pilothouse doctor"
            ) from e
        for fd in passed:
            with contextlib.suppress(OSError):
                os.close(fd)
        binds.fds = []
        # The cgroups may still be in the making: the handle holds them once made (below, or
        # on the way out), so its kill and cleanup always reach them. It holds the view at
        # once: whatever raises from here on, its kill ends bwrap and its cleanup closes the view.
        handle = BwrapHandle(proc, RunLimits(self.limiter.mode, spec.limits))
        handle.view, handle.identity = view, identity
        try:
            if seccomp_fd is None:
                handle.notes.append("no seccomp filter: libseccomp was not found on this host")
            handle.notes.extend(view.notes)
            if managed_note:
                handle.notes.append(managed_note)
            async with asyncio.timeout(START_TIMEOUT):  # not wait_for: in 3.11 it can lose
                info = await _read_info(info_r)       # a cancel that lands as the read ends
            child = info.get("child-pid")
            if not child:
                rc = await proc.wait()
                out = (await proc.stdout.read()).decode(errors="replace").strip()  # type: ignore[union-attr]
                raise SandboxError(
                    f"bubblewrap failed to start the sandbox (exit {rc}): {out or 'no output'}",
                    "run `pilothouse doctor` to see why",
                )
            handle.netns_pid = int(child)
            # The move runs in a thread while the bridge and sockets are made, and the sandbox
            # is released only once both are done. Handed to the thread now, not when the loop
            # next runs a task: `prepare` below holds the loop for a millisecond or two.
            attaching = loop.run_in_executor(None, _attach_when_made, made, handle.netns_pid)
            try:
                if prepare is not None:
                    await prepare(handle)
            finally:
                handle.limits, refused = await attaching
            handle.limits_enforced = dict(handle.limits.enforced)
            if refused is not None:
                handle.limits_enforced = {k: f"not enforced: {refused}"
                                          for k in handle.limits.enforced}
            handle.notes.extend(_limit_notes(handle.limits_enforced))
            if not any(
                os.access(p, os.X_OK) for p in ("/usr/bin/python3", "/usr/local/bin/python3")
            ):
                handle.notes.append(NO_PYTHON_NOTE.replace("this image", "this host"))
            try:
                os.write(block_w, b"1")
            except BrokenPipeError:  # bwrap died while setting up: say why
                rc = await proc.wait()
                out = (await proc.stdout.read()).decode(errors="replace").strip()  # type: ignore[union-attr]
                raise SandboxError(
                    f"bubblewrap failed to set up the sandbox (exit {rc}): {out or 'no output'}",
                    "run `pilothouse doctor` to see why",
                ) from None
        except BaseException:
            try:
                await _settle_limits(handle, made)
            finally:
                await handle.kill()
            raise
        finally:
            os.close(block_w)
            os.close(info_r)
        return handle

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """bwrap runs die with the daemon (--die-with-parent); only empty cgroups can remain."""
        return await remove_leftovers(self.limiter, self.owner, live_run_ids)


def _children(pid: int) -> list[int]:
    """pid's processes below it that exist now (none when it cannot be read)."""
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _close_view(view: WorkspaceView) -> list[str]:
    """At a run's end (in a thread): what the agent left in the workspace, then the view gone."""
    try:
        return nested_repo_notes(view)
    finally:
        view.close()


# Threads for the cgroups' slow writes: a start hands them work the loop must not wait on.
# FIFO, so a creation waits only on an early write handed over before it (never a deadlock).
_CGROUP_WORK = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cgroups")


def _create_after(early: Future[None] | None, limiter: Limiter, name: str,
                  limits: Limits) -> RunLimits:
    """The run's cgroups, made once the early write is done: that write's wait holds the
    kernel's cgroup lock, and a mkdir would only wait behind it."""
    if early is not None:
        with contextlib.suppress(Exception):
            early.result()
    return limiter.create(name, limits)


def _cleanup_when_made(made: Future[RunLimits]) -> None:
    """A start that failed: remove its cgroups as soon as they exist (now, if they do)."""
    made.add_done_callback(lambda f: f.cancelled() or f.exception() is not None
                           or f.result().cleanup())


async def _settle_limits(handle: BwrapHandle, made: Future[RunLimits]) -> None:
    """A start that failed after bwrap began: the handle gets the cgroups once made, so its
    kill reaches them and its cleanup removes them; cut short, they are removed when made."""
    try:
        handle.limits = await asyncio.wrap_future(made)
    except BaseException:
        _cleanup_when_made(made)
        raise


def _attach_when_made(made: Future[RunLimits], pid: int) -> tuple[RunLimits, OSError | None]:
    """(the run's limits, the error when the kernel refused): pid moved into its cgroups once
    they are made (in a thread)."""
    limits = made.result()
    return limits, _attach(limits, pid)


def _attach(limits: RunLimits, pid: int) -> OSError | None:
    """Move pid into the run's cgroups (in a thread); the error when the kernel refused."""
    try:
        limits.attach(pid)
    except OSError as e:
        return e
    return None


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") or next(
        (p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(p, os.X_OK)), None
    )


def as_agent(argv: list[str], identity: AgentIdentity) -> tuple[list[str], dict[str, object]]:
    """(argv, subprocess options) that start argv as the agent's uid and gid, with no
    supplementary groups. setpriv(1) switches in the child after exec, so the daemon starts it
    with vfork; Python's own switch (user=, group=) forces a full fork of the daemon, several
    milliseconds per run. Without setpriv, Python switches."""
    setpriv = _setpriv()
    if setpriv is None:
        return argv, {"user": identity.uid, "group": identity.gid, "extra_groups": []}
    return [setpriv, f"--reuid={identity.uid}", f"--regid={identity.gid}", "--clear-groups",
            "--", *argv], {}  # fmt: skip


def _limit_notes(enforced: dict[str, str]) -> list[str]:
    weak = {k: v for k, v in enforced.items() if not v.startswith("cgroup")}
    return [f"limit {k}: {v}" for k, v in sorted(weak.items())]


@functools.lru_cache(maxsize=4)
def sizes_tmpfs(bwrap: str) -> bool:
    """Whether this bwrap takes --size for a tmpfs (0.8 and later; 0.6, Ubuntu 22.04's, not)."""
    try:
        return b"--size" in subprocess.run([bwrap, "--help"], capture_output=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe_bwrap(bwrap: str = BWRAP, timeout: float = 10.0) -> tuple[bool, str]:
    """Run `bwrap --unshare-all ... true` for real; (ok, why not and what to do)."""
    if not os.access(bwrap, os.X_OK):
        return False, (
            "bubblewrap is not installed: install it (apt install bubblewrap / dnf install "
            'bubblewrap) or use sandbox = "docker"'
        )
    true = shutil.which("true") or "/bin/true"
    # The host's system folders as a sandbox binds them, not all of `/` (bwrap_args.system_root).
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", *system_root(),
            "--proc", "/proc", "--dev", "/dev", true]  # fmt: skip
    try:
        r = subprocess.run(argv, capture_output=True, timeout=timeout, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bubblewrap could not be run: {e}"
    if r.returncode == 0:
        return True, ""
    err = (r.stderr or r.stdout).strip()
    hint = ""
    if "Permission denied" in err or "Operation not permitted" in err or "No permissions" in err:
        hint = (
            " - unprivileged user namespaces look disabled; `pilothouse doctor` shows the "
            "sysctl or AppArmor setting to change"
        )
    return False, f"bubblewrap cannot create a sandbox here: {err}{hint}"
