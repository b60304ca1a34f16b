"""A bubblewrap start that raised after the workspace view was made left the view mounted.

Seen with a NameError inside bwrap_args.build_args: the person was told the run could not
start ("a bug in Pilothouse"), but the start closed the view only for an OSError. The staged
view stayed mounted in the run folder, which went back to the spare folders as `.spare-*` (still
`.spare-*/.view`, with every mask on it), its hand-off stayed mounted under
/run/pilothouse-handoff, the mask mount points stayed made in the person's workspace, and the
daemon's stop removed spares only where nothing was mounted. The masks' mount points are the
workspace's own files (the view is a clone of it): `rm -rf` of the workspace failed with EBUSY
on `.git/config`, `.git/hooks`, `.vscode`, `.claude`, `.envrc` ...

Real daemon, real bubblewrap, real view; the bug is put into the daemon the way it came: a
sitecustomize on the daemon's PYTHONPATH (tests/conftest.py) makes a start raise at a chosen
point, before bubblewrap runs (build_args) or after it runs and before it is released (the
view's notes read for the run). After two failed starts (the second takes the spare the first's
refill made) and the daemon's stop, nothing is mounted under the test's folders, the workspace is
as it was, and it can be deleted. (The second point, once the handle closed the view there, hung
the start: bwrap's child, blocked on --block-fd, outlived bwrap's kill and held the output pipe;
the kill now finds it first.)

And a view that some way out never closes at all: the daemon's stop detaches it from the spare
folder its run's folder became, and its hand-off (found by the folder's inode), and removes the
folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import REPO, daemon_with_sitecustomize, needs_bwrap
from tests.sandbox.hostile_kit import git_repo

pytestmark = [
    needs_bwrap,
    pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon stages the view (mounts)"),
]

WHO = '''
import pathlib, console
pathlib.Path({marker!r}).write_text(console.__file__)
'''

# Where a start raises: before bubblewrap runs, and after it runs (before it is released).
BUGS = {
    "build_args": '''
from console.sandbox import bwrap
def build_args(*a, **k):
    raise NameError("name 'oops' is not defined")
bwrap.build_args = build_args
''',
    "after_bwrap_runs": '''
from console.sandbox import view
def notes(self):
    raise NameError("name 'oops' is not defined")
view.WorkspaceView.notes = property(notes)
''',
}

CONFIG = '[profiles.plain]\ncommand = ["/bin/echo", "hello"]\nsandbox = "bwrap"\n'


def _mounts_of(folder: Path) -> list[str]:
    """Mount points under `folder`, and those anywhere whose source lies under it (the
    hand-offs under /run/pilothouse-handoff), from this process's mountinfo. (mountinfo's root
    field is the path within its file system: a hand-off is seen so when `folder` is on the
    file system mounted at `/`, as the suite's temporary folders are here.)"""
    inside = os.path.realpath(folder).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split(" ")
            root, point = fields[3], fields[4]
            if point.startswith(inside) or root.startswith(inside):
                out.append(point)
    return out


def _unmount_all(folder: Path) -> None:
    """What the test leaves mounted (before the fix), deepest first, so its folder goes; the
    hand-off folders of those mounts too."""
    for _ in range(3):
        points = sorted(set(_mounts_of(folder)), key=len, reverse=True)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True)
            if point.startswith("/run/pilothouse-handoff/") and point.endswith("/run"):
                for gone in (Path(point), Path(point).parent):
                    with contextlib.suppress(OSError):
                        gone.rmdir()


def _what_is_left(home: Path, tmp_path: Path, workspace: Path) -> list[str]:
    """What the daemon's stop left: mounts (those on the workspace's own files by name), and
    spare folders."""
    wrong = []
    left = _mounts_of(tmp_path)
    if left:
        wrong.append(f"{len(left)} mounted after the daemon's stop: {left}")
    on_ws = sorted({rel for p in left if (rel := p.partition("/.view/")[2])})
    if on_ws:
        wrong.append(f"workspace files that are mount points (in the view): {on_ws}")
    spares = sorted(p.name for p in (home / "runs").glob(".spare-*"))
    if spares:
        wrong.append(f"spare folders left by the daemon's stop: {spares}")
    return wrong


