"""operator.sock's permissions re-applied at every reload (open_to_team): no step between the
old [team] group and the new one lets in a group that is neither, and a group that stays the
same never loses the socket for an instant (s42's note: every reload made the socket private
first, so a teammate connecting meanwhile was refused)."""

from __future__ import annotations

import grp
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.daemon import peers
from tests.conftest import ensure_group

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="giving files to other groups needs root")

OLD, NEW = "phsockold", "phsocknew"


def _reachable_by(runtime: Path, sock: Path) -> set[int]:
    """The groups whose members (other than the owner) could connect now: search on the
    folder and read+write on the socket, both through their group bits."""
    d, s = os.stat(runtime), os.stat(sock)
    groups = set()
    if d.st_mode & stat.S_IXGRP and s.st_mode & stat.S_IRGRP and s.st_mode & stat.S_IWGRP \
            and d.st_gid == s.st_gid:
        groups.add(d.st_gid)
    if d.st_mode & stat.S_IXOTH and s.st_mode & stat.S_IROTH and s.st_mode & stat.S_IWOTH:
        groups.add(-1)  # anyone
    return groups


@pytest.fixture
def socket_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    ensure_group(OLD)
    ensure_group(NEW)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    sock_path = runtime / "operator.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    os.chmod(sock_path, 0o600)
    yield runtime, sock_path
    s.close()


def _states(monkeypatch: pytest.MonkeyPatch, runtime: Path, sock: Path) -> list[set[int]]:
    """Who could connect after each chmod/chown open_to_team makes."""
    seen: list[set[int]] = []
    real_chmod, real_chown = os.chmod, os.chown

    def chmod(path: object, mode: int, *a: object, **k: object) -> None:
        real_chmod(path, mode, *a, **k)  # type: ignore[arg-type]
        seen.append(_reachable_by(runtime, sock))

    def chown(path: object, uid: int, gid: int, *a: object, **k: object) -> None:
        real_chown(path, uid, gid, *a, **k)  # type: ignore[arg-type]
        seen.append(_reachable_by(runtime, sock))

    monkeypatch.setattr(peers.os, "chmod", chmod)
    monkeypatch.setattr(peers.os, "chown", chown)
    return seen


def test_the_same_group_reapplied_never_loses_the_socket(
        socket_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, sock = socket_files
    old = grp.getgrnam(OLD).gr_gid
    peers.open_to_team(sock, runtime, OLD)
    assert _reachable_by(runtime, sock) == {old}
    seen = _states(monkeypatch, runtime, sock)
    peers.open_to_team(sock, runtime, OLD)  # a reload that left [team] as it was
    assert all(s == {old} for s in seen), seen
    assert _reachable_by(runtime, sock) == {old}


def test_a_new_group_takes_over_without_a_third_getting_in(
        socket_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, sock = socket_files
    old, new = grp.getgrnam(OLD).gr_gid, grp.getgrnam(NEW).gr_gid
    peers.open_to_team(sock, runtime, OLD)
    seen = _states(monkeypatch, runtime, sock)
    peers.open_to_team(sock, runtime, NEW)
    assert all(s <= {old} or s <= {new} for s in seen), seen  # never both, never another
    assert _reachable_by(runtime, sock) == {new}
    assert (stat.S_IMODE(os.stat(sock).st_mode), stat.S_IMODE(os.stat(runtime).st_mode)) \
        == (0o660, 0o750)


def test_taken_off_the_socket_is_private_and_stray_bits_go_first(
        socket_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime, sock = socket_files
    old, new = grp.getgrnam(OLD).gr_gid, grp.getgrnam(NEW).gr_gid
    os.chmod(runtime, 0o755)
    os.chmod(sock, 0o666)  # someone opened it to everyone by hand
    seen = _states(monkeypatch, runtime, sock)
    peers.open_to_team(sock, runtime, NEW)
    assert all(-1 not in s for s in seen[1:]), seen  # the first step already shuts others out
    assert _reachable_by(runtime, sock) == {new}
    seen.clear()
    peers.open_to_team(sock, runtime, None)
    assert _reachable_by(runtime, sock) == set()
    assert (stat.S_IMODE(os.stat(sock).st_mode), stat.S_IMODE(os.stat(runtime).st_mode)) \
        == (0o600, 0o700)
    assert all(s <= {new} for s in seen), (seen, old)


def test_a_step_that_fails_leaves_the_socket_private(
        socket_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The old group is not kept when the new one cannot be applied (fail closed)."""
    runtime, sock = socket_files
    peers.open_to_team(sock, runtime, OLD)

    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(peers.os, "chown", refuse)
    peers.open_to_team(sock, runtime, NEW)
    assert _reachable_by(runtime, sock) == set()
    assert "the owner's alone until a reload" in caplog.text
