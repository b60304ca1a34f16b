"""A profile that sets no memory limit gets one: half of this machine's memory (s40).

The threat model names memory exhaustion of the host as stopped by the sandbox, and the
built-in profiles set `memory`; a profile of the person's own without `limits` had none, so a
leaking agent (or a test it ran) took the host's memory with the daemon's. The default is kept
where cgroups keep it (both backends); never as RLIMIT_AS, which counts address space (a V8 or
Go reservation), not memory used: there the doctor says so, and runs carry no note of it.
"""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest

from console.config.load import load
from console.config.schema import Limits
from console.sandbox.cgroups import Limiter

HALF = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2

CONFIG = ('[profiles.mine]\ncommand = ["true"]\n'
          '[profiles.sized]\ncommand = ["true"]\nlimits = { memory = "1g" }\n'
          '[profiles.claude]\nlimits = { pids = 2000 }\n')


def _own(tmp_path: Path) -> Limits:
    return load(tmp_path / "c.toml", text=CONFIG).profile("mine").limits


def test_a_profile_without_a_memory_limit_gets_half_the_machines(tmp_path: Path) -> None:
    cfg = load(tmp_path / "c.toml", text=CONFIG)
    mine = cfg.profile("mine").limits
    assert abs(mine.memory_bytes - HALF) <= 4096 and mine.memory_by_default
    sized = cfg.profile("sized").limits
    assert sized.memory_bytes == 1 << 30 and not sized.memory_by_default
    claude = cfg.profile("claude").limits  # a built-in extended: its own 4g stands
    assert claude.memory_bytes == 4 << 30 and not claude.memory_by_default
    assert claude.pids == 2000


async def test_the_default_is_the_runs_cgroup_limit_in_both_backends(sandbox, tmp_path: Path) -> None:
    if sandbox.name == "bwrap" and sandbox.backend.limiter.mode not in ("v1", "v2"):
        pytest.skip(f"no writable cgroups here: {sandbox.backend.limiter.detail}")
    limits = _own(tmp_path)
    if sandbox.name == "docker":
        r = await sandbox.run("cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", limits=limits)
        assert int(r.out.split()[0]) == limits.memory_bytes, r.out
        return
    h = await sandbox.start("echo go; sleep 5", limits=limits)
    try:
        await h.output.readline()
        assert h.limits_enforced["memory"].startswith("cgroup"), h.limits_enforced
        kept = [d / name for d in h.limits.dirs for name in ("memory.max", "memory.limit_in_bytes")
                if (d / name).exists()]
        assert kept and int(kept[0].read_text()) == limits.memory_bytes
    finally:
        await h.kill()


def test_without_cgroups_the_default_is_not_an_address_space_limit(tmp_path: Path) -> None:
    lim = Limiter.detect(v1_root=tmp_path / "nov1", v2_mount=tmp_path / "nocg2", v2_own="/x")
    assert lim.mode == "rlimit", lim.detail
    child = subprocess.Popen(["sleep", "30"])
    try:
        default = lim.create("r1", _own(tmp_path))
        assert "memory" not in default.enforced, default.enforced  # no note on every run
        assert "default limit is not kept" in lim.can_enforce()["memory"]  # the doctor says
        default.attach(child.pid)
        assert resource.prlimit(child.pid, resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
        own = lim.create("r2", Limits(memory_bytes=1 << 30))
        own.attach(child.pid)  # a limit the person set is kept as it was
        assert resource.prlimit(child.pid, resource.RLIMIT_AS)[0] == 1 << 30
    finally:
        child.kill()
        child.wait()
