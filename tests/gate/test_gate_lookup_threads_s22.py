"""Attack review s22: one run's slow lookups starving every run of the daemon.

The gate looked names up with loop.getaddrinfo, which runs in the event loop's default thread
pool: min(32, CPUs + 4) threads, shared with everything the daemon does off the loop (a
command's policy check, starting a run's bridge, opening a workspace view, every other run's
lookups). A lookup whose name server never answers holds its thread for the resolver's whole
timeout; the gate's own timeout ends the wait, not the thread. A name's authoritative server is
the agent's to pick, and a profile with an IP allow rule (or default allow) looks names up
before anyone is asked: a few lookups under the run's rate filled the pool, and for as long as
the resolver waited no other run could have a name looked up nor a command checked.

The daemon here is a process in its own mount namespace whose resolv.conf names a server on
127.0.0.76 that receives queries and never answers (the agent's slow name server), holding
each lookup for 30 s. Run A's gate is sent more lookups than the pool has threads; then run B
asks for one name, and the loop hands the pool one small job (what a command's check is).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("unshare"),
                                reason="a private mount namespace and port 53 need root")

# Port 53 on an address of this file's own: tests/core/test_dns_order.py serves 127.0.0.77 and
# test_gate_search_list_s17.py 127.0.0.78, and `make test` may run those files at the same time.
SILENT = "127.0.0.76"

SCRIPT = textwrap.dedent(r"""
    import asyncio, os, sys
    from console.gate import Gate, GateLimits, NetworkRules

    async def record(kind, payload):
        pass

    async def connect(path, target):
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        await writer.drain()
        return reader, writer

    async def main(folder):
        rules = NetworkRules(allow=["127.0.0.0/8"], default="ask")  # names resolve first
        limits = GateLimits(lookups_per_second=100)  # the agent paces itself under 20/s
        a = Gate("run-a", rules, ask=None, record=record, limits=limits)
        b = Gate("run-b", rules, ask=None, record=record, limits=limits)
        await a.serve_unix(f"{folder}/a.sock")
        await b.serve_unix(f"{folder}/b.sock")
        pool = min(32, (os.cpu_count() or 1) + 4)  # the loop's default thread pool
        held = [await connect(f"{folder}/a.sock", f"h{i}.slow.invalid:443")
                for i in range(pool + 4)]
        print("A-SENT", flush=True)
        assert sys.stdin.readline().strip() == "B"  # the server has seen run A's queries
        other = await connect(f"{folder}/b.sock", "other.invalid:443")
        print("B-SENT", flush=True)
        try:
            await asyncio.wait_for(asyncio.to_thread(lambda: None), 15)
            print("JOB-RAN", flush=True)
        except TimeoutError:
            print("JOB-STARVED", flush=True)
        sys.stdin.readline()
        for _, w in held + [other]:
            w.close()
        os._exit(0)  # threads still wait on the silent server

    asyncio.run(main(sys.argv[1]))
""")


class Silent:
    """A name server that receives every query and answers none; keeps the names asked."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((SILENT, 53))
        self.sock.settimeout(0.2)
        self.names: list[str] = []
        self.seen = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(4096)
            except OSError:
                continue
            labels, i = [], 12
            while i < len(data) and data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
                i += 1 + data[i]
            with self.seen:
                self.names.append(".".join(labels).lower())
                self.seen.notify_all()

    def wait_for(self, test, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        with self.seen:
            return self.seen.wait_for(lambda: test(self.names), timeout)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def test_one_runs_hanging_lookups_leave_other_runs_and_the_daemons_threads_alone(
        tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {SILENT}\noptions timeout:30 attempts:1\n")
    (tmp_path / "gates.py").write_text(SCRIPT)
    folder = Path(__import__("tempfile").mkdtemp(prefix="ph-", dir="/tmp"))
    server = Silent()
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f'mount --bind "{conf}" /etc/resolv.conf && exec "{sys.executable}" '
         f'"{tmp_path / "gates.py"}" "{folder}"'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "A-SENT", proc.stderr.read()
        assert server.wait_for(lambda names: sum("slow.invalid" in n for n in names) >= 4, 20)
        proc.stdin.write("B\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "B-SENT"
        job = proc.stdout.readline().strip()
        other_looked_up = server.wait_for(
            lambda names: any(n.startswith("other.invalid") for n in names), 15)
        proc.stdin.write("end\n")
        proc.stdin.flush()
    finally:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert job == "JOB-RAN", "the daemon's thread pool was held by run A's lookups"
    assert other_looked_up, ("run B's name was never sent while run A's lookups hung",
                             server.names)
