"""Run folders kept for the next start (console/sandbox/spare_folders.py): a spare is the same
folder a fresh start would make; an ended run's folder is a spare again only with everything the
run added removed and nothing it was made with changed, and never through a mount; a spare is
not used once what it was made from has changed; no spare outlives its daemon."""

from __future__ import annotations

import ctypes
import json
import os
import socket
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
    """Every entry under root: its mode, and a file's bytes (a link's target: ~/.codex holds
    links into a folder that is a tmpfs in the sandbox, agents/codex_home.py)."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            data = (os.fsencode(os.readlink(path)) if path.is_symlink()
                    else path.read_bytes() if name in files else None)
            out[str(path.relative_to(root))] = (st.st_mode, data)
    return out


def _wait_ready(folders: SpareRunFolders, interpreter: str | None, n: int = 1) -> None:
    deadline = time.monotonic() + 10
    while folders.ready(interpreter) < n:
        assert time.monotonic() < deadline, "no spare was made"
        time.sleep(0.01)


def _folders(tmp_path: Path) -> tuple[Path, SpareRunFolders]:
    runs = tmp_path / "runs"
    runs.mkdir()
    return runs, SpareRunFolders(runs)


def _with_spare(tmp_path: Path) -> tuple[Path, SpareRunFolders]:
    """A runs folder whose SpareRunFolders has one bwrap spare ready."""
    runs, folders = _folders(tmp_path)
    folders.refill(PY)
    _wait_ready(folders, PY)
    return runs, folders


def _taken(tmp_path: Path) -> tuple[Path, SpareRunFolders]:
    """runs/run1 made (no spare yet) and lent to a run."""
    runs, folders = _folders(tmp_path)
    (runs / "run1").mkdir()
    folders.take(runs / "run1", PY)
    return runs, folders


def _precious(folder: Path) -> Path:
    """A person's folder with a file that must survive."""
    folder.mkdir()
    (folder / "precious").write_text("keep me")
    return folder


def _bind(source: Path, target: Path) -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(str(source).encode(), str(target).encode(), None, 4096, None) != 0:  # MS_BIND
        pytest.skip(f"cannot bind-mount here: {os.strerror(ctypes.get_errno())}")
    return libc


def _emptied(runs: Path) -> None:
    """Deleted folders go in the remover's thread: wait for it."""
    deadline = time.monotonic() + 10
    while list(runs.iterdir()):
        assert time.monotonic() < deadline, list(runs.iterdir())
        time.sleep(0.02)


@pytest.fixture
def host_settings(tmp_path, monkeypatch) -> Path:
    """The host's managed Claude settings, as a file this test can edit."""
    path = tmp_path / "managed-settings.json"
    path.write_text(json.dumps({"env": {"ORG": "first"}}))
    monkeypatch.setattr(agents, "HOST_MANAGED_SETTINGS", path)
    return path


def test_a_spare_is_the_folder_a_fresh_start_makes(tmp_path, host_settings):
    runs, folders = _with_spare(tmp_path)
    (runs / "abcd").mkdir(mode=0o755)  # what the run manager reserves the id with
    assert folders.take(runs / "abcd", PY) == []
    assert not list(runs.glob(f"{SPARE_PREFIX}*"))  # renamed into place, not copied
    prepare_run_dir(tmp_path / "fresh", interpreter=PY)
    assert _tree(runs / "abcd") == _tree(tmp_path / "fresh")
    folders.close()


def test_a_spare_is_kept_per_interpreter(tmp_path, host_settings):
    runs, folders = _with_spare(tmp_path)
    assert folders.ready(None) == 0
    (runs / "ctr1").mkdir()
    folders.take(runs / "ctr1", None)  # a container's folder: sh wrappers, made afresh
    assert (runs / "ctr1" / "bin" / "ph-ask").read_text().startswith("#!/bin/sh")
    assert folders.ready(PY) == 1  # the bwrap spare is still there for the next bwrap run
    folders.close()


def test_a_spare_made_before_the_host_settings_changed_is_not_used(tmp_path, host_settings):
    """An organisation edits its managed Claude settings between two runs: the next run must
    carry the new ones, not what a spare was made from."""
    runs, folders = _with_spare(tmp_path)
    host_settings.write_text(json.dumps({"env": {"ORG": "second"}}))
    (runs / "abcd").mkdir()
    folders.take(runs / "abcd", PY)
    written = json.loads((runs / "abcd" / agents.MANAGED_DIR / "managed-settings.json").read_text())
    assert written["env"] == {"ORG": "second", **agents.CLAUDE_PINNED_ENV}  # ours pinned last
    assert not list(runs.glob(f"{SPARE_PREFIX}*"))  # the stale spare is gone too
    folders.close()


