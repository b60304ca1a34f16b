"""A start cut short while its workspace view is still to be made (s25 review, finding 4).

open_view hands the view's making to a thread and, cut short, leaves the thread to finish and
close what it made. The thread used to duplicate the workspace descriptor only when it ran: the
run manager, unwinding the cancelled start, closes that descriptor at once, and the daemon's
next open() takes the same number. The late thread then planned and made its mask mountpoints
in whatever folder that number had become. The descriptor is now duplicated before the thread
is handed the work, and the view owns the copy."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from console.sandbox import view as view_mod
from console.sandbox.base import SandboxSpec


def _spec(ws: Path, run_dir: Path, fd: int) -> SandboxSpec:
    return SandboxSpec(run_id="cut1", profile="test", command=["true"], workspace=ws,
                       run_dir=run_dir, env={}, workspace_fd=fd,
                       requester=(os.getuid(), os.getgid()))


async def test_a_cut_start_never_views_the_folder_that_took_its_descriptor_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, decoy, run_dir = tmp_path / "ws", tmp_path / "decoy", tmp_path / "runs" / "cut1"
    for d in (ws, decoy, run_dir):
        d.mkdir(parents=True)
    # Each holds a repository: a view makes mask mountpoints for its absent protected paths.
    for d in (ws, decoy):
        (d / ".git").mkdir()
    before = sorted(p.relative_to(decoy) for p in decoy.rglob("*"))
    go, made = threading.Event(), []
    real_open = view_mod.WorkspaceView.open.__func__  # type: ignore[attr-defined]

    def late_open(cls: Any, *a: Any, **k: Any) -> Any:
        go.wait(10)  # the thread runs only after the start was cut and its descriptor closed
        v = real_open(cls, *a, **k)
        made.append((v.key, v))
        return v

    monkeypatch.setattr(view_mod.WorkspaceView, "open", classmethod(late_open))
    ws_fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    task = asyncio.ensure_future(view_mod.open_view(_spec(ws, run_dir, ws_fd)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    os.close(ws_fd)  # the run manager's unwinding closes its descriptor
    decoy_fd = os.open(decoy, os.O_RDONLY | os.O_DIRECTORY)  # ...and the number is taken again
    try:
        assert decoy_fd == ws_fd  # the number is the same: what the thread would have used
        go.set()
        for _ in range(500):
            if made:
                break
            await asyncio.sleep(0.01)
        assert made, "the view thread never finished"
        key, _view = made[0]
        st = os.stat(ws)
        assert key == (st.st_dev, st.st_ino), "the late view was made of another folder"
        await asyncio.sleep(0.05)  # the done callback closes the view made after the cut
        assert sorted(p.relative_to(decoy) for p in decoy.rglob("*")) == before
    finally:
        os.close(decoy_fd)
