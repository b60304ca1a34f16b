"""Short-lived helper: listen on 127.0.0.1:PORT inside another process's network namespace.

    python -I -S nsenter_listen.py PID PORT FD

FD is one end of a socketpair the daemon passed in. We join /proc/PID/ns/user (only when it
differs from ours and we are not root in the initial user namespace: joining is what gives an
unprivileged daemon the right to enter a namespace its own bwrap made) and /proc/PID/ns/net,
make sure loopback is up, bind and listen, then send the listening socket back with SCM_RIGHTS
and exit. The socket stays in the sandbox's namespace; the daemon accepts on it in its own loop.

It is a separate process because setns(CLONE_NEWUSER) demands a single-threaded caller and the
daemon is not one; it imports nothing but the standard library so it starts fast.
Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace that owns a namespace
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _setns(fd: int, nstype: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


def _same_ns(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _same_fd_ns(fd: int, path: str) -> bool:
    sa, sb = os.fstat(fd), os.stat(path)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _root_in_init_userns() -> bool:
    try:
        return os.geteuid() == 0 and _same_ns("/proc/self/ns/user", "/proc/1/ns/user")
    except OSError:
        return False


def _loopback_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    finally:
        s.close()


def listen_in(pid: int, port: int, *, join_user: bool = True) -> socket.socket:
    """join_user=False: the caller is root over the namespace already (the daemon's thread
    path), and a multithreaded caller could not join a user namespace anyway."""
    net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if join_user and not _root_in_init_userns():
            # Join the user namespace that OWNS the network namespace, not the process's own:
            # unprivileged bwrap nests a second user namespace (to drop its uid 0 after mounting
            # devpts), and only the outer one, made by our uid, gives us CAP_SYS_ADMIN over net.
            user_fd = fcntl.ioctl(net_fd, NS_GET_USERNS)
            try:
                if not _same_fd_ns(user_fd, "/proc/self/ns/user"):
                    _setns(user_fd, CLONE_NEWUSER, f"user namespace of {pid}'s network")
            finally:
                os.close(user_fd)
        _setns(net_fd, CLONE_NEWNET, f"/proc/{pid}/ns/net")
    finally:
        os.close(net_fd)
    try:
        _loopback_up()
    except OSError:
        pass  # already up, or not ours to change: bind tells us if it matters
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    return s


def main(argv: list[str]) -> int:
    pid, port, chan_fd = int(argv[1]), int(argv[2]), int(argv[3])
    chan = socket.socket(fileno=chan_fd)
    try:
        s = listen_in(pid, port)
    except OSError as e:
        chan.sendall(f"error: {e.strerror or e}".encode()[:1000])
        return 1
    socket.send_fds(chan, [b"ok"], [s.fileno()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