def test_a_spare_made_before_the_helper_changed_is_not_used(tmp_path, host_settings, monkeypatch):
    helper = tmp_path / "inside.py"
    helper.write_text("print('first')\n")
    monkeypatch.setattr("console.sandbox.spare_folders.default_helper_src", lambda: helper)
    monkeypatch.setattr("console.sandbox.base.default_helper_src", lambda: helper)
    runs, folders = _with_spare(tmp_path)
    helper.write_text("print('second')\n")
    (runs / "abcd").mkdir()
    folders.take(runs / "abcd", PY)
    assert (runs / "abcd" / "bin" / "inside.py").read_text() == "print('second')\n"
    folders.close()


def test_close_removes_spares_and_refuses_new_ones(tmp_path, host_settings):
    runs, folders = _with_spare(tmp_path)
    folders.close()
    folders.refill(PY)
    assert list(runs.iterdir()) == []
    (runs / f"{SPARE_PREFIX}left-by-a-dead-daemon" / "bin").mkdir(parents=True)
    sweep_spares(runs)
    assert list(runs.iterdir()) == []


def _used(run_dir: Path) -> None:
    """What a run adds to its folder: its sockets, carried files, a mask file, the view's
    folder, a link."""
    for name in ("agent.sock", "gate.sock"):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(run_dir / name))
        sock.close()
    (run_dir / "carry" / "deep").mkdir(parents=True)
    (run_dir / "carry" / "deep" / "token").write_text("a secret of run one")
    (run_dir / ".mask" / "content-1234").write_text("gitdir: nothing\n")
    (run_dir / ".view").mkdir()
    (run_dir / "bin" / "odd-link").symlink_to("/etc/passwd")


def test_an_ended_run_s_folder_is_a_spare_again_with_nothing_of_the_run(tmp_path, host_settings):
    runs, folders = _folders(tmp_path)
    (runs / "run1").mkdir()
    folders.take(runs / "run1", PY)  # no spare yet: made in place
    _used(runs / "run1")
    held = os.open(runs / "run1", os.O_RDONLY | os.O_DIRECTORY)  # as a sandbox's bind holds it
    try:
        folders.give_back(runs / "run1")
        assert not (runs / "run1").exists()  # out of its place at once
        _wait_ready(folders, PY)
        (runs / "run2").mkdir()
        folders.take(runs / "run2", PY)
        prepare_run_dir(tmp_path / "fresh", interpreter=PY)
        assert _tree(runs / "run2") == _tree(tmp_path / "fresh")  # the run's additions are gone
        assert list(runs.iterdir()) == [runs / "run2"]
        socket.socket(socket.AF_UNIX).bind(str(runs / "run2" / "agent.sock"))
        # What run one's sandbox held is not run two's folder: it never shows its sockets.
        assert os.listdir(held) == []
        assert os.fstat(held).st_ino != (runs / "run2").stat().st_ino
    finally:
        os.close(held)
    folders.close()


def test_a_changed_folder_is_deleted_not_kept(tmp_path, host_settings):
    runs, folders = _folders(tmp_path)
    for n, change in enumerate((
        lambda d: (d / "bin" / "inside.py").write_text("print('planted')\n"),
        lambda d: (d / "bin" / "ph-ask").chmod(0o777),
        lambda d: (d / "home" / ".gitconfig").unlink(),
        lambda d: (d / "bin" / "ph-ask").unlink() or (d / "bin" / "ph-ask").write_text("#!/bin/sh\n"),
    )):
        run_dir = runs / f"run{n}"
        run_dir.mkdir()
        folders.take(run_dir, PY)
        change(run_dir)
        folders.give_back(run_dir)
    folders.close()  # waits for the thread: every folder was looked at
    assert list(runs.iterdir()) == []  # none was kept, all deleted


def test_a_file_rewritten_in_place_with_its_time_set_back_is_caught(tmp_path, host_settings):
    """Same size, same inode, mtime restored: its ctime still moved."""
    runs, folders = _taken(tmp_path)
    helper = runs / "run1" / "bin" / "inside.py"
    before = helper.stat()
    text = helper.read_text()
    time.sleep(0.01)
    with open(helper, "r+") as fh:
        fh.write("#" + text[1:])  # the same length
    os.utime(helper, ns=(before.st_atime_ns, before.st_mtime_ns))
    folders.give_back(runs / "run1")
    deadline = time.monotonic() + 10
    while not folders.ready(PY) and list(runs.iterdir()):  # until kept, or deleted
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert folders.ready(PY) == 0  # deleted, not kept
    folders.close()


