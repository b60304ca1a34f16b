"""Benchmark: the console's key-to-screen latency, CPU and memory while a run floods output,
beside the same with an idle run.

    .venv/bin/python bench/tui.py [--quick] [--seconds 60] [--minutes 5] [--rate 20000]
                                  [--heavy-rate 100000 | --no-heavy]

Each scenario has its own daemon (temporary PILOTHOUSE_HOME) and its own console, the real
`pilothouse` program in a pseudo-terminal (120x40) read by this script as a terminal would be:

- flood: a sandboxed python loop prints `--rate` lines a second (shell profile, bubblewrap);
- heavy: the same at `--heavy-rate` (100k lines a second): the console must stay usable, with
  what it cannot show dropped visibly (`⟨N lines dropped⟩`, counted in the status line);
- idle (the anchor): a sandboxed `sleep`.

The console opens the run's screen (live output in a Log). Then, every 0.3-0.6 s, the script
presses space (follow/pause) and times how long until the terminal receives the word the
status line shows after it (PAUSED, then FOLLOWING): key to screen, as a person sees it. CPU is
the console process's CPU time over the window; memory is its RSS, sampled every second.

Prints (through bench.common.emit, so `make bench` shows it too): figure, value (flood), anchor
value (idle), ratio, target. Targets (issue 17, point 5): p99 at most 50 ms under the 20k flood;
memory flat over the run (RSS growth over the second half at most 5 MiB; RSS is also printed at
the start and every minute: `--minutes 5` is the full run); under the heavy flood keys still
answer (p99 at most 100 ms) and memory stays flat. --quick: 20 s per scenario.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit, percentile  # noqa: E402

BIN = Path(sys.executable).parent
COLS, ROWS = 120, 40

FLOOD = """
import sys, time
rate, batch, i = {rate}, 200, 0
t0 = time.monotonic()
while True:
    sys.stdout.write("".join(f"flood {{i + k}} the quick brown fox jumps over the lazy dog\\n"
                             for k in range(batch)))
    sys.stdout.flush()
    i += batch
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


