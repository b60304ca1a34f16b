"""A GPU run under bubblewrap with a memory limit could not start (found reading review h167).

Where bwrap takes `--size` (0.8 and later), a run with a memory limit (every run since s40: the
default is half the machine's memory) gets a read-only /dev (`--remount-ro /dev`, review s32)
and its tmpfs sized. The GPU's device nodes were bound after that remount: bwrap must make
each one's mount point in /dev, and a read-only /dev refuses it ("Can't create file at
/dev/nvidia0: Read-only file system"), so no GPU run started. They are bound before it now.

This machine has no GPU: the device bound is /dev/kmsg, a real character device that bwrap's
own /dev does not have (as it has no /dev/nvidia0), through the same options a GPU run gets.
Real bubblewrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.sandbox.base import Limits, SandboxSpec, prepare_run_dir
from console.sandbox.bwrap import sizes_tmpfs
from console.sandbox.bwrap_args import FdBinds, args_memfd, build_args
from tests.conftest import needs_bwrap

DEVICE = "/dev/kmsg"


def _gpu_spec(tmp_path: Path) -> SandboxSpec:
    ws = tmp_path / "ws"
    ws.mkdir()
    run_dir = tmp_path / "runs" / "r1"
    prepare_run_dir(run_dir)
    return SandboxSpec(run_id="r1", profile="p", command=["true"], workspace=ws, run_dir=run_dir,
                       env={"PATH": "/usr/bin:/bin"}, gpu=True, gpus=[0],
                       limits=Limits(memory_bytes=512 * 2**20))


@needs_bwrap
def test_a_gpu_run_with_a_memory_limit_starts_with_its_devices(tmp_path: Path) -> None:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    if not sizes_tmpfs(bwrap):
        pytest.skip("this bwrap takes no --size: /dev is not made read-only (bwrap < 0.8)")
    if not os.path.exists(DEVICE):
        pytest.skip(f"no {DEVICE} on this machine to stand in for a GPU's device node")
    fds = FdBinds()
    opts = build_args(_gpu_spec(tmp_path), fds=fds, gpu_devices=[DEVICE], tmpfs_sized=True)
    args_fd = args_memfd(opts)
    try:
        done = subprocess.run(
            [bwrap, "--args", str(args_fd), "--", "sh", "-c",
             f"test -c {DEVICE} && echo device-there; touch /dev/x 2>/dev/null || echo dev-ro"],
            pass_fds=[args_fd, *fds.fds], capture_output=True, text=True, timeout=60)
    finally:
        os.close(args_fd)
        fds.close()
    assert done.returncode == 0, f"the GPU run did not start: {done.stderr}"
    assert done.stdout.split() == ["device-there", "dev-ro"], done.stdout + done.stderr