def test_the_folder_of_an_unsandboxed_run_is_never_kept(tmp_path, host_settings):
    runs, folders = _taken(tmp_path)
    folders.give_back(runs / "run1", reusable=False)  # sandbox = "none": its agent could write
    folders.close()
    assert folders.ready(PY) == 0
    _emptied(runs)


def test_a_folder_given_back_after_close_is_deleted(tmp_path, host_settings):
    runs, folders = _taken(tmp_path)
    folders.close()
    folders.give_back(runs / "run1")  # the daemon is stopping: no thread is started again
    assert folders._pool is None  # noqa: SLF001 - nothing left running after close
    _emptied(runs)


def test_a_folder_swapped_for_a_link_is_not_followed(tmp_path, host_settings):
    outside = _precious(tmp_path / "outside")
    runs, folders = _taken(tmp_path)
    import shutil

    shutil.rmtree(runs / "run1" / "home" / ".aider")
    (runs / "run1" / "home" / ".aider").symlink_to(outside)
    folders.give_back(runs / "run1")
    folders.close()
    assert (outside / "precious").read_text() == "keep me"
    assert list(runs.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_mount_is_seen_through_a_linked_runs_folder(tmp_path, host_settings):
    """mountinfo lists resolved paths: a runs folder reached through a link (a symlinked
    state folder) must not hide a mount below it."""
    person = _precious(tmp_path / "person")
    real = tmp_path / "real-runs"
    (real / "abcd" / ".view").mkdir(parents=True)
    linked = tmp_path / "runs"
    linked.symlink_to(real)
    libc = _bind(person, real / "abcd" / ".view")
    try:
        from console.sandbox.base import remove_unmounted
        from console.sandbox.fsview import under_a_mount

        assert under_a_mount(linked / "abcd")
        remove_unmounted(linked / "abcd")
        assert (person / "precious").read_text() == "keep me"
    finally:
        libc.umount2(str(real / "abcd" / ".view").encode(), 2)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_folder_with_a_mount_below_is_neither_kept_nor_deleted_through(tmp_path, host_settings):
    person = _precious(tmp_path / "person")
    runs, folders = _taken(tmp_path)
    (runs / "run1" / ".view").mkdir()
    libc = _bind(person, runs / "run1" / ".view")
    try:
        folders.give_back(runs / "run1")
        folders.close()
        assert folders.ready(PY) == 0
        assert (person / "precious").read_text() == "keep me"
        # The stop detached the view a run left in its folder (a start that failed without
        # closing it: tests/sandbox/test_failed_start_mounts_s32.py), then removed the folder.
        assert list(runs.glob(f"{SPARE_PREFIX}*")) == []
    finally:
        for aside in runs.glob(f"{SPARE_PREFIX}*"):
            libc.umount2(str(aside / ".view").encode(), 2)


@needs_bwrap
def test_the_daemon_makes_spares_and_leaves_none(daemon: Daemon, workspace: Path):
    runs = resolve(daemon.home).runs_dir

    def helper_in_sandbox() -> str:
        done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                          "command -v ph-ask && test -s /run/pilothouse/bin/inside.py && echo ok"
                          " && ls -A /run/pilothouse")
        return done.stdout

    def spares(n: int) -> list[Path]:
        deadline = time.monotonic() + 10
        while len(found := sorted(runs.glob(f"{SPARE_PREFIX}*"))) != n:
            assert time.monotonic() < deadline, found
            time.sleep(0.02)
        return found

    first = helper_in_sandbox()
    assert "ok" in first
    spares(2)  # one made once the first run had started, and the first run's own folder
    for _ in range(3):  # later runs take kept folders and see exactly what the first saw
        assert helper_in_sandbox() == first
        spares(2)  # each run's folder comes back: nothing is made or deleted any more
    daemon.stop()
    assert spares(0) == []  # a stopped daemon leaves no spare behind
    (runs / f"{SPARE_PREFIX}left-by-a-dead-daemon").mkdir()
    daemon.start()
    assert spares(0) == []  # nor does a daemon that died: the next start sweeps them
