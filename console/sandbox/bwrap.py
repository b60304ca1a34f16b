"""The bubblewrap backend: a fresh set of namespaces per run, the host system read-only.

Inside: /usr, /etc (minus anything not world-readable: shadow, sudoers, ssh host keys, ...) and
the /bin, /lib, /sbin links as the host has them, read-only; fresh /proc and /dev; tmpfs /tmp
and HOME (/home/agent); the workspace read-write at /workspace with its protected paths
read-only on top; the run folder read-only at /run/pilothouse. No network namespace but an
empty one (the daemon adds the bridge), no host home, no /root, no /var/run, no daemon folders.

Start-up is race-free: bwrap reports the sandbox's pid on --info-fd and then blocks on
--block-fd; we move that pid into the run's cgroups, let `prepare` put the bridge into its
network namespace, and only then release it to exec the command.

The options travel through `--args FD` (a memfd), not the command line: the environment may
carry API keys and /proc/PID/cmdline is readable by every host user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import psutil

from .base import (
    CLAUDE_MANAGED_DIR,
    INSIDE_HOME,
    INSIDE_RUN_DIR,
    INSIDE_WORKSPACE,
    MANAGED_DIR,
    NO_PYTHON_NOTE,
    Limits,
    Prepare,
    SandboxError,
    SandboxSpec,
    default_owner,
    ensure_masks,
    mask_source,
    owner_key,
    sandbox_env,
)
from .cgroups import Limiter, RunLimits
from .identity import AgentIdentity
from .procstats import SubprocessHandle
from .seccomp import filter_fd
from .view import WorkspaceView, nested_repo_notes, open_view

BWRAP = "/usr/bin/bwrap"
# Host top-level entries that are links into /usr on merged-/usr systems, or real directories
# on older ones; mirrored as the host has them.
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ALWAYS_MASK = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh")
GPU_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/dri/renderD*")
START_TIMEOUT = 30.0


def find_bwrap() -> str | None:
    return shutil.which("bwrap") or (BWRAP if os.access(BWRAP, os.X_OK) else None)


def gpu_device_paths() -> list[str]:
    """Device nodes a GPU run needs (NVIDIA char devices, DRI render nodes)."""
    found: list[str] = []
    for pattern in GPU_GLOBS:
        found.extend(p for p in sorted(glob.glob(pattern)) if not os.path.isdir(p))
    return found


@functools.lru_cache(maxsize=4)
def _etc_masks_cached(etc: str, _epoch: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    files: list[str] = []
    dirs: list[str] = []
    for root, dnames, fnames in os.walk(etc, onerror=lambda e: None):
        keep: list[str] = []
        for d in dnames:
            p = os.path.join(root, d)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o005) != 0o005:
                dirs.append(p)  # not world-listable: hide it whole
            else:
                keep.append(d)
        dnames[:] = keep
        for f in fnames:
            p = os.path.join(root, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004:
                files.append(p)
    return tuple(files), tuple(dirs)


def etc_masks(etc: str = "/etc") -> tuple[list[str], list[str]]:
    """(files, dirs) under /etc that other users may not read, plus well-known secrets.

    When the daemon runs as root the sandbox's processes are host uid 0 without capabilities,
    so owner permissions would still let them read root-only files; hiding everything that is
    not world-readable covers shadow, sudoers, ssh host keys and whatever a distro adds.
    Cached for a minute: /etc rarely changes and the walk costs a few milliseconds.
    """
    files, dirs = _etc_masks_cached(etc, int(time.monotonic() // 60))
    fset, dset = list(files), list(dirs)
    for p in ALWAYS_MASK:
        if p.startswith(etc) and os.path.lexists(p):
            if os.path.isdir(p) and not os.path.islink(p):
                if p not in dset:
                    dset.append(p)
            elif p not in fset and not os.path.islink(p):
                fset.append(p)
    # A file inside a hidden directory needs no mask of its own (and its mountpoint is gone).
    fset = [f for f in fset if not any(f.startswith(d + "/") for d in dset)]
    return fset, dset


class FdBinds:
    """O_PATH descriptors handed to bwrap for `--ro-bind-fd` / `--bind-fd`.

    bwrap may run as the agent's unprivileged uid, which cannot reach the run folder (0700
    above it) or the daemon's files by path; a descriptor opened here reaches exactly what was
    opened. bwrap closes each after use, so every bind gets its own.
    """

    def __init__(self) -> None:
        self.fds: list[int] = []

    def add(self, path: str | Path | int) -> str:
        if isinstance(path, int):
            fd = os.dup(path)
        else:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        os.set_inheritable(fd, True)
        self.fds.append(fd)
        return str(fd)

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def ensure_managed_mountpoint() -> str:
    """/etc/claude-code must exist on the host for bwrap to mount the managed settings there
    (/etc is bound read-only). A root daemon makes the empty folder; a person's daemon cannot,
    and the run's notes say what to do. Returns that note, or "" when all is well."""
    if os.path.isdir(CLAUDE_MANAGED_DIR):
        return ""
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.mkdir(CLAUDE_MANAGED_DIR, 0o755)
            return ""
    return (
        f"Claude Code's managed settings are not installed: {CLAUDE_MANAGED_DIR} does not exist "
        f"on this host, so a repository's .claude settings could switch the Pilothouse hook "
        f"off. Fix: sudo mkdir {CLAUDE_MANAGED_DIR}"
    )


