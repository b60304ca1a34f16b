"""The daemon under attack from inside a real bubblewrap sandbox, with the default [limits]:
what each bound holds the daemon to, beside the same figure before the attack.

    .venv/bin/python bench/daemon_attack.py [--conns 2000] [--flood-s 10]

A. connections held open on agent.sock: daemon fds and `pilothouse approvals` latency
B. partial request heads (30 KB each, never finished) at the gate: daemon RSS
C. a flood of rule-decided asks and denied CONNECTs: database growth and operator latency

Needs bubblewrap. Timing is reported, never asserted (tests/core/test_bounds.py asserts the
bounds themselves with small limits).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, emit  # noqa: E402
from tests.core.hold_connections import install as install_hold  # noqa: E402

BIN = Path(sys.executable).parent
CONFIG = """
[profiles.attack]
command = ["true"]
[profiles.attack.network]
default = "deny"
deny = ["**.blocked.invalid"]
[profiles.attack.exec]
default = "ask"
allow = ["echo"]
"""

FLOOD = r"""
import json, socket, sys, time
end = time.monotonic() + float(sys.argv[1])
s = socket.socket(socket.AF_UNIX); s.connect("/run/pilothouse/agent.sock")
f = s.makefile("rwb")
asks = connects = i = 0
while time.monotonic() < end:
    f.write(json.dumps({"v": 1, "id": i, "op": "ask", "args": {"kind": "exec", "subject": "echo hi"}}).encode() + b"\n")
    f.flush(); f.readline(); asks += 1
    host = f"n{i}.blocked.invalid" if i % 2 else "same.blocked.invalid"
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode()); c.recv(4096); c.close()
    connects += 1; i += 1
print(json.dumps({"asks": asks, "connects": connects}))
"""


class Daemon:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")},
                    "PILOTHOUSE_HOME": str(home), "PILOTHOUSE_CONFIG": str(home / "config.toml"),
                    "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "pilothouse"), *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def start(self) -> None:
        log = open(self.home / "daemon.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "console", "daemon"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while self.cli("status").returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.cli("daemon", "stop")
        if self.proc is not None:
            self.proc.wait(30)

    @property
    def fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    @property
    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def approvals_ms(self) -> float:
        t = time.perf_counter()
        self.cli("approvals", "--json")
        return (time.perf_counter() - t) * 1000

    def background(self, ws: Path, *cmd: str) -> threading.Thread:
        t = threading.Thread(target=lambda: self.cli("run", "attack", "-w", str(ws), "--wait",
                                                     "--", *cmd, timeout=600))
        t.start()
        return t


def _held(ws: Path) -> dict[str, int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (ws / ".held").exists() and (ws / ".held").read_text():
            return json.loads((ws / ".held").read_text())
        time.sleep(0.1)
    raise SystemExit("the attack never got going")


def hold(d: Daemon, ws: Path, target: str, n: int, payload: str) -> tuple[int, float, float]:
    for name in (".held", ".release"):
        (ws / name).unlink(missing_ok=True)
    t = d.background(ws, "python3", "hold.py", target, str(n), payload, "600")  # until .release
    _held(ws)  # every connection it could open is open
    time.sleep(1)
    fds, rss, lat = d.fds, d.rss_mb, d.approvals_ms()
    (ws / ".release").write_text("1")
    t.join(120)
    return fds, rss, lat


def _rows(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def _last_run(d: Daemon) -> str:
    runs = json.loads(d.cli("ps", "--all", "--json").stdout)
    return max(runs, key=lambda r: r.get("started_at") or 0)["id"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--flood-s", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ph-attack-") as tmp:
        home, ws = Path(tmp) / "home", Path(tmp) / "ws"
        home.mkdir()
        ws.mkdir()
        (home / "config.toml").write_text(CONFIG)
        install_hold(ws)
        (ws / "flood.py").write_text(FLOOD)
        d = Daemon(home)
        d.start()
        rows: list[Row] = []
        try:
            fds0, rss0, lat0 = d.fds, d.rss_mb, d.approvals_ms()
            fds, _, lat = hold(d, ws, "/run/pilothouse/agent.sock", args.conns, "")
            rows.append(Row(f"daemon fds, {args.conns} agent.sock conns held", fds, "fds",
                            "idle daemon", fds0))
            rows.append(Row("approvals latency during that", lat, "ms", "idle daemon", lat0))
            head = "GET http://a.blocked.invalid/ HTTP/1.1\r\nX-Pad: " + "a" * 30_000
            _, rss, lat = hold(d, ws, "bridge", args.conns, head)
            rows.append(Row(f"daemon RSS, {args.conns} partial 30 KB heads", rss, "MB",
                            "idle daemon", rss0))
            db = home / "data" / "pilothouse.db"

            def size() -> int:  # the database's pages, WAL included (not the WAL's length)
                import sqlite3

                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                try:
                    pages = conn.execute("PRAGMA page_count").fetchone()[0]
                    return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])
                finally:
                    conn.close()

            before = size()
            rows0 = _rows(db)
            t = d.background(ws, "python3", "flood.py", str(args.flood_s))
            time.sleep(args.flood_s / 2)
            lat = d.approvals_ms()
            t.join(600)
            time.sleep(1.5)
            grown = (size() - before) / 2**20
            rows.append(Row(f"database growth, {args.flood_s:g} s flood", grown, "MB",
                            "before (MB)", before / 2**20))
            rows.append(Row("approvals latency during the flood", lat, "ms", "idle daemon", lat0))
            out = d.cli("logs", _last_run(d)).stdout.splitlines()
            attempts = json.loads(out[-1]) if out and out[-1].startswith("{") else {}
            rows.append(Row("event rows stored for the flood", _rows(db) - rows0, "rows",
                            "asks + CONNECTs sent", sum(attempts.values()) or float("nan")))
        finally:
            d.stop()
        emit(rows, "daemon under attack (default [limits])")
        print(json.dumps({"log_bytes": (home / "daemon.out").stat().st_size}))


if __name__ == "__main__":
    main()
