"""Review h184: a workspace an earlier run's agent made hostile, then a second run started in it.

A host service listening in the workspace (a dev server's socket in `tmp/sockets`) is covered at
each start (review h167): the start looks for sockets in the walk for nested repositories. The
agent of an earlier run could put the socket where that walk does not reach: its folder made
unreadable (a person's daemon cannot open it; the agent, its owner, opens it again in the next
run), or moved more than 256 folders down (the walk stops there). The socket moves with its
folder and the service keeps answering at the new path; the next run's agent reached it, past
the gate.

Also: an include written past the first 64 KiB of a nested repository's config (the start read
no more), and a socket whose name is not UTF-8 (the Docker engine's API cannot name it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from console.sandbox.nested import WALK_MAX_DEPTH
from tests.sandbox.hostile_kit import give

# Connects by a path relative to its folder: a socket's path may be longer than sun_path.
PROBE = r"""
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    os.chdir(sys.argv[1])  # a covered folder is empty
    s.connect(sys.argv[2])
    print("CONNECTED")
except OSError as e:
    print("refused:", e.strerror)
"""


def _python(hostile, request) -> dict:
    return {"image": request.getfixturevalue("python_ref")} if hostile.name.startswith("docker") else {}


def _listen(ws: Path) -> socket.socket:
    """A host service's socket in the workspace, as a dev server leaves it (0777)."""
    folder = ws / "tmp" / "sockets"
    folder.mkdir(parents=True)
    (ws / "probe.py").write_text(PROBE)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "app.sock"))
    os.chmod(folder / "app.sock", 0o777)
    listener.listen(4)
    listener.setblocking(False)
    return listener


async def _second_run(hostile, request, listener: socket.socket, script: str, where: str) -> None:
    r = await hostile.run(f"{script}; python3 probe.py {where} app.sock 2>&1", **_python(hostile, request))
    assert "refused:" in r.out or "CONNECTED" in r.out, r.out
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert "CONNECTED" not in r.out, r.out
    assert any(" covered" in n for n in r.handle.notes), r.handle.notes  # the person is told


@pytest.mark.parametrize(("folder", "mode"), [("tmp", "000"), ("tmp/sockets", "600")],
                         ids=["unreadable", "unsearchable"])
async def test_a_socket_in_a_folder_made_unreadable_is_still_covered(hostile, request, folder, mode):
    """Run 1's agent takes read and search off the socket's folder (or search alone, review
    h187: the walk listed the socket but could not look at it); run 2's gives them back."""
    listener = _listen(hostile.workspace)
    try:
        give(hostile, hostile.workspace / "tmp", hostile.workspace / "probe.py")
        first = await hostile.run(f"chmod {mode} {folder} && echo PLANTED")
        assert "PLANTED" in first.out, first.out
        await _second_run(hostile, request, listener, f"chmod 755 {folder}", "tmp/sockets")
    finally:
        listener.close()
        os.chmod(hostile.workspace / folder, 0o755)


async def test_a_socket_moved_below_the_walks_depth_is_still_covered(hostile, request):
    """Run 1's agent moves the socket's folder (the mask inside it goes along) 260 folders
    down; the service answers at the new path."""
    listener = _listen(hostile.workspace)
    deep = "/".join(["d"] * (WALK_MAX_DEPTH + 4))
    try:
        give(hostile, hostile.workspace / "tmp", hostile.workspace / "probe.py")
        first = await hostile.run(f"mkdir -p {deep} && mv tmp/sockets {deep}/s && echo PLANTED")
        assert "PLANTED" in first.out, first.out
        await _second_run(hostile, request, listener, "true", f"{deep}/s")
    finally:
        listener.close()


# Run 1's agent makes a nested repository (reported at that run's end as made) whose config
# includes a file of the workspace after 80 KB of comments: the start read the first 64 KiB of
# a config for what it includes or runs, git reads all of it.
NESTED = r"""
mkdir -p sub/.git/objects sub/.git/refs sub/.git/hooks && echo 'ref: refs/heads/main' > sub/.git/HEAD
i=0; while [ $i -lt 1300 ]; do echo "# a comment line to push the include past what was read ....."; i=$((i+1)); done > sub/.git/config
printf '[include]\n\tpath = ../../notes.cfg\n' >> sub/.git/config
echo benign > notes.cfg && echo PLANTED
"""


async def test_what_a_long_nested_config_includes_stays_read_only(hostile):
    """Run 2's agent wrote the included file (`[core] fsmonitor = ...`: git on the host runs
    it in that repository), unseen: it was not read-only and not watched."""
    first = await hostile.run(NESTED)
    assert "PLANTED" in first.out, first.out
    r = await hostile.run("printf '[core]\\n\\tfsmonitor = \"touch /tmp/x\"\\n' > notes.cfg "
                          "&& echo WROTE; cat notes.cfg")
    assert "WROTE" not in r.out and "benign" in r.out, r.out


def test_a_config_too_long_to_read_whole_refuses_the_run(tmp_path):
    """Past CONFIG_MAX what a config names cannot all be protected: the start says so."""
    from console.sandbox.base import SandboxError
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.gitconfig import CONFIG_MAX
    from console.sandbox.protect import plan_protection

    git = tmp_path / "sub" / ".git"
    for d in ("objects", "refs", "hooks"):
        (git / d).mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "config").write_text("#" * CONFIG_MAX + "\n[include]\n\tpath = ../../notes.cfg\n")
    fd = open_dir_nofollow(tmp_path)
    try:
        with pytest.raises(SandboxError, match="sub/.git/config .* larger than"):
            plan_protection(fd)
    finally:
        os.close(fd)


UNNAMED_PROBE = r"""
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(b"tmp/\xffapp.sock")
    print("CONNECTED")
except OSError as e:
    print("refused:", e.strerror)
"""


async def test_a_socket_whose_name_is_not_utf8_is_covered(hostile, request):
    """A name that is not UTF-8 (`tmp/\\xffapp.sock`): the Docker engine's API is JSON, which
    cannot name it; a person's daemon handed it `tmp/\\ufffdapp.sock`, the engine made that
    file in the workspace and covered it, the real socket answered, and the notes said it was
    covered. Bubblewrap and the root daemon's staged view failed the start on the name
    (UnicodeEncodeError). Now the name is given as its bytes; a person's Docker run is refused,
    saying which path."""
    ws = hostile.workspace
    (ws / "tmp").mkdir()
    (ws / "probe.py").write_text(UNNAMED_PROBE)
    give(hostile, ws / "tmp", ws / "probe.py")
    sock = os.fsencode(ws / "tmp") + b"/\xffapp.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock)
    os.chmod(sock, 0o777)
    listener.listen(4)
    listener.setblocking(False)
    try:
        try:
            r = await hostile.run("python3 probe.py 2>&1", **_python(hostile, request))
        except Exception as e:  # noqa: BLE001 - a person's Docker run is refused
            assert hostile.name == "docker-user" and "not UTF-8" in str(e), e
        else:
            assert "refused:" in r.out and "CONNECTED" not in r.out, r.out
        with pytest.raises(BlockingIOError):
            listener.accept()
        assert os.listdir(os.fsencode(ws / "tmp")) == [b"\xffapp.sock"]  # nothing made beside it
    finally:
        listener.close()
