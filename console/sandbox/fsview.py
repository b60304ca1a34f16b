"""What the sandbox sees of the host's files, opened without following links.

Linux system calls Python does not wrap (openat2, open_tree, mount_setattr, move_mount, mount,
umount2), called through ctypes. Three jobs:

- `open_beneath`: open a workspace path with O_PATH, refusing every symbolic link on the way
  and anything that resolves outside the workspace (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS).
  Backends bind what was opened (bwrap --ro-bind-fd; Docker a staged mount of it), so a link
  swapped in after the check changes nothing.
- `idmapped_view`: a clone of a root-owned workspace whose files appear owned by the agent's
  unprivileged uid and whose new files land on disk as root's: the agent never runs as host
  uid 0, and the person's files stay theirs (root daemon only).
- `stage_fd`: bind an opened fd onto a path in the run folder (root daemon, for Docker, whose
  engine takes paths, not descriptors).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import subprocess
import time
from pathlib import Path

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
# Same numbers on x86_64 and arm64 (the generic syscall table since 5.x).
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_OPENAT2, SYS_MOUNT_SETATTR = 428, 429, 437, 442

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def open_beneath(root_fd: int, rel: str) -> int:
    """O_PATH fd of root_fd/rel; OSError ELOOP for a link anywhere on the way, ENOENT if absent.

    Also ELOOP for `..` escapes and magic links. The final component is never followed either.
    """
    how = _OpenHow(
        os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    fd = _libc.syscall(SYS_OPENAT2, root_fd, os.fsencode(rel), ctypes.byref(how), ctypes.sizeof(how))
    fd = _check(fd, f"open {rel}")
    st = os.fstat(fd)
    if not (os.path.stat.S_ISDIR(st.st_mode) or os.path.stat.S_ISREG(st.st_mode)):
        os.close(fd)  # O_NOFOLLOW|O_PATH opens a link itself; devices and fifos are not ours
        raise OSError(errno.ELOOP, f"open {rel}: not a regular file or folder")
    return fd


def open_dir_beneath(root_fd: int, rel: str) -> int:
    """A real (not O_PATH) fd of the folder root_fd/rel, reached as open_beneath reaches it
    ("" or "." is root_fd's own folder), for listing it or *at() calls in it; OSError if it
    cannot be reached so or is not a folder."""
    pfd = open_beneath(root_fd, rel or ".")
    try:
        return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY)
    finally:
        os.close(pfd)


def read_beneath(root_fd: int, rel: str, limit: int) -> tuple[bytes, os.stat_result] | None:
    """(the first `limit` bytes, its stat) of root_fd/rel, opened as open_beneath does; None
    when it is absent or not a regular file (a link on the way, a folder, a FIFO)."""
    try:
        fd = open_beneath(root_fd, rel)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not os.path.stat.S_ISREG(st.st_mode):
            return None
        with open(f"/proc/self/fd/{fd}", "rb") as fh:  # the same file, now for reading
            return fh.read(limit), st
    except OSError:
        return None
    finally:
        os.close(fd)


def open_dir_nofollow(path: Path | str) -> int:
    """O_PATH fd of an absolute folder path in which no component is a symbolic link.

    The workspace is resolved once (realpath) when a run is asked for, checked, and opened with
    this: a folder swapped for a link after the check fails here instead of being followed."""
    how = _OpenHow(
        os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW,
        0,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    fd = _libc.syscall(SYS_OPENAT2, AT_FDCWD, os.fsencode(path), ctypes.byref(how),
                       ctypes.sizeof(how))  # fmt: skip
    return _check(fd, f"open {path}")


def fd_path(fd: int) -> str:
    """The path through which this process can hand an fd to mount(2) or bwrap."""
    return f"/proc/self/fd/{fd}"


def _userns_fd(uid: int, gid: int) -> int:
    """A user namespace mapping its uid 0 to host uid:gid (only its fd is kept)."""
    holder = subprocess.Popen(
        ["unshare", "--user", "--", "sleep", "30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        own = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{holder.pid}/ns/user") == own:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise OSError(errno.EPERM, "could not create a user namespace for the id map")
            time.sleep(0.002)
        Path(f"/proc/{holder.pid}/uid_map").write_text(f"0 {uid} 1\n")
        Path(f"/proc/{holder.pid}/gid_map").write_text(f"0 {gid} 1\n")
        return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        holder.kill()
        holder.wait()


def idmapped_view(source_fd: int, target: Path, uid: int, gid: int) -> None:
    """Mount at target a clone of source_fd's tree in which on-disk 0:0 reads as uid:gid.

    Root only. Writes by uid:gid through it land on disk as 0:0; files of other owners show as
    the overflow id (nobody) and are read-only to the agent.
    """
    ns = _userns_fd(uid, gid)
    tree = -1
    try:
        tree = _check(
            _libc.syscall(SYS_OPEN_TREE, source_fd, b"", OPEN_TREE_CLONE | os.O_CLOEXEC
                          | AT_EMPTY_PATH | AT_RECURSIVE),
            "open_tree",
        )  # fmt: skip
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
        _check(
            _libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                          ctypes.byref(attr), ctypes.sizeof(attr)),
            "mount_setattr (id map)",
        )  # fmt: skip
        target.mkdir(mode=0o700, exist_ok=True)
        _check(
            _libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, os.fsencode(target),
                          MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount",
        )  # fmt: skip
    finally:
        os.close(ns)
        if tree >= 0:
            os.close(tree)


def stage_fd(fd: int, target: Path, read_only: bool) -> None:
    """Bind what fd names onto target (created as an empty file or folder of the same kind)."""
    is_dir = os.path.stat.S_ISDIR(os.fstat(fd).st_mode)
    if is_dir:
        target.mkdir(mode=0o755, exist_ok=True)
    else:
        target.touch(mode=0o444, exist_ok=True)
    _check(_libc.mount(os.fsencode(fd_path(fd)), os.fsencode(target), None, MS_BIND, None), "bind")
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        _check(_libc.mount(None, os.fsencode(target), None, flags, None), "remount read-only")


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, as /proc/self/mountinfo lists them: fully
    resolved paths, with the kernel's escapes (space, tab, newline, backslash) decoded.
    OSError when it cannot be read."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        return [_unescape(line.split(" ", 5)[4]) for line in fh if line.count(" ") >= 5]


def _unescape(field: str) -> str:
    r"""mountinfo's field with \ooo octal escapes undone, in one pass (so an escaped backslash
    followed by digits is never read as a second escape)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def under_a_mount(folder: str | Path) -> bool:
    """Something is mounted in folder or below it (folder's links resolved, as mountinfo's
    paths are); also True when that cannot be read."""
    inside = os.path.realpath(folder).rstrip("/") + "/"
    try:
        return any(point.startswith(inside) for point in mount_points())
    except OSError:
        return True


