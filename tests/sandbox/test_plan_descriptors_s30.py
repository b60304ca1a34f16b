"""Review s30 (helper 100): the descriptors a run's start holds while it plans.

Each protected path is opened and held until the run starts; the bound on how many paths one
start may protect (plan_limits.PROTECTED_MAX) was checked once the whole plan was made. A
nested repository the agent made, whose config includes 20,000 files of the workspace, had the
next start open 20,000 descriptors before its refusal: near the daemon's limit another run's
start failed with EMFILE, and the store's syncer with it (nothing more was recorded until a
restart). The plan is now refused as soon as it passes the bound.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.sandbox import protect
from console.sandbox.base import SandboxError
from console.sandbox.plan_limits import PROTECTED_MAX


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_plan_past_its_bound_is_refused_before_it_holds_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    (ws / "files").mkdir(parents=True)
    (ws / "sub" / ".git").mkdir(parents=True)
    includes = 3 * PROTECTED_MAX
    for i in range(includes):
        (ws / "files" / f"f{i}").write_text("")
    (ws / "sub" / ".git" / "config").write_text(
        "[include]\n" + "".join(f"\tpath = ../../files/f{i}\n" for i in range(includes)))
    held, most = _fds(), [0]
    real_open = protect._open

    def counting(root_fd: int, rel: str) -> tuple[int | None, str]:
        got = real_open(root_fd, rel)
        most[0] = max(most[0], _fds() - held)
        return got

    monkeypatch.setattr(protect, "_open", counting)
    with pytest.raises(SandboxError, match="paths to protect"):
        protect.plan_protection(ws)
    assert most[0] <= PROTECTED_MAX + 64, f"{most[0]} descriptors held by one start's plan"
    assert _fds() <= held, "the refused plan left descriptors open"  # others may close meanwhile
