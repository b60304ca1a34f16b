"""Per-run resource limits for sandboxes we start ourselves (bwrap, none).

Three ways, best first:
  v2      a delegated, writable cgroup2 subtree (systemd user session with Delegate=yes, or root)
  v1      the legacy memory / pids / cpu hierarchies (root on a v1 or hybrid host)
  rlimit  prlimit on the sandbox's first process: RLIMIT_AS for memory, RLIMIT_NPROC for pids
          (per-uid, so it counts the user's other processes too); CPU is not enforceable.

`Limiter.detect()` decides once; `Limiter.create(run_id, limits)` makes a RunLimits that the
backend attaches the sandbox pid to before the command is unblocked, so every process of the
run is born inside the limits. Docker enforces its own limits; this module is not used there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from dataclasses import dataclass, field
from pathlib import Path

from .base import CORE_LIMIT, Limits

V1_ROOT = Path("/sys/fs/cgroup")
GROUP = "pilothouse"
CPU_PERIOD_US = 100_000


def no_core_dumps() -> None:
    """This process's core dump limit, soft and hard, lowered to base.CORE_LIMIT (which says
    why) before it starts a sandbox: bwrap and every process inside inherit it, and none may
    raise it. Lowered here rather than with prlimit(2) on the sandbox's first process, which for
    another uid (a root daemon's agent) needs CAP_SYS_RESOURCE, and root in a container may lack
    it. The daemon dumps no core either, which suits it: it holds every run's keys. A hard limit
    already 0 cannot be raised to 1 and stays 0 (no file dump; a pipe handler still starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    want = CORE_LIMIT if hard == resource.RLIM_INFINITY else min(hard, CORE_LIMIT)
    if (soft, hard) != (want, want):
        resource.setrlimit(resource.RLIMIT_CORE, (want, want))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _lines(path: Path) -> list[str]:
    """A /proc file's lines. Not UTF-8 everywhere: a mount point or a cgroup may be named with
    any bytes (a user's FUSE mount at /tmp/\\xff stopped every bwrap start, s44); those bytes
    are kept as surrogates and never match a name looked for."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read().splitlines()


def _cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    try:
        for line in _lines(mountinfo):
            pre, _, post = line.partition(" - ")
            if post.split(" ", 1)[0] == "cgroup2":
                return Path(pre.split()[4])
    except OSError:
        pass
    return None


def _own_v2_path(proc_cgroup: Path = Path("/proc/self/cgroup")) -> str | None:
    try:
        for line in _lines(proc_cgroup):
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def _own_v1_path(ctrl: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> str:
    """Our own cgroup in a v1 hierarchy, so run cgroups nest under the daemon's (and its limits)."""
    try:
        for line in _lines(proc_cgroup):
            _, names, path = line.split(":", 2)
            if ctrl in names.split(","):
                return path
    except (OSError, ValueError):
        pass
    return "/"


@dataclass
class RunLimits:
    """The limits of one run. `enforced` maps limit -> how ("cgroup v1", ...) or why not."""

    mode: str
    limits: Limits
    dirs: list[Path] = field(default_factory=list)
    enforced: dict[str, str] = field(default_factory=dict)

    def attach(self, pid: int) -> None:
        """Move pid into the run's cgroups (or set its rlimits). Call before it runs the command."""
        if self.mode in ("v1", "v2"):
            for d in self.dirs:
                _write(d / "cgroup.procs", str(pid))
        elif self.mode == "rlimit":
            if self.limits.memory_bytes and not self.limits.memory_by_default:
                m = self.limits.memory_bytes
                resource.prlimit(pid, resource.RLIMIT_AS, (m, m))
            if self.limits.pids:
                n = self.limits.pids
                resource.prlimit(pid, resource.RLIMIT_NPROC, (n, n))

    def pids(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                out.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return sorted(out)

    def kill(self) -> None:
        """SIGKILL everything in the run's cgroups (cgroup.kill on v2 when the kernel has it)."""
        if self.mode == "v2" and self.dirs and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
                return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def memory_bytes(self) -> int | None:
        for d in self.dirs:
            for name in ("memory.current", "memory.usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / name).read_text())
        return None

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer acted inside this run (so a death reads right)."""
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                for line in (d / "memory.events").read_text().splitlines():
                    k, v = line.split()
                    if k == "oom_kill" and int(v) > 0:
                        return True
            with contextlib.suppress(OSError, ValueError):
                for line in (d / "memory.oom_control").read_text().splitlines():
                    k, v = line.split()
                    if k == "oom_kill" and int(v) > 0:
                        return True
        return False

    def cleanup(self) -> None:
        for d in reversed(self.dirs):
            with contextlib.suppress(OSError):
                d.rmdir()
        self.dirs.clear()


@dataclass
class Limiter:
    mode: str  # "v2" | "v1" | "rlimit"
    detail: str
    v1_root: Path = V1_ROOT
    v2_base: Path | None = None

    @classmethod
    def detect(
        cls,
        v1_root: Path = V1_ROOT,
        v2_mount: Path | None = None,
        v2_own: str | None = None,
    ) -> Limiter:
        mount = v2_mount if v2_mount is not None else _cgroup2_mount()
        own = v2_own if v2_own is not None else _own_v2_path()
        if mount is not None and own is not None:
            base = mount / own.lstrip("/")
            ok, why = _v2_delegated(base)
            if ok:
                return cls("v2", f"cgroup v2 at {base}", v1_root, base)
            v2_why = why
        else:
            v2_why = "no cgroup2 mount"
        v1_ok = all(
            (v1_root / c).is_dir() and os.access(v1_root / c, os.W_OK)
            for c in ("memory", "pids", "cpu")
        )
        if v1_ok:
            return cls("v1", f"cgroup v1 under {v1_root} (cgroup v2: {v2_why})", v1_root)
        return cls(
            "rlimit",
            f"no writable cgroups (cgroup v2: {v2_why}; v1 not writable): rlimits only",
            v1_root,
        )

    def start_move_early(self) -> None:
        """Write this process's pid into the cgroup it is already in (no move happens).

        Why: on a kernel without cgroup `favordynmods`, the first write to any cgroup.procs
        waits for an RCU grace period (5-15 ms on a busy host), and writes that follow within
        about one more grace period do not. Called (in a thread) as bwrap starts, it makes that
        wait overlap bwrap's own start-up, so the sandbox's real move right after is quick.
        Best effort: any error is ignored, and nothing changes for any process.

        What is left of the wait overlaps bwrap's building of the sandbox (it reads its block
        descriptor only after its mounts). Taking the wait off the path altogether was tried
        (2026-12: on v1 a single-threaded process may enter a cgroup by writing 0 to `tasks`,
        without the lock that waits): run.start answered ~1.4 ms sooner, a run ended no sooner."""
        if self.mode == "v1":
            procs = self.v1_root / "memory" / _own_v1_path("memory").lstrip("/") / "cgroup.procs"
        elif self.mode == "v2" and (mount := _cgroup2_mount()) and (own := _own_v2_path()):
            procs = mount / own.lstrip("/") / "cgroup.procs"
        else:
            return
        with contextlib.suppress(OSError):
            _write(procs, str(os.getpid()))

    def v1_parent(self, ctrl: str) -> Path:
        return self.v1_root / ctrl / _own_v1_path(ctrl).lstrip("/") / GROUP

    def run_parents(self) -> list[Path]:
        """Folders that hold one cgroup per run (for reconcile)."""
        if self.mode == "v1":
            return [self.v1_parent(c) for c in ("memory", "pids", "cpu")]
        if self.mode == "v2" and self.v2_base is not None:
            return [self.v2_base / GROUP]
        return []

    def can_enforce(self) -> dict[str, str]:
        """limit name -> how it is enforced, or "not enforced: why" (for the doctor)."""
        if self.mode in ("v1", "v2"):
            how = f"cgroup {self.mode}"
            return {"memory": how, "pids": how, "cpu": how}
        return {
            # A profile's default memory limit (it set none) is not kept so (profiles.py).
            "memory": "rlimit (RLIMIT_AS: address space, not resident memory; a profile's "
                      "default limit is not kept without cgroups)",
            # Linux 5.14+ counts RLIMIT_NPROC per user namespace: bwrap's (--unshare-all) holds
            # the sandbox's processes only, not the person's others (checked: 30 outside, 5
            # forked inside under a limit of 10; 15 refused). Root's sandbox has none of its own.
            "pids": "rlimit (RLIMIT_NPROC: the sandbox's own processes; not for root)",
            "cpu": "not enforced: needs a writable cgroup",
        }

    def create(self, run_id: str, limits: Limits) -> RunLimits:
        rl = RunLimits(self.mode, limits)
        wanted = {
            "memory": limits.memory_bytes is not None,  # a default one: only where cgroups are
            "pids": limits.pids is not None,
            "cpu": limits.cpus is not None,
        }
        can = self.can_enforce()
        rl.enforced = {k: can[k] for k, want in wanted.items() if want}
        if limits.memory_by_default and self.mode not in ("v1", "v2"):
            del rl.enforced["memory"]  # not asked for: no note on every run (the doctor says)
        try:
            if self.mode == "v1":
                self._create_v1(run_id, limits, rl)
            elif self.mode == "v2":
                self._create_v2(run_id, limits, rl)
        except OSError as e:
            rl.cleanup()
            fallback = RunLimits("rlimit", limits)
            fallback.enforced = {
                k: f"rlimit fallback ({self.mode} failed: {e.strerror})"
                for k, want in wanted.items()
                if want and k != "cpu"
            }
            if limits.memory_by_default:
                fallback.enforced.pop("memory", None)
            if wanted["cpu"]:
                fallback.enforced["cpu"] = "not enforced"
            return fallback
        return rl

    def _create_v1(self, run_id: str, limits: Limits, rl: RunLimits) -> None:
        for ctrl in ("memory", "pids", "cpu"):
            d = self.v1_parent(ctrl) / run_id
            d.mkdir(parents=True, exist_ok=True)
            rl.dirs.append(d)
            if ctrl == "memory" and limits.memory_bytes:
                _write(d / "memory.limit_in_bytes", str(limits.memory_bytes))
                # Swap would let a run exceed its limit; cap memory+swap when accounted.
                if (d / "memory.memsw.limit_in_bytes").exists():
                    with contextlib.suppress(OSError):
                        _write(d / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            elif ctrl == "pids" and limits.pids:
                _write(d / "pids.max", str(limits.pids))
            elif ctrl == "cpu" and limits.cpus:
                _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(int(limits.cpus * CPU_PERIOD_US)))

    def _create_v2(self, run_id: str, limits: Limits, rl: RunLimits) -> None:
        assert self.v2_base is not None
        _enable_controllers(self.v2_base)
        parent = self.v2_base / GROUP
        parent.mkdir(exist_ok=True)
        _enable_controllers(parent)
        d = parent / run_id
        d.mkdir(exist_ok=True)
        rl.dirs.append(d)
        if limits.memory_bytes:
            _write(d / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
        if limits.pids:
            _write(d / "pids.max", str(limits.pids))
        if limits.cpus:
            _write(d / "cpu.max", f"{int(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")


NEEDED = ("memory", "pids", "cpu")


def _enable_controllers(d: Path) -> None:
    have = set((d / "cgroup.subtree_control").read_text().split())
    missing = [c for c in NEEDED if c not in have]
    if missing:
        _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _v2_delegated(base: Path) -> tuple[bool, str]:
    """Can we make per-run child cgroups with memory, pids and cpu below our own cgroup?

    cgroup2's "no internal processes" rule: controllers can only be enabled for children of a
    cgroup that holds no processes itself. A delegated daemon cgroup therefore needs the daemon
    moved into a leaf first; we do that only when the cgroup holds nothing but us, so we never
    move a person's shell or unrelated processes.
    """
    try:
        controllers = set((base / "cgroup.controllers").read_text().split())
    except OSError as e:
        return False, f"cannot read {base}/cgroup.controllers ({e.strerror})"
    missing = [c for c in NEEDED if c not in controllers]
    if missing:
        return False, f"controllers {', '.join(missing)} not delegated to {base}"
    if not (os.access(base, os.W_OK) and os.access(base / "cgroup.subtree_control", os.W_OK)):
        return False, f"{base} is not writable by this user"
    try:
        procs = [int(x) for x in (base / "cgroup.procs").read_text().split()]
    except (OSError, ValueError) as e:
        return False, f"cannot read {base}/cgroup.procs ({e})"
    if procs and set(procs) - {os.getpid()}:
        return False, f"{base} holds other processes; start the daemon in its own delegated scope"
    if procs:
        try:
            leaf = base / "pilothouse-daemon"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
        except OSError as e:
            return False, f"cannot move the daemon into a leaf cgroup ({e.strerror})"
    return True, ""


async def remove_leftovers(limiter: Limiter, owner: str, live_run_ids: set[str]) -> list[str]:
    """Remove the cgroups `owner`'s runs left behind (named OWNER-RUNID: another daemon's are
    never touched), but those of live runs; their processes are killed first. The run ids."""
    removed: list[str] = []
    for root in limiter.run_parents():
        if not root.is_dir():
            continue
        for d in root.iterdir():
            mine, _, run_id = d.name.partition("-")
            if d.is_dir() and mine == owner and run_id not in live_run_ids:
                RunLimits(limiter.mode, Limits(), dirs=[d]).kill()
                await asyncio.sleep(0)
                with contextlib.suppress(OSError):
                    d.rmdir()
                    if run_id not in removed:
                        removed.append(run_id)
    return removed
