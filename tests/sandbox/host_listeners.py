"""TCP listeners on this host's own addresses, the targets of the sandbox's no-network probes.

Nothing here dials past this machine. The targets are an address of the host that is not
loopback (the docker0 bridge address when there is one: a container on Docker's default
network reaches it, so a sandbox that does not proves it has no network) and 127.0.0.1, which
inside a fresh network namespace is the sandbox's own loopback, not the host's.

A probe that fails inside the sandbox proves nothing if it could never have succeeded (a typo,
a missing tool, a dead listener), so each probe also runs on the host as a control, where the
listener serves it one reply and the same script must succeed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator

MARKER = "host-listener"
REPLY = b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\n" + MARKER.encode()
REPLY += b"\n"
SIOCGIFADDR = 0x8915  # linux/sockios.h: an interface's IPv4 address


def _ipv4_of(interface: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            ifreq = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", interface[:15].encode()))
        except OSError:
            return None  # down, or no IPv4 address
    return socket.inet_ntoa(ifreq[20:24])


def host_address() -> str | None:
    """An IPv4 address of this host other than loopback: docker0's if present, else another."""
    names = sorted((n for _, n in socket.if_nameindex()), key=lambda n: n != "docker0")
    for name in names:
        addr = _ipv4_of(name)
        if addr and not ipaddress.ip_address(addr).is_loopback:
            return addr
    return None


class HostListener:
    """A listening TCP socket on the host that nobody accepts from until a control run."""

    def __init__(self, host: str, label: str) -> None:
        self.label = label
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.host, self.port = self.sock.getsockname()[:2]

    def nothing_connected(self) -> bool:
        """True when no connection reached the listener (none waits in its accept queue)."""
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return True
        conn.close()
        return False

    def serve_one(self, timeout: float) -> threading.Thread:
        """Answer one connection with REPLY (after reading the request, so no reset)."""
        served = threading.Thread(target=self._answer, args=(timeout,), daemon=True)
        served.start()
        return served

    def _answer(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(1.0)
                request = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
                        request += chunk
                conn.sendall(REPLY)
                conn.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


def probe_script(probe: str, listeners: list[HostListener]) -> str:
    """`probe` once per listener ({host} and {port} filled in), each followed by LABEL=$?."""
    return "; ".join(f"{probe.format(host=t.host, port=t.port)}; echo {t.label}=$?"
                     for t in listeners)


def run_on_host(script: str, listeners: list[HostListener], env: dict[str, str]) -> str:
    """The control: the same script on the host, each listener answering one connection."""
    served = [t.serve_one(timeout=20.0) for t in listeners]
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    for s in served:
        s.join(timeout=25.0)
    return done.stdout + done.stderr


def failed_inside_works_outside(out: str, probe: str, listeners: list[HostListener]) -> None:
    """Assert the probe failed in `out` and reached no listener, then that the host's run of
    the same probe succeeds against every one of them (so the assertion could have failed)."""
    for t in listeners:
        assert f"{t.label}=0" not in out, out
        assert t.nothing_connected(), f"the listener on {t.host} saw a connection from inside"
    control = run_on_host(probe_script(probe, listeners), listeners, {"PATH": "/usr/bin:/bin"})
    for t in listeners:
        assert f"{t.label}=0" in control, f"the same probe from the host failed: {control}"


@contextlib.contextmanager
def listening(targets: list[tuple[str, str]]) -> Iterator[list[HostListener]]:
    opened = [HostListener(host, label) for host, label in targets]
    try:
        yield opened
    finally:
        for t in opened:
            t.close()
