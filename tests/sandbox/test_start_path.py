"""What a run's start and end cost in work, not in time: git is run once per distinct config
(never for an absent one), and an ended run's folder leaves at once without ever deleting
through a mount. The time itself is bench/sandbox.py's (`pilothouse run --wait` row)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from console.sandbox.base import remove_run_dir, sweep_removed
from console.sandbox.protect import plan_protection


def _git_shim(tmp_path: Path) -> tuple[Path, Path]:
    """A `git` first on PATH that logs each call, then runs the real one."""
    real = shutil.which("git")
    if real is None:
        pytest.skip("git is not installed")
    folder = tmp_path / "shim"
    folder.mkdir()
    log = tmp_path / "git-calls"
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return folder, log


def test_git_config_is_parsed_once_per_text_and_not_when_absent(tmp_path, monkeypatch):
    shim, log = _git_shim(tmp_path)
    ws = tmp_path / "ws"
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "tools").mkdir()
    with open(ws / ".git" / "config", "a") as fh:  # a text no earlier test has parsed
        fh.write(f"[core]\n\thooksPath = ./tools\n[pilothouse-test]\n\tnonce = {uuid.uuid4()}\n")
    assert not (ws / ".git" / "config.worktree").exists()
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")

    plans = [plan_protection(ws), plan_protection(ws)]  # two runs' starts, same config
    try:
        for plan in plans:  # both still protect what the config names
            assert {b.rel: b.kind for b in plan.binds}["tools"] == "ro"
    finally:
        for plan in plans:
            plan.close()
    calls = log.read_text().splitlines() if log.exists() else []
    assert len(calls) == 1, calls  # the config once; config.worktree is absent: no git


def test_changed_git_config_is_parsed_again(tmp_path, monkeypatch):
    shim, log = _git_shim(tmp_path)
    ws = tmp_path / "ws"
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "a").mkdir()
    (ws / "b").mkdir()
    config = ws / ".git" / "config"
    base = config.read_text() + f"[pilothouse-test]\n\tnonce = {uuid.uuid4()}\n"
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    for hooks in ("a", "b"):
        config.write_text(base + f"[core]\n\thooksPath = ./{hooks}\n")
        plan = plan_protection(ws)
        try:
            assert {b.rel: b.kind for b in plan.binds}[hooks] == "ro"
        finally:
            plan.close()
    assert len(log.read_text().splitlines()) == 2


def test_ended_run_folder_is_gone_at_once(tmp_path):
    runs = tmp_path / "runs"
    run_dir = runs / "abcd"
    (run_dir / "bin").mkdir(parents=True)
    (run_dir / "bin" / "inside.py").write_text("x")
    remove_run_dir(run_dir)
    assert not run_dir.exists()  # renamed aside before the call returns; deleted in a thread
    sweep_removed(runs)  # what a restarted daemon does with what a dying one left aside
    assert list(runs.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_removal_never_deletes_through_a_mount(tmp_path):
    """A staged workspace view that could not be detached must not have the person's files
    deleted through it."""
    person = tmp_path / "person"
    person.mkdir()
    (person / "precious").write_text("keep me")
    aside = tmp_path / "runs" / ".gone-abcd-0000"
    (aside / ".view").mkdir(parents=True)
    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind = 4096
    if libc.mount(str(person).encode(), str(aside / ".view").encode(), None, ms_bind, None) != 0:
        pytest.skip(f"cannot bind-mount here: {os.strerror(ctypes.get_errno())}")
    try:
        sweep_removed(tmp_path / "runs")
        assert (person / "precious").read_text() == "keep me"
    finally:
        libc.umount2(str(aside / ".view").encode(), 2)
    sweep_removed(tmp_path / "runs")  # once detached, the folder goes
    assert not aside.exists()
    assert (person / "precious").read_text() == "keep me"


def test_early_cgroup_write_moves_nothing():
    """start_move_early writes the daemon's pid into the cgroup it is already in: afterwards
    every hierarchy still names the same cgroup for it."""
    from console.sandbox.cgroups import Limiter

    lim = Limiter.detect()
    if lim.mode not in ("v1", "v2"):
        pytest.skip(f"no writable cgroups here: {lim.detail}")
    before = Path("/proc/self/cgroup").read_text()
    lim.start_move_early()
    assert Path("/proc/self/cgroup").read_text() == before
