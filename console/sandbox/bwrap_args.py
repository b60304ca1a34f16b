"""bubblewrap's options for one run: what the sandbox sees, as `--args` for bwrap.

Inside: /usr, /etc (minus what a group may read and others not: shadow, sudoers, ssh, ...) and
the /bin, /lib, /sbin links as the host has them, read-only; fresh /proc and /dev; tmpfs /tmp
and HOME (/home/agent); the workspace read-write at /workspace with its protected paths
read-only on top; the run folder read-only at /run/pilothouse. Pure apart from reading /etc and
opening the descriptors the options name.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import stat
import time
from pathlib import Path

from console.agents import RUN_PASSWD
from console.agents.codex_bash import REAL_SH, SH_GUARD

from .base import (
    CLAUDE_MANAGED_DIR,
    INSIDE_HOME,
    INSIDE_RUN_DIR,
    INSIDE_WORKSPACE,
    MANAGED_DIR,
    SandboxError,
    SandboxSpec,
    ensure_masks,
    home_folders,
    mask_source,
    sandbox_env,
)
from .view import WorkspaceView

# Host top-level entries that are links into /usr on merged-/usr systems, or real directories
# on older ones; mirrored as the host has them.
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ALWAYS_MASK = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh")
GPU_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps/*", "/dev/dri/renderD*")



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
            # Root's alone (no group or other bits) needs no mask: the agent is never uid 0
            # (identity.py), so the kernel refuses it. Lock and temporary files are such
            # (useradd's /etc/subuid.lock): one gone between this list and bwrap's mount
            # failed the start (review h167).
            root_only = st.st_uid == 0 and not st.st_mode & 0o077
            if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004 and not root_only:
                files.append(p)
    return tuple(files), tuple(dirs)


def etc_masks(etc: str = "/etc") -> tuple[list[str], list[str]]:
    """(files, dirs) under /etc that other users may not read, plus well-known secrets.

    The agent keeps the groups of a person's daemon, so a file a group may read is hidden
    (shadow's group, ssl-cert's keys, whatever a distro adds); one only root may read is not,
    as the agent is never uid 0 (identity.py). Cached for a minute: /etc rarely changes and the
    walk costs a few milliseconds.
    """
    files, dirs = _etc_masks_cached(etc, int(time.monotonic() // 60))
    # Only what is still there: a file there for a moment (useradd's /etc/subuid.lock) made
    # bwrap fail every start for the rest of the minute, unable to make its mountpoint in the
    # read-only /etc (review h167).
    fset = [f for f in files if os.path.lexists(f)]
    dset = [d for d in dirs if os.path.isdir(d) and not os.path.islink(d)]
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


def system_root() -> list[str]:
    """bwrap options for the host's programs and libraries, read-only: /usr, and /bin, /lib
    and the rest as the host has them (links into /usr, or folders). Never the whole root:
    binding `/` remounts every mount on the host, other runs' views too, and one unmounted
    (its folder removed) half way fails the bind (review s23)."""
    a = ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_LINKS:
        if os.path.islink(top):
            a += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            a += ["--ro-bind", top, top]
    return a


def sh_guard(run_dir: Path, fds: FdBinds, here) -> list[str]:
    """The system's sh covered by the run's guard, the real one bound in the run folder: Codex
    starts a shell it is told to use by the path /bin/sh (console/agents/codex_bash.py). Not
    where sh is bash (the guard would run it as bash, not sh)."""
    real = os.path.realpath("/bin/sh")
    if not (run_dir / SH_GUARD).is_file() or os.path.basename(real) == "bash" or not os.path.isfile(real):
        return []
    return ["--ro-bind", real, f"{INSIDE_RUN_DIR}/{REAL_SH}",
            "--ro-bind-fd", fds.add(here(run_dir / SH_GUARD)), real]


def build_args(
    spec: SandboxSpec,
    view: WorkspaceView | None = None,
    *,
    fds: FdBinds | None = None,
    gpu_devices: list[str] | None = None,
    etc: str = "/etc",
    tmpfs_sized: bool = False,
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
    a += system_root()
    a += ["--ro-bind", etc, "/etc"]
    files, dirs = etc_masks(etc)
    for d in dirs:
        a += ["--ro-bind-fd", fds.add(empty_dir), "/etc" + d[len(etc) :]]
    for f in files:
        a += ["--ro-bind-fd", fds.add(empty_file), "/etc" + f[len(etc) :]]
    # Every account's login shell is the run's bin/bash: Codex runs a bash login shell by its
    # path from passwd, around the guard first on PATH (console/agents/codex_bash.py).
    if (spec.run_dir / RUN_PASSWD).is_file():  # written with the run folder (agents/)
        a += ["--ro-bind-fd", fds.add(here(spec.run_dir / RUN_PASSWD)), "/etc/passwd"]
    # Claude Code's managed settings: the hook that project settings cannot switch off.
    if (spec.run_dir / MANAGED_DIR).is_dir() and os.path.isdir(etc + "/claude-code"):
        a += ["--ro-bind-fd", fds.add(here(spec.run_dir / MANAGED_DIR)), CLAUDE_MANAGED_DIR]
    # Kernel tunables: the agent is never host uid 0 (identity.py), so /proc/sys is not
    # writable to it, and bwrap covers /proc/sys read-only where its set-up could write it.
    # Each in-memory folder bounded by the memory limit where bwrap can (0.8+): without cgroups
    # (a person's daemon) the limit is on address space, which tmpfs pages are not (review s32).
    # /dev, bwrap's own tmpfs, read-only then, and /dev/shm one of those (review s32, helper 119).
    size = ["--size", str(spec.limits.memory_bytes)] if tmpfs_sized and spec.limits.memory_bytes else []
    dev = ["--remount-ro", "/dev", "--perms", "01777", *size, "--tmpfs", "/dev/shm"] if size else []
    # A GPU's nodes are bound before /dev is made read-only: bwrap makes each one's mount point
    # there, which a read-only /dev refuses (no GPU run with a memory limit started, s41).
    gpu = [x for d in (gpu_device_paths() if gpu_devices is None else gpu_devices)
           for x in ("--dev-bind", d, d)] if spec.gpu else []
    a += ["--proc", "/proc", "--dev", "/dev", *gpu, *dev, *size, "--tmpfs", "/tmp"]
    a += ["--dir", "/var", *size, "--tmpfs", "/var/tmp", "--dir", "/home", *size, "--tmpfs", INSIDE_HOME]
    a += ["--ro-bind-fd", fds.add(here(spec.run_dir)), INSIDE_RUN_DIR]
    a += sh_guard(spec.run_dir, fds, here)
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
    for folder in home_folders(spec.extra_mounts):  # pinned: base.home_folders says why
        a += [*size, "--tmpfs", folder]
    for m in spec.extra_mounts:
        a += ["--ro-bind-fd" if m.read_only else "--bind-fd", fds.add(here(m.source)), m.target]
    for folder in spec.scratch:  # after the read-only folder that holds their mount points
        a += [*size, "--tmpfs", folder]
    # The sandbox's own root (a tmpfs bwrap builds) read-only too: writable are the workspace,
    # /tmp, /var/tmp and HOME, nothing else.
    a += ["--remount-ro", "/", "--chdir", INSIDE_WORKSPACE]
    return a


def args_memfd(args: list[str]) -> int:
    """bwrap's options in a memory file, each ended by a NUL: a NUL inside one would end it
    early and make the rest an option of its own (an environment value `x\0--share-net`
    would give the sandbox the host's network). Such a value is refused, naming it."""
    for i, arg in enumerate(args):
        if "\0" in arg:
            what = (f"the environment variable {args[i - 1]}" if i >= 2 and args[i - 2] == "--setenv"
                    else "a sandbox option")
            raise SandboxError(f"{what} holds a NUL byte, which no program can be given",
                               "remove the NUL (\\u0000) from the value (the profile's setenv, "
                               "or the variable in the shell that ran `pilothouse run`)")
    fd = os.memfd_create("bwrap-args", 0)  # no CLOEXEC: bwrap must inherit it
    # As bytes: a workspace name that is not UTF-8 (surrogate-escaped) is its own bytes again.
    data = b"".join(os.fsencode(x) + b"\0" for x in args)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