def _rm(workspace: Path) -> list[str]:
    """`rm -rf` of the workspace: what it could not remove (EBUSY on a mount point)."""
    failed: list[str] = []
    shutil.rmtree(workspace, onerror=lambda _f, path, exc: failed.append(f"{path}: {exc[1]}"))
    return [f"rm -rf of the workspace failed: {failed}"] if failed else []


def _tree(ws: Path) -> set[str]:
    return {str(p.relative_to(ws)) for p in ws.rglob("*")}


@pytest.mark.parametrize("where", sorted(BUGS))
def test_a_start_that_raises_leaves_nothing_mounted(where: str, home: Path,
                                                    daemon_env: dict[str, str], workspace: Path,
                                                    tmp_path: Path) -> None:
    git_repo(workspace)
    before = _tree(workspace)
    marker = tmp_path / "console-file"
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks",
                                  WHO.format(marker=str(marker)) + BUGS[where], CONFIG)
    # The clone's code in the daemon, whatever package is installed.
    d.env["PYTHONPATH"] = f"{tmp_path / 'hooks'}:{REPO}"
    try:
        d.start()
        assert Path(marker.read_text()).is_relative_to(REPO), marker.read_text()
        with Client(resolve(home), autostart=False) as client:
            for _ in range(2):  # the second start takes the spare folder the first one's made
                with pytest.raises(ClientError) as refused:
                    client.call("run.start", profile="plain", workspace=str(workspace))
                assert "could not start" in str(refused.value), refused.value
                assert "NameError" in str(refused.value), refused.value
            left_live = _mounts_of(tmp_path)
        d.stop()
        assert "NameError: name 'oops' is not defined" in d.log(), d.log()
        wrong = _what_is_left(home, tmp_path, workspace)
        if left_live:
            wrong.insert(0, f"{len(left_live)} mounted after the failed starts: {left_live}")
        if _tree(workspace) != before:
            wrong.append(f"the workspace changed: {sorted(_tree(workspace) ^ before)}")
        wrong += _rm(workspace)
        assert not wrong, "\n".join(wrong)
    finally:
        d.stop()
        _unmount_all(tmp_path)


# A view some way out never closes (close() does nothing): the daemon's stop still detaches it
# from the spare folder its run's folder became, and its hand-off; the mask mount points it made
# in the workspace stay (only close() knows them) but are mount points no more.
NEVER_CLOSED = BUGS["build_args"] + '''
from console.sandbox import view
view.WorkspaceView.close = lambda self: None
'''


def test_the_daemons_stop_detaches_a_view_left_in_a_spare_folder(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    git_repo(workspace)
    marker = tmp_path / "console-file"
    d = daemon_with_sitecustomize(home, daemon_env, tmp_path / "hooks",
                                  WHO.format(marker=str(marker)) + NEVER_CLOSED, CONFIG)
    d.env["PYTHONPATH"] = f"{tmp_path / 'hooks'}:{REPO}"
    try:
        d.start()
        assert Path(marker.read_text()).is_relative_to(REPO), marker.read_text()
        with Client(resolve(home), autostart=False) as client:
            with pytest.raises(ClientError, match="could not start"):
                client.call("run.start", profile="plain", workspace=str(workspace))
        left_live = [p for p in _mounts_of(tmp_path) if "/.spare-" in p]
        assert left_live, "the test's view was closed after all: it tests nothing"
        d.stop()
        wrong = _what_is_left(home, tmp_path, workspace) + _rm(workspace)
        assert not wrong, "\n".join(wrong)
    finally:
        d.stop()
        _unmount_all(tmp_path)
