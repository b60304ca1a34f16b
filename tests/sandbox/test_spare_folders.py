"""Run folders made ahead of time (console/sandbox/spare_folders.py): a spare is the same folder
a fresh start would make, it is never used once what it was made from has changed, and no
spare outlives its daemon."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import console.agents as agents
from console.paths import resolve
from console.sandbox.base import prepare_run_dir
from console.sandbox.spare_folders import SPARE_PREFIX, SpareRunFolders, sweep_spares
from tests.conftest import Daemon, needs_bwrap

PY = "/usr/bin/python3"


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under root: its mode, and a file's bytes."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mode, path.read_bytes() if name in files else None)
    return out


def _wait_ready(folders: SpareRunFolders, interpreter: str | None) -> None:
    deadline = time.monotonic() + 10
    while not folders.ready(interpreter):
        assert time.monotonic() < deadline, "no spare was made"
        time.sleep(0.01)


@pytest.fixture
def host_settings(tmp_path, monkeypatch) -> Path:
    """The host's managed Claude settings, as a file this test can edit."""
    path = tmp_path / "managed-settings.json"
    path.write_text(json.dumps({"env": {"ORG": "first"}}))
    monkeypatch.setattr(agents, "HOST_MANAGED_SETTINGS", path)
    return path


def test_a_spare_is_the_folder_a_fresh_start_makes(tmp_path, host_settings):
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = SpareRunFolders(runs)
    folders.refill(PY)
    _wait_ready(folders, PY)
    (runs / "abcd").mkdir(mode=0o755)  # what the run manager reserves the id with
    assert folders.take(runs / "abcd", PY) == []
    assert not list(runs.glob(f"{SPARE_PREFIX}*"))  # renamed into place, not copied
    prepare_run_dir(tmp_path / "fresh", interpreter=PY)
    assert _tree(runs / "abcd") == _tree(tmp_path / "fresh")
    folders.close()


def test_a_spare_is_kept_per_interpreter(tmp_path, host_settings):
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = SpareRunFolders(runs)
    folders.refill(PY)
    _wait_ready(folders, PY)
    assert not folders.ready(None)
    (runs / "ctr1").mkdir()
    folders.take(runs / "ctr1", None)  # a container's folder: sh wrappers, made afresh
    assert (runs / "ctr1" / "bin" / "ph-ask").read_text().startswith("#!/bin/sh")
    assert folders.ready(PY)  # the bwrap spare is still there for the next bwrap run
    folders.close()


def test_a_spare_made_before_the_host_settings_changed_is_not_used(tmp_path, host_settings):
    """An organisation edits its managed Claude settings between two runs: the next run must
    carry the new ones, not what a spare was made from."""
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = SpareRunFolders(runs)
    folders.refill(PY)
    _wait_ready(folders, PY)
    host_settings.write_text(json.dumps({"env": {"ORG": "second"}}))
    (runs / "abcd").mkdir()
    folders.take(runs / "abcd", PY)
    written = json.loads((runs / "abcd" / agents.MANAGED_DIR / "managed-settings.json").read_text())
    assert written["env"] == {"ORG": "second"}
    assert not list(runs.glob(f"{SPARE_PREFIX}*"))  # the stale spare is gone too
    folders.close()


def test_a_spare_made_before_the_helper_changed_is_not_used(tmp_path, host_settings, monkeypatch):
    helper = tmp_path / "inside.py"
    helper.write_text("print('first')\n")
    monkeypatch.setattr("console.sandbox.spare_folders.default_helper_src", lambda: helper)
    monkeypatch.setattr("console.sandbox.base.default_helper_src", lambda: helper)
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = SpareRunFolders(runs)
    folders.refill(PY)
    _wait_ready(folders, PY)
    helper.write_text("print('second')\n")
    (runs / "abcd").mkdir()
    folders.take(runs / "abcd", PY)
    assert (runs / "abcd" / "bin" / "inside.py").read_text() == "print('second')\n"
    folders.close()


def test_close_removes_spares_and_refuses_new_ones(tmp_path, host_settings):
    runs = tmp_path / "runs"
    runs.mkdir()
    folders = SpareRunFolders(runs)
    folders.refill(PY)
    _wait_ready(folders, PY)
    folders.close()
    folders.refill(PY)
    assert list(runs.iterdir()) == []
    (runs / f"{SPARE_PREFIX}left-by-a-dead-daemon" / "bin").mkdir(parents=True)
    sweep_spares(runs)
    assert list(runs.iterdir()) == []


@needs_bwrap
def test_the_daemon_makes_spares_and_leaves_none(daemon: Daemon, workspace: Path):
    runs = resolve(daemon.home).runs_dir

    def helper_in_sandbox() -> str:
        done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                          "command -v ph-ask && test -s /run/pilothouse/bin/inside.py && echo ok")
        return done.stdout

    def spares(n: int) -> list[Path]:
        deadline = time.monotonic() + 10
        while len(found := sorted(runs.glob(f"{SPARE_PREFIX}*"))) != n:
            assert time.monotonic() < deadline, found
            time.sleep(0.02)
        return found

    assert "ok" in helper_in_sandbox()
    [spare] = spares(1)  # made once the first run had started
    assert "ok" in helper_in_sandbox()  # the second run's folder is that spare
    assert not spare.exists()
    spares(1)  # and the next one is made
    daemon.stop()
    assert spares(0) == []  # a stopped daemon leaves no spare behind
    (runs / f"{SPARE_PREFIX}left-by-a-dead-daemon").mkdir()
    daemon.start()
    assert spares(0) == []  # nor does a daemon that died: the next start sweeps them
