"""A mount whose path is not UTF-8 (a user's FUSE mount at `/tmp/\xff`, a workspace with such a
name handed off) stopped every bwrap start: the cgroup look-up read /proc/self/mountinfo as
UTF-8 and raised (seen in s44's fresh check while another test held such a mount)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

pytestmark = [needs_bwrap,
              pytest.mark.skipif(os.getuid() != 0, reason="mounting in a new namespace needs root")]

CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


def odd_mount(path: bytes) -> None:
    """In the daemon's process, before it starts: a mount namespace of its own, holding a tmpfs
    at `path` (not UTF-8)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0 or \
            libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0 or \
            libc.mount(b"odd", path, b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "could not mount the odd tmpfs")


def test_a_mount_with_a_name_that_is_not_utf8_does_not_stop_runs(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    odd = os.fsencode(tmp_path) + b"/mnt-\xff\xfe"
    os.mkdir(odd)
    (home / "config.toml").write_text("")
    d = Daemon(home, daemon_env, preexec=lambda: odd_mount(odd))
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
