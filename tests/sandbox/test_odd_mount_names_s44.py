"""A mount whose path is not UTF-8 (a user's FUSE mount at `/tmp/\xff`, a workspace with such a
name handed off) stopped every bwrap start: the cgroup look-up read /proc/self/mountinfo as
UTF-8 and raised (seen in s44's fresh check while another test held such a mount)."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, needs_bwrap

pytestmark = [needs_bwrap,
              pytest.mark.skipif(os.getuid() != 0, reason="mounting in a new namespace needs root")]

CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


class OddMountDaemon(Daemon):
    """A daemon in a mount namespace of its own, holding a tmpfs at a path that is not UTF-8."""

    odd: bytes = b""

    def start(self, timeout: float = 20.0) -> None:
        real, odd = subprocess.Popen, self.odd

        def in_own_namespace() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNS) != 0 or \
                    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0 or \
                    libc.mount(b"odd", odd, b"tmpfs", 0, None) != 0:
                raise OSError(ctypes.get_errno(), "could not mount the odd tmpfs")

        def wrapped(*a: Any, **kw: Any) -> Any:
            kw["preexec_fn"] = in_own_namespace
            return real(*a, **kw)

        subprocess.Popen = wrapped  # type: ignore[misc]
        try:
            super().start(timeout)
        finally:
            subprocess.Popen = real  # type: ignore[misc]


def test_a_mount_with_a_name_that_is_not_utf8_does_not_stop_runs(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    odd = os.fsencode(tmp_path) + b"/mnt-\xff\xfe"
    os.mkdir(odd)
    (home / "config.toml").write_text("")
    d = OddMountDaemon(home, daemon_env)
    d.odd = odd
    d.start()
    try:
        ws = tmp_path / "ws"
        ws.mkdir()
        done = d.cli("run", "--wait", "--workspace", str(ws), "shell", "--",
                     "/bin/true", check=False)
        assert done.returncode == 0, (done.stdout, done.stderr, d.log())
        assert "could not reconcile" not in d.log()
    finally:
        d.stop()
