"""Benchmark: the gate against direct loopback and tinyproxy, same upstream, same run.

    .venv/bin/python bench/gate.py [--quick] [--requests 2000] [--mb 256]

Three processes serve: a local upstream (small HTTP responses on one port, a bulk byte source on
another), the gate (console.gate.Gate on a TCP loopback listener, as the bridge listener at
127.0.0.1:3128 an agent reaches inside its sandbox, and on a unix socket, as a run's gate.sock)
and tinyproxy (/usr/bin/tinyproxy on a free loopback port, temporary config). The client here
uses plain blocking sockets so the client's cost is the same small constant on every path.
Figures:

- GET keep-alive p50/p99: one connection, many small GETs (against direct only: tinyproxy
  closes every client connection after one response, so it appears in the next figure).
- GET new connection p50/p99: connect, one GET, close (what a CLI agent mostly does). The
  gate takes the upstream connection the previous request left parked (each request is
  still decided); a second gate with parking off gives the row "nothing parked".
- CONNECT setup p50/p99: connect, CONNECT, 200 (the gate decides and records here).
- Tunnel download MB/s: bytes from the upstream through a CONNECT tunnel.
- Tunnels per second, 50 concurrent clients: each opens a connection, CONNECTs, sends one
  short request through the tunnel, reads its short answer and closes, again and again
  (one non-blocking client process drives all 50, the same way on every path).

A bare relay (bench/bare_relay.py: asyncio loop callbacks that decide, record and check
nothing) is a further anchor, without a target, for a GET on a new connection, CONNECT setup,
CPU per tunnel and tunnels per second: what Python on this machine costs before any of the
gate's own work. Its `splice` mode (threads blocked in splice(2), no loop, no check) is the
anchor for a tunnel's download: what two loopback hops give any relay on this kernel.

Each figure and its anchors take turns (latencies in 5 rounds, downloads and tunnels per second
per try), so a change in the shared machine's load lands on both sides of a ratio. Each row
prints: figure, value, anchor, anchor value, ratio (figure / anchor; for MB/s a ratio below 1
means slower). Every proxy is reached over TCP loopback (the gate at its bridge listener, as
agents reach it); one more download row goes through the run's gate.sock. --quick: 1000 requests
per figure and 64 MiB per download unless given. The rows also go through bench.common.emit (the
table `make bench` prints).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit  # noqa: E402

BODY = b"hello, world\n"
BARE = "bare relay"  # bench/bare_relay.py: Python's own cost, nothing decided or recorded
SPLICED = "bare splice relay"  # bench/bare_relay.py splice: threads blocked in splice(2)
ROUNDS = 5  # latency figures alternate with their anchors this many times
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


# -- server processes -------------------------------------------------------------------------

async def _upstream() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(RESPONSE)
                await writer.drain()
                if b"HTTP/1.0" in head.split(b"\r\n", 1)[0] or b"close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    block = memoryview(b"\xab" * (256 * 1024))

    async def bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            left = int(await reader.readline())
            while left > 0:
                n = min(left, len(block))
                writer.write(block[:n])
                left -= n
                await writer.drain()
        except (ValueError, ConnectionError):
            pass
        writer.close()

    s1 = await asyncio.start_server(http, "127.0.0.1", 0)
    s2 = await asyncio.start_server(bulk, "127.0.0.1", 0)
    print(s1.sockets[0].getsockname()[1], s2.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


async def _gate(path: str, ports: list[int], *, park: bool = True) -> None:
    sys.path.insert(0, str(ROOT))
    from console.daemon.collector import settle_collector
    from console.gate import Gate, GateLimits, NetworkRules, upstreams

    settle_collector()  # as the daemon serves its gates

    if not park:  # every request dials its own upstream connection, as tinyproxy's do
        upstreams.PARKED_MOST = 0

    records = 0

    async def record(kind: str, payload: dict) -> None:
        nonlocal records
        records += 1

    rules = NetworkRules(allow=[f"127.0.0.1:{p}" for p in ports], default="deny")
    # Caps far above tinyproxy's MaxClients (256): a client that closes and reconnects in a
    # tight loop can outrun teardown, and the caps are not what is being measured. Over TCP a
    # client's close reads as a half-close (tinyproxy drops both sides at the first EOF; the
    # gate keeps the other direction until the server closes too), so tunnels wait on the
    # upstream's close there (a unix socket's close is a hang-up, which ends them at once); on
    # a loaded machine 256 ran out within 800 CONNECTs (review h147).
    gate = Gate("bench", rules, ask=None, record=record,
                limits=GateLimits(max_tunnels=1024, max_connections=1024))
    await gate.serve_unix(path)
    # Inside a sandbox the agent reaches the gate at 127.0.0.1:3128, a TCP listener the daemon
    # made in the sandbox's network namespace and serves as here (Gate.serve_socket).
    bridge = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bridge.bind(("127.0.0.1", 0))
    bridge.listen(socket.SOMAXCONN)
    bridge.setblocking(False)
    await gate.serve_socket(bridge)
    print("ready", bridge.getsockname()[1], flush=True)
    await asyncio.Event().wait()


def _spawn(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _ready_port(line: str) -> int:
    word, port = line.split()
    assert word == "ready", line
    return int(port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tinyproxy(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = Path(tmp) / "tinyproxy.conf"
    conf.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 256\n"
                    "Allow 127.0.0.1\nLogLevel Critical\nDisableViaHeader Yes\n"
                    + ("User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen(["/usr/bin/tinyproxy", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("tinyproxy did not start")


# -- client -----------------------------------------------------------------------------------

class Conn:
    """A blocking connection with just enough HTTP to read one small response."""

    def __init__(self, where: str | tuple[str, int]) -> None:
        family = socket.AF_UNIX if isinstance(where, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(where)
        self.buf = b""

    def head(self) -> tuple[bytes, bool]:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        low = head.lower()
        closing = b"connection: close" in low or (
            low.startswith(b"http/1.0") and b"connection: keep-alive" not in low)
        return head, closing

    def response(self) -> bool:
        head, closing = self.head()
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        self.buf = self.buf[length:]
        return closing

    def close(self) -> None:
        self.sock.close()


def _pct(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[98]


def keepalive_get(where: str | tuple[str, int], request: bytes, n: int) -> tuple[list[float], int]:
    """Latencies (µs) of n GETs on one connection, and how often the server closed it."""
    conn, out, reconnects = Conn(where), [], 0
    for _ in range(n):
        t = time.perf_counter()
        conn.sock.sendall(request)
        closing = conn.response()
        out.append((time.perf_counter() - t) * 1e6)
        if closing:
            conn.close()
            conn, reconnects = Conn(where), reconnects + 1
    conn.close()
    return out, reconnects


def fresh_get(where: str | tuple[str, int], request: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn = Conn(where)
        conn.sock.sendall(request)
        conn.response()
        conn.close()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def connect_setup(where: str | tuple[str, int], authority: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn = Conn(where)
        if authority:
            conn.sock.sendall(b"CONNECT " + authority + b" HTTP/1.1\r\nHost: " + authority
                              + b"\r\n\r\n")
            head, _ = conn.head()
            assert head.split(b" ")[1] == b"200", (head, conn.buf)
        out.append((time.perf_counter() - t) * 1e6)
        conn.close()
    return out


def tunnel_mb_s(where: str | tuple[str, int], authority: bytes, total: int) -> float:
    conn = Conn(where)
    if authority:
        conn.sock.sendall(b"CONNECT " + authority + b" HTTP/1.1\r\n\r\n")
        conn.head()
    t = time.perf_counter()
    conn.sock.sendall(f"{total}\n".encode())
    got = len(conn.buf)
    buf = bytearray(1024 * 1024)
    while got < total:
        n = conn.sock.recv_into(buf)
        if not n:
            break
        got += n
    secs = time.perf_counter() - t
    conn.close()
    assert got == total, (got, total)
    return total / secs / 1e6


class _Tunnel:
    """One client of tunnels_per_second: connect, CONNECT, one 16-byte exchange, close."""

    def __init__(self, where: str | tuple[str, int], authority: bytes) -> None:
        family = socket.AF_UNIX if isinstance(where, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = self.sock.connect_ex(where)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            raise OSError(err, os.strerror(err))
        self.out = b"CONNECT " + authority + b" HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n"
        self.buf = b""
        self.stage = "head"  # then "body" (the 16 bytes through the tunnel)

    def step(self, readable: bool) -> bool | None:
        """Move on; True when the tunnel is done, None while it waits."""
        if self.out:
            try:
                self.out = self.out[self.sock.send(self.out):]
            except (BlockingIOError, OSError) as exc:
                if not isinstance(exc, BlockingIOError) and exc.errno != errno.ENOTCONN:
                    raise
            return None
        if not readable:
            return None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed at {self.stage}: {self.buf[:80]!r}")
        self.buf += data
        if self.stage == "head" and b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            assert head.split(b" ")[1] == b"200", head
            self.stage, self.out = "body", b"16\n"
            self.out = self.out[self.sock.send(self.out):]
        if self.stage == "body" and len(self.buf) >= 16:
            return True
        return None


def tunnels_per_second(where: str | tuple[str, int], authority: bytes, clients: int,
                       total: int) -> float:
    """Completed tunnels a second with `clients` at once, until `total` are done."""
    sel = selectors.DefaultSelector()

    def start() -> None:
        t = _Tunnel(where, authority)
        sel.register(t.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, t)

    started = time.perf_counter()
    for _ in range(clients):
        start()
    opened, done = clients, 0
    while done < total:
        for key, events in sel.select(5):
            t = key.data
            if t.step(bool(events & selectors.EVENT_READ)) is None:
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if t.out else 0)
                if key.events != want:
                    sel.modify(t.sock, want, t)
                continue
            sel.unregister(t.sock)
            t.sock.close()
            done += 1
            if opened < total:
                opened += 1
                start()
    secs = time.perf_counter() - started
    sel.close()
    return done / secs


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its children, living or reaped: tinyproxy
    serves from a pool of child processes, the gate from one."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, parent = int(stat.parent.name), int(fields[1])
        if own == pid:  # its own time and its reaped children's
            total += sum(int(f) for f in fields[11:15]) / tick
        elif parent == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a short run: 1000 requests, 64 MiB unless given")
    ap.add_argument("--requests", type=int, default=None, help="per figure (default 2000)")
    ap.add_argument("--mb", type=int, default=None, help="MiB per download (default 256)")
    args = ap.parse_args()
    if args.requests is None:
        args.requests = 1000 if args.quick else 2000
    if args.mb is None:
        args.mb = 64 if args.quick else 256
    tmp = tempfile.mkdtemp(prefix="ph-bench-")
    procs: list[subprocess.Popen] = []
    try:
        up, ports_line = _spawn("--serve-upstream")
        procs.append(up)
        http_port, bulk_port = map(int, ports_line.split())
        sock = str(Path(tmp) / "gate.sock")
        gate, ready = _spawn("--serve-gate", sock, str(http_port), str(bulk_port))
        procs.append(gate)
        gate_tcp = ("127.0.0.1", _ready_port(ready))  # the agent's path: its bridge listener
        unparked, ready = _spawn("--serve-gate-unparked", str(Path(tmp) / "unparked.sock"),
                                 str(http_port))
        procs.append(unparked)
        unparked_tcp = ("127.0.0.1", _ready_port(ready))
        tiny, tiny_port = _tinyproxy(tmp)
        procs.append(tiny)
        bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_relay.py"), "tcp"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(bare)
        assert bare.stdout is not None
        bare_tcp = ("127.0.0.1", _ready_port(bare.stdout.readline()))
        spliced = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_relay.py"), "splice"],
                                   stdout=subprocess.PIPE, text=True)
        procs.append(spliced)
        assert spliced.stdout is not None
        spliced_tcp = ("127.0.0.1", _ready_port(spliced.stdout.readline()))
        n = args.requests
        direct, tinyp = ("127.0.0.1", http_port), ("127.0.0.1", tiny_port)
        origin = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        absolute = (f"GET http://127.0.0.1:{http_port}/ HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{http_port}\r\n\r\n").encode()
        bulk = f"127.0.0.1:{bulk_port}".encode()
        for where, req in ((direct, origin), (gate_tcp, absolute), (sock, absolute)):
            keepalive_get(where, req, 200)  # warm up every path
        fresh_get(tinyp, absolute, 200)
        rows: list[tuple[str, float, str, float]] = []
        out: list[Row] = []

        def add(figure: str, run: Callable[[int], list[float]],
                anchors: dict[str, Callable[[int], list[float]]], targets: bool = True) -> None:
            # Interleaved in rounds, so a change in the machine's load mid-run falls on the
            # figure and its anchors alike (this box is shared; a ratio is what is compared).
            mine: list[float] = []
            theirs: dict[str, list[float]] = {name: [] for name in anchors}
            for _ in range(ROUNDS):
                mine += run(n // ROUNDS)
                for name, fn in anchors.items():
                    theirs[name] += fn(n // ROUNDS)
            p50, p99 = _pct(mine)
            for name, samples in theirs.items():
                a50, a99 = _pct(samples)
                rows.append((f"{figure} p50 µs", p50, name, a50))
                rows.append((f"{figure} p99 µs", p99, name, a99))
                target = "<= 1.2x" if targets and name.startswith("tinyproxy") else ""
                out.append(Row(f"{figure}, p50", p50, "µs", f"{name}, p50", a50, target))
                out.append(Row(f"{figure}, p99", p99, "µs", f"{name}, p99", a99))

        add("GET keep-alive via gate", lambda k: keepalive_get(gate_tcp, absolute, k)[0],
            {"direct keep-alive": lambda k: keepalive_get(direct, origin, k)[0]})
        add("GET new connection via gate", lambda k: fresh_get(gate_tcp, absolute, k),
            {"direct new connection": lambda k: fresh_get(direct, origin, k),
             "tinyproxy new connection": lambda k: fresh_get(tinyp, absolute, k),
             BARE + " new connection": lambda k: fresh_get(bare_tcp, absolute, k)})
        # The row above reuses the upstream connection the previous client's request left
        # parked (gate/upstreams.py); this one dials a new one for every request, as
        # tinyproxy and the bare relay do.
        add("GET new connection via gate, nothing parked",
            lambda k: fresh_get(unparked_tcp, absolute, k),
            {"tinyproxy new connection": lambda k: fresh_get(tinyp, absolute, k),
             BARE + " new connection": lambda k: fresh_get(bare_tcp, absolute, k)},
            targets=False)
        add("CONNECT setup via gate", lambda k: connect_setup(gate_tcp, bulk, k),
            {"direct TCP connect": lambda k: connect_setup(("127.0.0.1", bulk_port), b"", k),
             "tinyproxy CONNECT setup": lambda k: connect_setup(tinyp, bulk, k),
             BARE + " CONNECT setup": lambda k: connect_setup(bare_tcp, bulk, k)})
        total = args.mb * 1024 * 1024
        paths = (("gate", gate_tcp, bulk), ("gate.sock", sock, bulk),
                 ("direct", ("127.0.0.1", bulk_port), b""), ("tinyproxy", tinyp, bulk),
                 (SPLICED, spliced_tcp, bulk))
        runs = {name: 0.0 for name, _, _ in paths}
        for _ in range(3):  # best of 3, the paths taking turns
            for name, w, a in paths:
                runs[name] = max(runs[name], tunnel_mb_s(w, a, total))
        # The bare splice relay: two loopback hops at the kernel's own speed, no check, no loop;
        # where the gate's figure against it is near 1x, a relay in Python has no more to give.
        for anchor in ("direct", "tinyproxy", SPLICED):
            rows.append((f"tunnel download MB/s via gate ({args.mb} MiB, best of 3)",
                         runs["gate"], f"{anchor} download", runs[anchor]))
            out.append(Row(f"tunnel download via gate ({args.mb} MiB, best of 3)", runs["gate"],
                           "MB/s", f"{anchor} download, best of 3", runs[anchor],
                           {"direct": ">= 0.6x", "tinyproxy": ">= 4x"}.get(anchor, "")))
        # The run's gate.sock (a unix socket in its folder, for clients that take one): splice
        # into a unix socket copies, into TCP it hands pages on.
        rows.append((f"tunnel download MB/s via gate.sock ({args.mb} MiB, best of 3)",
                     runs["gate.sock"], "direct download", runs["direct"]))
        out.append(Row(f"tunnel download via the run's gate.sock ({args.mb} MiB, best of 3)",
                       runs["gate.sock"], "MB/s", "direct download, best of 3", runs["direct"]))
        count = max(n * 2, 1000)
        per_s = {"gate": 0.0, "tinyproxy": 0.0, "bare": 0.0}
        cpu = {"gate": 0.0, "tinyproxy": 0.0, "bare": 0.0}
        pids = {"gate": gate.pid, "tinyproxy": tiny.pid, "bare": bare.pid}
        for _ in range(2):  # best of 2, taking turns
            for name, w in (("gate", gate_tcp), ("tinyproxy", tinyp), ("bare", bare_tcp)):
                c0 = cpu_seconds(pids[name])
                per_s[name] = max(per_s[name], tunnels_per_second(w, bulk, 50, count))
                cpu[name] += cpu_seconds(pids[name]) - c0
        # The CPU each proxy spends per tunnel moves far less with the machine's load than
        # tunnels/s does (on 2 cores the client and the upstream compete for the same CPU).
        for name in cpu:
            cpu[name] = cpu[name] * 1e6 / (2 * count)
        rows.append(("proxy CPU per tunnel, us (gate)", cpu["gate"],
                     "tinyproxy, all its processes", cpu["tinyproxy"]))
        out.append(Row("proxy CPU per tunnel (50 concurrent clients)", cpu["gate"], "us",
                       "tinyproxy, all its processes", cpu["tinyproxy"], ""))
        rows.append(("proxy CPU per tunnel, us (gate)", cpu["gate"], BARE, cpu["bare"]))
        out.append(Row("proxy CPU per tunnel (50 concurrent clients)", cpu["gate"], "us",
                       BARE, cpu["bare"]))
        rows.append(("tunnels/s via gate (50 concurrent clients)", per_s["gate"],
                     "tinyproxy, same load", per_s["tinyproxy"]))
        out.append(Row(f"tunnels/s via gate (50 concurrent clients, {count} tunnels, best of 2)",
                       per_s["gate"], "/s", "tinyproxy, same load", per_s["tinyproxy"], ">= 1x"))
        out.append(Row(f"tunnels/s via gate (50 concurrent clients, {count} tunnels, best of 2)",
                       per_s["gate"], "/s", f"{BARE}, same load", per_s["bare"]))
        print(f"{'figure':58} {'value':>10}  {'anchor':38} {'value':>10} {'ratio':>7}")
        for figure, value, anchor, avalue in rows:
            print(f"{figure:58} {value:10.1f}  {anchor:38} {avalue:10.1f} {value / avalue:6.2f}x")
        print(f"# n={n} requests per figure; cpus={os.cpu_count()}; python {sys.version.split()[0]}")
        print()
        emit(out, f"gate (n={n} requests per figure; every proxy over TCP loopback, the gate as "
                  "inside a sandbox, at its bridge listener)")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-upstream":
        asyncio.run(_upstream())
    elif len(sys.argv) > 1 and sys.argv[1] in ("--serve-gate", "--serve-gate-unparked"):
        asyncio.run(_gate(sys.argv[2], [int(p) for p in sys.argv[3:]],
                          park=sys.argv[1] == "--serve-gate"))
    else:
        main()