class Terminal:
    """A pseudo-terminal running the console; everything it writes is kept, with offsets."""

    def __init__(self, env: dict[str, str], profile: Path | None = None) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        command = [str(BIN / "pilothouse")]
        if profile is not None:  # the console under cProfile (its main thread)
            command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "console", "tui"]
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            with self.arrived:
                self.buf += chunk
                self.arrived.notify_all()

    def mark(self) -> int:
        with self.lock:
            return len(self.buf)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_for(self, needle: bytes, start: int, timeout: float) -> float | None:
        """Seconds (monotonic) when `needle` appeared after offset `start`, or None."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                if self.buf.find(needle, start) >= 0:
                    return time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.wait(left)

    def trim(self, keep: int = 1 << 20) -> None:
        """Drop old output (the flood writes a lot); offsets after this are relative again."""
        with self.lock:
            if len(self.buf) > 4 * keep:
                del self.buf[: len(self.buf) - keep]

    def tail(self, size: int = 1 << 16) -> bytes:
        with self.lock:
            return bytes(self.buf[-size:])

    def close(self) -> None:
        with_suppress(lambda: self.send(b"q"))
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with_suppress(lambda: os.close(self.fd))


def with_suppress(fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - best effort while tearing down
        pass


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    pause_ms: list[float] = field(default_factory=list)
    resume_ms: list[float] = field(default_factory=list)
    misses: int = 0
    cpu_percent: float = 0.0
    daemon_cpu_percent: float = 0.0  # the daemon and the run (its children), same window
    load: float = 0.0  # the machine's 1-minute load average at the end (others share it)
    rss_mb: list[float] = field(default_factory=list)
    lines_per_s: float = 0.0
    dropped_per_s: float = 0.0
    skipped_batches: int = 0


def scenario(name: str, command: list[str], seconds: float, workdir: Path,
             profile_dir: Path | None = None) -> Result:
    home = workdir / f"home-{name}"
    ws = workdir / f"ws-{name}"
    home.mkdir()
    ws.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update(PILOTHOUSE_HOME=str(home), PILOTHOUSE_CONFIG=str(home / "config.toml"),
               PILOTHOUSE_DESKTOP_NOTIFY="0", TERM="xterm-256color", COLORTERM="truecolor",
               PATH=f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}")
    cli = [str(BIN / "pilothouse")]
    daemon = subprocess.Popen([sys.executable, "-m", "console", "daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    term: Terminal | None = None
    try:
        sock = home / "run" / "operator.sock"
        for _ in range(200):  # `status` before the socket exists would start a second daemon
            if sock.exists() and subprocess.run(cli + ["status"], env=env,
                                                capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        run_id = subprocess.run(cli + ["run", "shell", "-w", str(ws), "--", *command], env=env,
                                capture_output=True, text=True, check=True).stdout.strip()
        term = Terminal(env, profile_dir / f"tui-{name}.prof" if profile_dir else None)
        if term.wait_for(run_id.encode(), 0, 30) is None:
            raise SystemExit(f"{name}: the console never showed run {run_id}")
        time.sleep(1.0)
        term.send(b"\r")  # the runs table has the focus, on the only run: open it
        if term.wait_for(b"FOLLOWING", term.mark(), 15) is None:
            raise SystemExit(f"{name}: the run screen did not open")
        time.sleep(2.0)  # let the stored output load
        proc = psutil.Process(term.proc.pid)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        daemon_cpu0 = tree_cpu(daemon.pid)
        result = Result()
        following = True
        next_rss = t0
        end = t0 + seconds
        first_total, first_dropped = total_at(term.tail()), dropped_at(term.tail())
        while time.monotonic() < end:
            if time.monotonic() >= next_rss:
                result.rss_mb.append(proc.memory_info().rss / 2**20)
                next_rss += 1.0
            term.trim()
            start = term.mark()
            sent = time.monotonic()
            term.send(b" ")
            shown = term.wait_for(b"PAUSED" if following else b"FOLLOWING", start, 5.0)
            if shown is None:
                result.misses += 1
            else:
                result.latencies_ms.append((shown - sent) * 1000)
                (result.pause_ms if following else result.resume_ms).append((shown - sent) * 1000)
            following = not following
            time.sleep(random.uniform(0.3, 0.6))
        if not following:
            term.send(b" ")
            term.wait_for(b"FOLLOWING", term.mark(), 5.0)
            time.sleep(0.5)
        wall = time.monotonic() - t0
        result.cpu_percent = 100 * (sum(proc.cpu_times()[:2]) - cpu0) / wall
        result.daemon_cpu_percent = 100 * (tree_cpu(daemon.pid) - daemon_cpu0) / wall
        result.load = os.getloadavg()[0]
        result.rss_mb.append(proc.memory_info().rss / 2**20)
        last_total = total_at(term.tail())
        if first_total is not None and last_total is not None:
            result.lines_per_s = (last_total - first_total) / wall
        last_dropped = dropped_at(term.tail())
        result.dropped_per_s = (last_dropped - first_dropped) / wall
        result.skipped_batches = term.tail(1 << 20).count(b"batch(es) were skipped")
        return result
    finally:
        if term is not None:
            term.close()
        subprocess.run(cli + ["daemon", "stop"], env=env, capture_output=True, timeout=30)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (the daemon, the sandbox, the run)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


TOTAL = re.compile(rb"([\d,]+) line\(s\) received")


def total_at(tail: bytes) -> int | None:
    found = TOTAL.findall(tail)
    return int(found[-1].replace(b",", b"")) if found else None


DROPPED = re.compile(rb"line\(s\) received, ([\d,]+) dropped")


def dropped_at(tail: bytes) -> int:
    """The status line's count of lines dropped (a flood faster than the screen)."""
    found = DROPPED.findall(tail)
    return int(found[-1].replace(b",", b"")) if found else 0