def build_args(
    spec: SandboxSpec,
    view: WorkspaceView | None = None,
    *,
    fds: FdBinds | None = None,
    gpu_devices: list[str] | None = None,
    etc: str = "/etc",
) -> list[str]:
    """bwrap options (everything before the command) for a spec. Pure apart from reading /etc.

    view: the run's workspace view (protected paths); without one (tests, benches) the
    workspace is bound as it is. fds collects the descriptors the options name (pass them to
    bwrap, then close them). gpu_devices overrides discovery (tests pass fake paths).
    """
    fds = fds if fds is not None else FdBinds()
    empty_file, empty_dir = ensure_masks(spec.run_dir)
    if view is not None:  # a root daemon's agent reaches the run folder through the hand-off
        empty_file, empty_dir = view.reachable(empty_file), view.reachable(empty_dir)
    here = view.reachable if view is not None else Path
    a: list[str] = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--hostname", "pilothouse",
        "--clearenv",
    ]  # fmt: skip
    for key, value in sandbox_env(spec).items():
        a += ["--setenv", key, value]
    a += ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_LINKS:
        if os.path.islink(top):
            a += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            a += ["--ro-bind", top, top]
    a += ["--ro-bind", etc, "/etc"]
    files, dirs = etc_masks(etc)
    for d in dirs:
        a += ["--ro-bind-fd", fds.add(empty_dir), "/etc" + d[len(etc) :]]
    for f in files:
        a += ["--ro-bind-fd", fds.add(empty_file), "/etc" + f[len(etc) :]]
    # Claude Code's managed settings: the hook that project settings cannot switch off.
    if (spec.run_dir / MANAGED_DIR).is_dir() and os.path.isdir(etc + "/claude-code"):
        a += ["--ro-bind-fd", fds.add(here(spec.run_dir / MANAGED_DIR)), CLAUDE_MANAGED_DIR]
    # Kernel tunables: the agent is never host uid 0 (identity.py), so /proc/sys is not
    # writable to it, and bwrap covers /proc/sys read-only where its set-up could write it.
    a += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    a += ["--dir", "/var", "--tmpfs", "/var/tmp", "--dir", "/home", "--tmpfs", INSIDE_HOME]
    if spec.gpu:
        devices = gpu_device_paths() if gpu_devices is None else gpu_devices
        for dev in devices:
            a += ["--dev-bind", dev, dev]
    a += ["--ro-bind-fd", fds.add(here(spec.run_dir)), INSIDE_RUN_DIR]
    if view is not None and view.staged is not None:
        a += ["--bind-fd", fds.add(here(view.staged)), INSIDE_WORKSPACE]
    else:
        ws = view.ws_fd if view is not None else spec.workspace
        a += ["--bind-fd", fds.add(ws), INSIDE_WORKSPACE]
        for b in view.binds() if view is not None else []:
            inside = f"{INSIDE_WORKSPACE}/{b.rel}"
            if b.fd is not None:
                flag = "--bind-fd" if b.kind == "pin" else "--ro-bind-fd"
                a += [flag, fds.add(b.fd), inside]
            else:
                mask = here(mask_source(spec.run_dir, b.kind, b.content))
                a += ["--ro-bind-fd", fds.add(mask), inside]
    for m in spec.extra_mounts:
        a += ["--ro-bind-fd" if m.read_only else "--bind-fd", fds.add(here(m.source)), m.target]
    # The sandbox's own root (a tmpfs bwrap builds) read-only too: writable are the workspace,
    # /tmp, /var/tmp and HOME, nothing else.
    a += ["--remount-ro", "/", "--chdir", INSIDE_WORKSPACE]
    return a


