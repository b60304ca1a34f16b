"""The bubblewrap probe must not depend on mounts that come and go elsewhere on the host.

The probe (`probe_bwrap`, what `usable()` and the doctor run) bound the whole host root, so
bwrap remounted every mount on it read-only, other runs' workspace views included. A view
unmounted at another run's end (this daemon's, or a teammate's) between bwrap's listing and its
remount failed the probe: "Can't bind mount /oldroot/ on /newroot/: Unable to apply mount
flags: remount .../runs/k8fj/.view/.vscode: No such file or directory" (seen in the s23 fresh
check, a test beside others), and the backend kept that failure: every later bwrap run of
that daemon was refused as "no sandbox is usable here" until it restarted. Now the probe binds
what the sandbox itself binds of the host (/usr and the /bin, /lib links), and a failure is
remembered for a few seconds only, as the Docker backend's is.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

import pytest

from console.sandbox import bwrap as bwrap_mod
from console.sandbox.bwrap import BwrapBackend, find_bwrap, probe_bwrap
from tests.conftest import needs_bwrap

pytestmark = needs_bwrap

PROBES = 100


def _churn(where: Path, stop: threading.Event) -> int:
    """Views coming and going, as runs start and end: a folder made, a tmpfs mounted on it,
    then unmounted and the folder removed (a mountpoint removed on the host is unmounted in
    every other mount namespace holding a copy of it: bwrap's, half way through its remounts).
    Returns how many came and went."""
    libc = ctypes.CDLL(None, use_errno=True)
    n = 0
    while not stop.is_set():
        dirs = [where / f"m{n}-{i}" for i in range(8)]
        for d in dirs:
            d.mkdir()
            libc.mount(b"tmpfs", str(d).encode(), b"tmpfs", 0, b"size=64k")
        time.sleep(0.0005)  # about as long as bwrap takes from its mount table to a remount
        for d in dirs:
            libc.umount2(str(d).encode(), 2)  # MNT_DETACH, as a view's close does
            d.rmdir()
        n += 1
    return n


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_the_probe_is_not_failed_by_mounts_coming_and_going(tmp_path: Path) -> None:
    bwrap = find_bwrap()
    assert bwrap is not None
    stop = threading.Event()
    churned: list[int] = []
    t = threading.Thread(target=lambda: churned.append(_churn(tmp_path, stop)), daemon=True)
    t.start()
    try:
        failed = [why for ok, why in (probe_bwrap(bwrap) for _ in range(PROBES)) if not ok]
    finally:
        stop.set()
        t.join(10)
    assert churned and churned[0] > 0, "no mount came and went during the probes"
    assert not failed, f"{len(failed)} of {PROBES} probes failed: {failed[0]}"


def test_a_failed_probe_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    answers = [(False, "bubblewrap cannot create a sandbox here: a passing failure"), (True, "")]

    def probe(path: str, timeout: float = 10.0) -> tuple[bool, str]:
        calls.append(path)
        return answers[min(len(calls), len(answers)) - 1]

    monkeypatch.setattr(bwrap_mod, "probe_bwrap", probe)
    backend = BwrapBackend(bwrap=find_bwrap())
    assert backend.usable()[0] is False
    assert backend.usable()[0] is False and len(calls) == 1, "a failure is kept a moment"
    monkeypatch.setattr(bwrap_mod, "PROBE_FAILURE_TTL", -1.0)  # that moment has passed
    assert backend.usable() == (True, ""), "then the probe runs again"
    assert backend.usable() == (True, "") and len(calls) == 2, "a success is kept"
