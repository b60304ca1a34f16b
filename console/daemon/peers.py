"""Who is on the other end of a unix socket, from the kernel (SO_PEERCRED), and what they may do.

Nothing a peer sends can change who it is. Who may open operator.sock at all is the [team]
group's (open_to_team). Roles:
  operator  the daemon's own user (or root): may watch and decide, and stop the daemon
  approver  a team member listed in [team] approvers: may watch and decide
  watcher   a member of the [team] group: may watch, not decide
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.config.load import TeamConfig

log = logging.getLogger("pilothouse.daemon")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    user: str
    role: str  # operator | approver | watcher | refused

    @property
    def may_decide(self) -> bool:
        return self.role in ("operator", "approver")

    @property
    def may_watch(self) -> bool:
        return self.role != "refused"


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def user_name(uid: int) -> str:
    name: str = _user(uid)[0]
    return name


class AccountLookups:
    """Answers of an account look-up kept while the file it reads stays the same, and for at
    most LOOK_AGAIN_S (accounts from a directory service do not change the file). Why: a
    [team] group of 5,000 members took 2.5 ms to look up, on the daemon's loop, at every
    teammate operation (s44). A change to the file is seen at the next operation."""

    LOOK_AGAIN_S = 1.0
    MOST = 1024  # answers kept: one per user who connects, and the team's group

    def __init__(self, file: str, look: Callable[[Any], Any]) -> None:
        self.file, self.look = file, look
        self.answers: dict[Any, Any] = {}
        self.stamp: tuple[int, ...] | None = None
        self.since = 0.0

    def __call__(self, key: Any) -> Any:
        try:
            st = os.stat(self.file)
            stamp: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            stamp = None  # nothing to compare with: looked up every time
        now = time.monotonic()
        if stamp is None or stamp != self.stamp or now - self.since > self.LOOK_AGAIN_S \
                or len(self.answers) >= self.MOST:
            self.answers.clear()
            self.stamp, self.since = stamp, now
        if key not in self.answers:
            self.answers[key] = self.look(key)
        return self.answers[key]


def _look_up_group(group: str) -> tuple[int | None, frozenset[str]]:
    try:
        g = grp.getgrnam(group)
    except (KeyError, ValueError):  # ValueError: a name no look-up takes (a NUL): no such group
        return None, frozenset()
    return g.gr_gid, frozenset(g.gr_mem)


def _look_up_user(uid: int) -> tuple[str, int | None]:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return f"uid{uid}", None
    return pw.pw_name, pw.pw_gid


_group_members = AccountLookups("/etc/group", _look_up_group)
_user = AccountLookups("/etc/passwd", _look_up_user)


def identify(sock: socket.socket, team: TeamConfig) -> Peer:
    pid, uid, gid = peer_credentials(sock)
    name = user_name(uid)
    return Peer(pid, uid, gid, name, role_of(uid, name, team))


def role_of(uid: int, name: str, team: TeamConfig) -> str:
    """The role of a user under `team`, the [team] table in force."""
    if uid == os.getuid() or uid == 0:
        return "operator"
    if not team.group:
        return "refused"
    group_gid, members = _group_members(team.group)
    if not (name in members or (group_gid is not None and _primary_gid(uid) == group_gid)):
        return "refused"
    return "approver" if name in team.approvers else "watcher"


def as_now(peer: Peer, team: TeamConfig) -> Peer:
    """The peer with its role under the [team] table in force now: a connection stays open
    for days (an attached console), and a teammate taken off the list loses the role at once."""
    if peer.role == "operator":
        return peer  # the daemon's own user or root: no config changes that
    role = role_of(peer.uid, peer.user, team)
    return peer if role == peer.role else Peer(peer.pid, peer.uid, peer.gid, peer.user, role)


def _primary_gid(uid: int) -> int | None:
    gid: int | None = _user(uid)[1]
    return gid


def open_to_team(sock_path: Path, runtime_dir: Path, group: str | None) -> None:
    """operator.sock (and its folder) open to the [team] group `group`, or the owner's alone."""
    try:
        gid = grp.getgrnam(group).gr_gid if group else None
    except (KeyError, ValueError):  # raised before the socket was closed to the old group
        log.error("team group %r does not exist; operator.sock stays private", group)
        gid = None
    try:
        if gid is None:
            os.chmod(sock_path, 0o600)
            os.chmod(runtime_dir, 0o700)
            return
        # Every reload re-applies this, so no step may shut out a group that stays (a teammate
        # connecting meanwhile would be refused) or let in one that is neither the old nor the
        # new: bits beyond the target go first, then the socket changes hands before its folder
        # (an old member may still reach the folder, no longer the socket).
        for path, mode in ((sock_path, 0o660), (runtime_dir, 0o750)):
            now = os.stat(path)
            if stat.S_IMODE(now.st_mode) & ~mode:
                os.chmod(path, stat.S_IMODE(now.st_mode) & mode)
            if now.st_gid != gid:
                os.chown(path, -1, gid)
            if stat.S_IMODE(now.st_mode) != mode:
                os.chmod(path, mode)
    except OSError as exc:
        log.error("operator.sock's permissions for [team] group %r not applied: %s; it is "
                  "the owner's alone until a reload applies them", group, exc)
        with contextlib.suppress(OSError):  # never left open to a group taken off
            os.chmod(sock_path, 0o600)