def unmount(target: Path) -> None:
    """Detach the mount at target, never one a link there leads to (review h133)."""
    with contextlib.suppress(OSError):
        _check(_libc.umount2(os.fsencode(target), MNT_DETACH | UMOUNT_NOFOLLOW), "umount")


MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


def clone_onto(src_fd: int, parent_fd: int, name: str, *, read_only: bool, recursive: bool,
               idmap_ns: int | None = None, top_only: bool = False) -> None:  # fmt: skip
    """Mount a clone of src_fd's tree at parent_fd/name, never following a link at name.

    A link at name is covered by the mount, not resolved (move_mount without
    MOVE_MOUNT_T_SYMLINKS), so a protected path that is a link is masked where it stands.
    """
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    tree = _check(_libc.syscall(SYS_OPEN_TREE, src_fd, b"", flags), "open_tree")
    try:
        # nodev and nosuid always: the engine binds the staged view as it finds it, and a
        # device node in the workspace (a root file system's dev/console) opened (review h167).
        attr_set = (MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID | (MOUNT_ATTR_RDONLY if read_only else 0)
                    | (MOUNT_ATTR_IDMAP if idmap_ns is not None else 0))  # fmt: skip
        attr = _MountAttr(attr_set, 0, 0, idmap_ns if idmap_ns is not None else 0)
        _check(
            _libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH
                          | (AT_RECURSIVE if recursive and not top_only else 0),
                          ctypes.byref(attr),
                          ctypes.sizeof(attr)),
            "mount_setattr",
        )  # fmt: skip
        _check(
            _libc.syscall(SYS_MOVE_MOUNT, tree, b"", parent_fd, os.fsencode(name),
                          MOVE_MOUNT_F_EMPTY_PATH),
            f"move_mount onto {name}",
        )  # fmt: skip
    finally:
        os.close(tree)


_USERNS: dict[tuple[int, int], int] = {}


def userns_for_idmap(uid: int, gid: int) -> int:
    """An fd of a user namespace that maps 0:0 to uid:gid (for id-mapped mounts).

    Made once per identity and kept open for the process's life (the caller must not close
    it): making one costs a fork and exec of unshare(1), a run's start should not."""
    fd = _USERNS.get((uid, gid))
    if fd is None:
        fd = _USERNS[(uid, gid)] = _userns_fd(uid, gid)
    return fd


class FolderStats:
    """lstat of entries beneath a folder, each entry's folder opened once (no link on the way,
    as open_beneath): an index lists every tracked file, and opening each one's folder anew
    cost 35 us a file (30,000 files: 1.1 s at every run's end; hidden.py, ci_look.py)."""

    MOST = 256  # folders held open at once

    def __init__(self, ws_fd: int) -> None:
        self.ws_fd = ws_fd
        self.fds: dict[str, int | None] = {}

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry at `rel` itself (a link not followed); None when it cannot be reached."""
        parent, name = os.path.split(rel)
        if parent not in self.fds:
            if len(self.fds) >= self.MOST:
                self.close()
            try:
                self.fds[parent] = open_beneath(self.ws_fd, parent or ".")
            except OSError:
                self.fds[parent] = None
        fd = self.fds[parent]
        if fd is None:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()
