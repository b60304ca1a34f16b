"""Review s30 (helper 102): what a run's tunnels and requests leave in the history, with a real
daemon, a real bubblewrap run and loopback upstreams.

- A tunnel refused for its ClientHello, and a tunnel that closed, were one durable row each
  (`net.sni_mismatch` committed, `net.closed`): one run wrote 26,000 of each a minute, 1.5 MB/s
  of history, while "floods cost O(distinct)". They are folded like the other gate events,
  every one still counted, the bytes of the folded ones summed.
- A folded `net.decision` kept only the last request line of its second: `POST
  /exfil?token=...` between two GETs to an allowed host was nowhere in the history. A summary
  now lists the distinct request lines (and addresses) it stands for.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, needs_bwrap

pytestmark = needs_bwrap
HOST = "127.0.0.5"
TUNNELS = 200

INSIDE = r"""
import socket, sys
echo, web = sys.argv[1], sys.argv[2]

def hello(name):
    n = name.encode(); names = b"\x00" + len(n).to_bytes(2, "big") + n
    sni = len(names).to_bytes(2, "big") + names
    ext = b"\x00\x00" + len(sni).to_bytes(2, "big") + sni
    body = (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + len(ext).to_bytes(2, "big") + ext)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs

def tunnel(first):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(f"CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert b" 200 " in head.split(b"\r\n")[0], head
    s.sendall(first)
    got = b""
    while len(got) < len(first) and (piece := s.recv(4096)):
        got += piece
    s.close()
    return got

refused = sum(tunnel(hello("other.invalid")) == b"" for _ in range(TUNNELS))
echoed = sum(tunnel(b"0123456789") == b"0123456789" for _ in range(TUNNELS))
answers = []
for line in ("GET /ok", "POST /exfil?token=SECRET-7f3a", "GET /ok2"):
    method, path = line.split()
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(f"{method} http://{web}{path} HTTP/1.1\r\nHost: {web}\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n".encode())
    answers.append(s.recv(4096).split(b"\r\n")[0].decode())
    s.close()
print("refused", refused, "echoed", echoed, answers)
""".replace("TUNNELS", str(TUNNELS))


class Upstreams:
    """An echo server and a tiny HTTP server on 127.0.0.5 (loopback, named by the rules)."""

    def __init__(self) -> None:
        self.echo, self.web = self._serve(self._echo), self._serve(self._http)
        self.requests: list[bytes] = []

    def _serve(self, handle: Any) -> socket.socket:
        listener = socket.create_server((HOST, 0))
        threading.Thread(target=self._accept, args=(listener, handle), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket, handle: Any) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def _http(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head and (piece := conn.recv(4096)):
                head += piece
            self.requests.append(head.split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def port(self, which: socket.socket) -> int:
        return which.getsockname()[1]

    def close(self) -> None:
        self.echo.close()
        self.web.close()


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    up = Upstreams()
    yield up
    up.close()


def run_rows(d: Daemon, run_id: str, kind: str) -> list[dict[str, Any]]:
    return json.loads(d.cli("history", "--run", run_id, "--kind", kind, "--limit", "5000",
                            "--json").stdout)


def counted(rows: list[dict[str, Any]]) -> int:
    return sum(r["data"].get("count", 1) for r in rows)


@pytest.fixture
def flooded(home: Path, daemon_env: dict[str, str], workspace: Path,
            upstreams: Upstreams) -> Iterator[tuple[Daemon, str]]:
    """A daemon, and the id of a run that did what INSIDE does (its windows closed)."""
    echo, web = f"{HOST}:{upstreams.port(upstreams.echo)}", f"{HOST}:{upstreams.port(upstreams.web)}"
    (home / "config.toml").write_text(
        '[profiles.tunnels]\ncommand = ["true"]\n[profiles.tunnels.network]\n'
        f'default = "deny"\nallow = ["{echo}", "{web}"]\n')
    (workspace / "inside.py").write_text(INSIDE)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        done = d.cli("run", "tunnels", "-w", str(workspace), "--wait", "--",
                     "python3", "inside.py", echo, web, timeout=300)
        assert (f"refused {TUNNELS} echoed {TUNNELS} ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', "
                "'HTTP/1.1 200 OK']") in done.stdout, done.stdout + done.stderr
        found = re.search(r"\[pilothouse\] run (\S+) ", done.stderr)
        assert found, done.stderr
        d.cli("history", "--limit", "1")  # the run's windows were written at its end
        yield d, found.group(1)
    finally:
        d.stop()


def test_refused_and_closed_tunnels_are_folded_every_one_counted(
        flooded: tuple[Daemon, str], upstreams: Upstreams) -> None:
    d, run_id = flooded
    mismatches = run_rows(d, run_id, "net.sni_mismatch")
    assert counted(mismatches) == TUNNELS, mismatches[-1:]
    assert len(mismatches) < TUNNELS // 4, f"{len(mismatches)} rows for {TUNNELS} refusals"

    closed = [r for r in run_rows(d, run_id, "net.closed") if r["data"]["host"] == HOST
              and r["data"]["port"] == upstreams.port(upstreams.echo)]
    assert counted(closed) == 2 * TUNNELS
    assert len(closed) < TUNNELS // 2, f"{len(closed)} rows for {2 * TUNNELS} tunnels"
    assert sum(r["data"]["bytes_up"] for r in closed) == 10 * TUNNELS  # summed, not lost
    assert sum(r["data"]["bytes_down"] for r in closed) == 10 * TUNNELS
    report = json.loads(d.cli("report", run_id, "--json").stdout)
    conns = report["activity"]["connections"]  # `pilothouse report` counts what rows stand for
    assert conns["count"] >= 2 * TUNNELS and conns["bytes_up"] >= 10 * TUNNELS, conns


def test_a_folded_decision_keeps_every_distinct_request_line(
        flooded: tuple[Daemon, str], upstreams: Upstreams) -> None:
    d, run_id = flooded
    web = f"{HOST}:{upstreams.port(upstreams.web)}"
    assert len(upstreams.requests) == 3
    decisions = [r["data"] for r in run_rows(d, run_id, "net.decision")
                 if r["data"].get("port") == upstreams.port(upstreams.web)]
    lines = {(e.get("method"), e.get("target")) for e in decisions} | {
        (x.get("method"), x.get("target")) for e in decisions for x in e.get("distinct", [])}
    assert ("POST", f"http://{web}/exfil?token=SECRET-7f3a") in lines, decisions
    assert counted([{"data": e} for e in decisions]) == 3
