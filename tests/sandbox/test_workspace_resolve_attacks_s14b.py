"""Review s14b: `_resolve_as` (console/sandbox/workspaces.py) compared with the kernel's own
resolution as the teammate (the oracle: `realpath` run as that user with setpriv).

Each test asserts the SECURE behaviour: it fails while the attack works. Needs root (the
daemon's view of a teammate) and the test user phoutsider.
"""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from console.sandbox.workspaces import Refusal, find_workspace

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")


def _outsider() -> tuple[int, int]:
    try:
        p = pwd.getpwnam("phoutsider")
    except KeyError:
        pytest.skip("no user phoutsider")
    return p.pw_uid, p.pw_gid


def _kernel_as(uid: int, gid: int, path: str, cwd: str = "/") -> str | None:
    """realpath -e as uid: the kernel's answer, None when it refuses."""
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "realpath",
                        "-e", "--", path], capture_output=True, text=True, cwd=cwd, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else None


def _passable(top: Path) -> None:
    """Every folder above `top` (below /tmp) passable for anyone, as a teammate's way in."""
    for p in top.parents:
        if str(p) in ("/", "/tmp"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o011)


@pytest.fixture
def hidden_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the teammate could write, under a parent they may pass (0711) but not list:
    its name is a secret to them."""
    top = tmp_path_factory.mktemp("s14b-ws")
    os.chmod(top, 0o755)
    _passable(top)
    parent = top / "lockbox"
    parent.mkdir(mode=0o711)
    os.chmod(parent, 0o711)
    secret = parent / "secret-name-7f3a9c"
    secret.mkdir()
    os.chmod(secret, 0o777)
    return secret


def test_a_daemons_proc_cwd_link_is_not_followed_for_a_teammate(
        hidden_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/<daemon pid>/cwd: the kernel refuses it to a teammate (ptrace access mode), but
    `_resolve_as` only checks mode bits (the link is lrwxrwxrwx in a dr-xr-xr-x folder) and
    reads the link with the daemon's rights. The teammate gets the daemon's working folder as
    their workspace, including a name they could not list; a refusal later names it in full."""
    uid, gid = _outsider()
    monkeypatch.chdir(hidden_dir)  # the daemon's cwd (a daemon started from a project folder)
    asked = f"/proc/{os.getpid()}/cwd"
    kernel = _kernel_as(uid, gid, asked)
    ours = find_workspace(Path(asked), uid, gid)
    assert kernel is None, "(the oracle: the kernel refuses another user's /proc/<pid>/cwd)"
    assert isinstance(ours, Refusal), (
        f"{asked} resolved for the teammate to {ours}, which the kernel refuses them")


def test_proc_self_is_not_the_daemon_for_a_teammate(
        hidden_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc/self/cwd names the asker's own cwd to the kernel; `_resolve_as` reads
    /proc/self as the daemon and hands the teammate the DAEMON's working folder."""
    uid, gid = _outsider()
    monkeypatch.chdir(hidden_dir)
    ours = find_workspace(Path("/proc/self/cwd"), uid, gid)
    assert not (not isinstance(ours, Refusal) and ours == hidden_dir), (
        f"/proc/self/cwd resolved for the teammate to the daemon's cwd {ours}")


def test_a_path_longer_than_path_max_is_refused_like_the_kernel_and_fast(
        hidden_dir: Path) -> None:
    """The kernel answers ENAMETOOLONG past PATH_MAX (4096). `_resolve_as` walks any length,
    two or three stat calls a part, on the daemon's event loop (open_workspace is called from
    RunManager.start without a thread): a 4 MiB `run --workspace` blocks every console and
    run for seconds, and resolves where the kernel refuses."""
    uid, gid = _outsider()
    top = hidden_dir.parent.parent  # 0755, reachable
    (top / "d").mkdir(exist_ok=True)
    asked = str(top) + "/" + "d/../" * 200_000  # 1 MB; a client may send 4 MiB
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "stat",
                        "-c", "%n", "--", str(top) + "/" + "d/../" * 1000],
                       capture_output=True, text=True, timeout=30)  # the kernel's own lookup
    assert r.returncode != 0 and "too long" in r.stderr, "(the oracle: File name too long)"
    ours = find_workspace(Path(asked), uid, gid)  # (no timing asserted: refused, not walked)
    assert isinstance(ours, Refusal) and "the kernel takes" in ours.reason, (
        f"a {len(asked)}-byte path: resolved to {ours} instead of refused as the kernel does")


def _deny_user_acl(path: Path, uid: int) -> None:
    """setfacl -m u:<uid>:--- path, written as the xattr (no acl tools needed): mode bits
    stay 0755."""
    import struct
    own = 0xFFFFFFFF
    entries = [(0x01, 7, own), (0x02, 0, uid), (0x04, 5, own), (0x10, 5, own), (0x20, 5, own)]
    os.setxattr(path, "system.posix_acl_access", struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries))


def test_a_folder_closed_to_the_teammate_by_an_acl_is_not_a_workspace_for_them(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """`_allows` reads only the mode bits. A folder its admin closed to one user with a POSIX
    ACL (mode 0755, `u:phoutsider:---`) is closed to them for the kernel, but `_resolve_as`
    and `check_workspace` let them through: the run mounts, with the daemon's (root's) rights,
    a folder its requester cannot even look into, and the agent reads it for them."""
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.workspaces import check_workspace
    uid, gid = _outsider()
    top = tmp_path_factory.mktemp("s14b-acl")
    os.chmod(top, 0o755)
    _passable(top)
    closed = top / "closed"
    closed.mkdir()
    os.chmod(closed, 0o755)
    proj = closed / "proj"
    proj.mkdir()
    os.chmod(proj, 0o777)
    (proj / "secret.txt").write_text("only for people the ACL lets in\n")
    try:
        _deny_user_acl(closed, uid)
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs here: {exc}")
    kernel = _kernel_as(uid, gid, str(proj))
    assert kernel is None, "(the oracle: the kernel refuses the teammate)"
    found = find_workspace(proj, uid, gid)
    if isinstance(found, Refusal):
        return
    fd = open_dir_nofollow(found)
    try:
        refusal = check_workspace(found, fd, uid, gid, [])
    finally:
        os.close(fd)
    assert refusal is not None, (
        f"{proj}: closed to the teammate by an ACL, yet accepted as their workspace")


def test_a_folder_opened_to_the_teammate_by_an_acl_is_their_workspace(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The other way round (the fix reads the ACL as the kernel does, it does not just refuse
    every folder with one): mode 0700 for root, an ACL `u:phoutsider:rwx` with its mask. The
    kernel lets the teammate in and write; so does the workspace check."""
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.workspaces import check_workspace
    uid, gid = _outsider()
    top = tmp_path_factory.mktemp("s14b-acl-open")
    os.chmod(top, 0o755)
    _passable(top)
    proj = top / "proj"
    proj.mkdir()
    os.chmod(proj, 0o700)
    own = 0xFFFFFFFF
    entries = [(0x01, 7, own), (0x02, 7, uid), (0x04, 0, own), (0x10, 7, own), (0x20, 0, own)]
    os.setxattr(proj, "system.posix_acl_access", struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries))
    assert _kernel_as(uid, gid, str(proj)) == str(proj), "(the oracle: the kernel lets them in)"
    found = find_workspace(proj, uid, gid)
    assert found == proj, found
    fd = open_dir_nofollow(found)
    try:
        assert check_workspace(found, fd, uid, gid, []) is None
    finally:
        os.close(fd)