def per_minute(rss_mb: list[float]) -> str:
    """RSS at the start and then every minute (samples are a second apart)."""
    marks = list(range(0, len(rss_mb), 60))
    if marks[-1] != len(rss_mb) - 1:
        marks.append(len(rss_mb) - 1)
    return ", ".join(f"{i // 60}m{i % 60:02d}s {rss_mb[i]:.1f}" for i in marks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help="length of each scenario (60)")
    ap.add_argument("--quick", action="store_true", help="20 s per scenario unless given")
    ap.add_argument("--minutes", type=float, help="length of each scenario in minutes (e.g. 5)")
    ap.add_argument("--rate", type=int, default=20_000, help="lines a second in the flood")
    ap.add_argument("--heavy-rate", type=int, default=100_000,
                    help="lines a second in the heavy flood (the console must stay usable)")
    ap.add_argument("--no-heavy", action="store_true", help="skip the heavy flood")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="run the console under cProfile; write DIR/tui-flood.prof, DIR/tui-idle.prof")
    args = ap.parse_args()
    seconds = args.minutes * 60 if args.minutes else args.seconds or (20.0 if args.quick else 60.0)
    if shutil.which("bwrap") is None:
        raise SystemExit("bench/tui.py needs bubblewrap (apt-get install bubblewrap)")
    with tempfile.TemporaryDirectory(prefix="ph-bench-tui-") as tmp:
        work = Path(tmp)
        flood = scenario("flood", ["python3", "-c", FLOOD.format(rate=args.rate)], seconds, work,
                         args.profile)
        heavy = None if args.no_heavy else scenario(
            "heavy", ["python3", "-c", FLOOD.format(rate=args.heavy_rate)], seconds, work,
            args.profile)
        idle = scenario("idle", ["sleep", "100000"], seconds, work, args.profile)

    anchor = "same, idle run"
    f_lat, i_lat = flood.latencies_ms or [float("nan")], idle.latencies_ms or [float("nan")]
    mid_f, mid_i = len(flood.rss_mb) // 2, len(idle.rss_mb) // 2
    rows = [
        Row("key->screen p50, 20k lines/s flood", percentile(f_lat, 0.5), "ms", anchor,
            percentile(i_lat, 0.5)),
        Row("key->screen p99, 20k lines/s flood", percentile(f_lat, 0.99), "ms", anchor,
            percentile(i_lat, 0.99), "<= 50 ms"),
        Row("key->screen max", max(f_lat), "ms", anchor, max(i_lat)),
        Row("console CPU (% of one core)", flood.cpu_percent, "%", anchor, idle.cpu_percent),
        Row("daemon + run CPU (% of one core)", flood.daemon_cpu_percent, "%", anchor,
            idle.daemon_cpu_percent),
        Row("console RSS at start", flood.rss_mb[0], "MiB", anchor, idle.rss_mb[0]),
        Row("console RSS at end", flood.rss_mb[-1], "MiB", anchor, idle.rss_mb[-1]),
        Row("console RSS max", max(flood.rss_mb), "MiB", anchor, max(idle.rss_mb)),
        Row("console RSS growth, 2nd half (flat)", flood.rss_mb[-1] - flood.rss_mb[mid_f], "MiB",
            anchor, idle.rss_mb[-1] - idle.rss_mb[mid_i], "<= 5 MiB"),
        Row("output lines/s reaching the console", flood.lines_per_s, "/s", anchor,
            idle.lines_per_s),
        Row("output lines/s dropped (shown)", flood.dropped_per_s, "/s", anchor, idle.dropped_per_s),
    ]
    if heavy is not None:
        h_lat = heavy.latencies_ms or [float("nan")]
        mid_h = len(heavy.rss_mb) // 2
        k = f"{args.heavy_rate // 1000}k"
        rows += [
            Row(f"key->screen p50, {k} lines/s flood", percentile(h_lat, 0.5), "ms", anchor,
                percentile(i_lat, 0.5)),
            Row(f"key->screen p99, {k} lines/s flood", percentile(h_lat, 0.99), "ms", anchor,
                percentile(i_lat, 0.99), "<= 100 ms"),
            Row(f"console CPU, {k} flood (% of one core)", heavy.cpu_percent, "%", anchor,
                idle.cpu_percent),
            Row(f"daemon + run CPU, {k} flood (% of one core)", heavy.daemon_cpu_percent, "%",
                anchor, idle.daemon_cpu_percent),
            Row(f"console RSS max, {k} flood", max(heavy.rss_mb), "MiB", anchor, max(idle.rss_mb)),
            Row(f"console RSS growth, 2nd half, {k} flood", heavy.rss_mb[-1] - heavy.rss_mb[mid_h],
                "MiB", anchor, idle.rss_mb[-1] - idle.rss_mb[mid_i], "<= 5 MiB"),
            Row(f"output lines/s reaching the console, {k}", heavy.lines_per_s, "/s", anchor,
                idle.lines_per_s),
            Row(f"output lines/s dropped (shown), {k}", heavy.dropped_per_s, "/s", anchor,
                idle.dropped_per_s),
        ]
    emit(rows, f"tui ({seconds:.0f} s per scenario, flood asked for {args.rate} lines/s, "
               f"console in a {COLS}x{ROWS} pty)")
    print(f"# {len(flood.latencies_ms)} / {len(idle.latencies_ms)} key presses timed "
          f"({flood.misses} / {idle.misses} not seen within 5 s); {flood.skipped_batches} output "
          f"batch(es) skipped by the daemon for a slow reader; cpus={os.cpu_count()}; load "
          f"{flood.load:.1f} / {idle.load:.1f} (1 min, at the end); "
          f"python {sys.version.split()[0]}")
    for name, result in (("flood", flood), ("heavy", heavy), ("idle", idle)):
        if result is not None:
            print(f"# RSS MiB ({name}), at the start and every minute: {per_minute(result.rss_mb)}")
    if heavy is not None:
        print(f"# heavy flood: {len(heavy.latencies_ms)} key presses timed ({heavy.misses} not "
              f"seen within 5 s); {heavy.skipped_batches} batch(es) skipped by the daemon")
    if flood.pause_ms and flood.resume_ms:
        print(f"# under the flood: pause p50/max {percentile(flood.pause_ms, 0.5):.0f}/"
              f"{max(flood.pause_ms):.0f} ms, resume (appends the held lines) p50/max "
              f"{percentile(flood.resume_ms, 0.5):.0f}/{max(flood.resume_ms):.0f} ms")


if __name__ == "__main__":
    main()