def _memfd_with(args: list[str]) -> int:
    fd = os.memfd_create("bwrap-args", 0)  # no CLOEXEC: bwrap must inherit it
    data = b"".join(x.encode() + b"\0" for x in args)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_info(fd: int) -> dict[str, int]:
    """Read bwrap's --info-fd JSON (blocking; run in a thread). {} when bwrap died first."""
    buf = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        with contextlib.suppress(ValueError):
            return json.loads(buf)
    return {}


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
        # The pid namespace dies with its init, but the kernel reaps it asynchronously: retry the
        # cgroup removal briefly instead of leaving empty cgroups behind.
        for _ in range(50):
            if not self.limits.pids():
                break
            self.limits.kill()
            await asyncio.sleep(0.02)
        self.limits.cleanup()
        if self.view is not None:
            self.end_notes.extend(await asyncio.to_thread(nested_repo_notes, self.view))
            self.view.close()

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
            # Killing a pid namespace's init makes the kernel SIGKILL everything inside it.
            for pid in (self.netns_pid, self.pid):
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
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

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = Limiter.detect()
        return self._limiter

    def usable(self) -> tuple[bool, str]:
        """Actually try a sandbox (cached): a present binary may still be refused by the kernel."""
        if self._usable is None:
            self._usable = probe_bwrap(self.bwrap)
        return self._usable

    def limits_enforced(self) -> dict[str, str]:
        return self.limiter.can_enforce()

    async def start(self, spec: SandboxSpec, prepare: Prepare | None = None) -> BwrapHandle:
        if not spec.command:
            raise SandboxError("empty command", "the profile's command must name a program")
        if not spec.workspace.is_dir():
            raise SandboxError(
                f"workspace {spec.workspace} is not a directory", "create it or fix the profile"
            )
        managed_note = ensure_managed_mountpoint()
        identity, view = await open_view(spec)
        # cgroup names carry the owner key so another daemon's reconcile never touches them.
        cg_name = f"{owner_key(spec.run_dir.parent)}-{spec.run_id}"
        try:
            limits = self.limiter.create(cg_name, spec.limits)
        except BaseException:
            view.close()
            raise
        binds = FdBinds()
        try:
            opts = build_args(spec, view, fds=binds)
        except OSError as e:
            binds.close()
            limits.cleanup()
            view.close()
            raise SandboxError(f"cannot prepare the sandbox: {e}") from e
        args_fd = _memfd_with(opts)
        seccomp_fd = filter_fd()
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
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
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(passed),
                # bwrap's own process (PID 1 inside) keeps the environment it was started
                # with: it gets none, so nothing of the daemon's is readable in /proc/1/environ.
                env={},
                start_new_session=True,  # a terminal's ^C to the daemon must not reach runs
                **switch,  # type: ignore[arg-type]
            )
        except OSError as e:
            for fd in (*passed, info_r, block_w):
                os.close(fd)
            limits.cleanup()
            view.close()
            raise SandboxError(
                f"cannot run bubblewrap ({self.bwrap}): {e.strerror}", "pilothouse doctor"
            ) from e
        for fd in passed:
            with contextlib.suppress(OSError):
                os.close(fd)
        binds.fds = []
        handle = BwrapHandle(proc, limits)
        if seccomp_fd is None:
            handle.notes.append("no seccomp filter: libseccomp was not found on this host")
        handle.view, handle.identity = view, identity
        handle.notes.extend(view.notes)
        if managed_note:
            handle.notes.append(managed_note)
        try:
            info = await asyncio.wait_for(asyncio.to_thread(_read_info, info_r), START_TIMEOUT)
            child = info.get("child-pid")
            if not child:
                rc = await proc.wait()
                out = (await proc.stdout.read()).decode(errors="replace").strip()  # type: ignore[union-attr]
                raise SandboxError(
                    f"bubblewrap failed to start the sandbox (exit {rc}): {out or 'no output'}",
                    "run `pilothouse doctor` to see why",
                )
            handle.netns_pid = int(child)
            # Moving a process between cgroups waits for the kernel (an RCU grace period per
            # hierarchy): it runs in a thread while the bridge and sockets are made, and the
            # sandbox is released only once both are done.
            attaching = asyncio.ensure_future(asyncio.to_thread(_attach, limits, handle.netns_pid))
            try:
                if prepare is not None:
                    await _loopback_ready(handle.netns_pid)
                    await prepare(handle)
            finally:
                refused = await attaching
            if refused is not None:
                handle.limits_enforced = {k: f"not enforced: {refused}" for k in limits.enforced}
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
            await handle.kill()
            raise
        finally:
            os.close(block_w)
            os.close(info_r)
        return handle

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        """bwrap runs die with the daemon (--die-with-parent); only empty cgroups can remain."""
        removed: list[str] = []
        lim = self.limiter
        for root in lim.run_parents():
            if not root.is_dir():
                continue
            for d in root.iterdir():
                owner, _, run_id = d.name.partition("-")
                if d.is_dir() and owner == self.owner and run_id not in live_run_ids:
                    rl = RunLimits(lim.mode, Limits(), dirs=[d])
                    rl.kill()
                    await asyncio.sleep(0)
                    with contextlib.suppress(OSError):
                        d.rmdir()
                        if run_id not in removed:
                            removed.append(run_id)
        return removed


async def _loopback_ready(pid: int, timeout: float = 2.0) -> None:
    """Wait until bwrap's child has set up loopback in the new network namespace.

    bwrap reports the child's pid before the child configures `lo` (address, then up), and
    blocks on --block-fd only after. The bridge brings `lo` up too; doing so while bwrap's own
    netlink requests are in flight made bwrap fail now and then ("loopback: Failed
    RTM_NEWADDR"). The local route for 127.0.0.1 exists once both steps are done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    path = f"/proc/{pid}/net/fib_trie"
    while loop.time() < deadline:
        try:
            with open(path) as fh:
                if "127.0.0.1" in fh.read():
                    return
        except OSError:
            return  # gone, or not ours to read: the bridge copes on its own
        await asyncio.sleep(0.001)


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


def probe_bwrap(bwrap: str = BWRAP, timeout: float = 10.0) -> tuple[bool, str]:
    """Run `bwrap --unshare-all ... true` for real; (ok, why not and what to do)."""
    if not os.access(bwrap, os.X_OK):
        return False, (
            "bubblewrap is not installed: install it (apt install bubblewrap / dnf install "
            'bubblewrap) or use sandbox = "docker"'
        )
    true = shutil.which("true") or "/bin/true"
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", true]  # fmt: skip
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
