"""Benchmark: start-to-exit of /bin/true through each sandbox backend, beside its raw anchor.

    .venv/bin/python bench/sandbox.py [--quick] [-n 30] [--no-docker] [--no-cli]

Rows (p50 and p99 over N runs, all measured in this one run, interleaved so drift hits all):

- bwrap backend: BwrapBackend.start + wait (cgroups, protected paths, /etc masks, info/block fd)
  against raw `bwrap` started as root with build_args of the same bench spec ("bench spec": no
  workspace view, no agent files, no seccomp, no switch to the agent's identity).
- bwrap backend + bridge: the same plus the bridge listener put into the namespace (what every
  real run pays) against the same raw bwrap.
- docker backend: DockerBackend.start + wait + removal (FIFO release, attach, labels) against
  `docker run --rm` with the same options on the CLI (network none, read-only, tmpfs, cap-drop,
  no-new-privileges, init, user, limits, the same mounts).
- pilothouse run --wait: the CLI against a daemon on a temporary PILOTHOUSE_HOME (store commit,
  run sockets, bridge, output streaming), the CLI as installed (no editable finder:
  bench.common.installed_layout). Skipped when the CLI is missing. Its anchor with the target is
  raw bwrap with the daemon's own argv ("daemon's argv", bench/raw_argv_daemon.py: the same
  options file, the same read-only binds of the agent's pinned files and the /etc masks, the
  view, seccomp, started as the agent's identity), timed by a second daemon patched for the
  bench; the row against the bench spec stays beside it. Those binds are most of bwrap's own
  time: it remounts each one and re-reads the mount table for each.
  The daemon's part gets a row of its own (the same run through the client library, in this
  process: no Python start); the CLI process (run --wait minus that row) gets a row beside
  `python -c pass`, its floor: starting the interpreter alone. The same daemon
  row with a git repository as the workspace (git init plus a hooksPath) shows what
  protecting a repository adds.

Each row prints: figure, p50 ms, p99 ms, anchor, anchor p50 and p99 ms, ratio of the p50s.
--quick runs 15 of each (full: 30). The p50 and p99 rows also go through bench.common.emit
(the table `make bench` prints), each percentile beside the anchor's same percentile. Targets:
`pilothouse run --wait` at most 25 ms added to raw bwrap at p50 (issue 17); the Docker backend
within 1.2x of `docker run` (p50).

Where the daemon's part goes (root daemon, bwrap, empty workspace): the run.started commit
(beside it, a kept run folder is renamed into place: console/sandbox/spare_folders.py), the
workspace view (open_tree/move_mount clones), the
fork of bwrap (through setpriv, so the daemon is vfork-ed, not copied), the cgroup move
(beside the bridge and the run's sockets), bwrap itself, then at the end the view's unmount
and the mountpoints' removal, and the run.ended commit (with the run's row, one flush); the run
folder goes back to be kept, cleaned in a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, as_installed, emit, installed_layout  # noqa: E402
from console.sandbox.base import (  # noqa: E402
    Limits,
    SandboxSpec,
    owner_key,
    prepare_run_dir,
)
from console.sandbox.bridge import open_bridge_listener, serve_bridge  # noqa: E402
from console.sandbox.bwrap import BwrapBackend, find_bwrap  # noqa: E402
from console.sandbox.bwrap_args import FdBinds, build_args  # noqa: E402

LIMITS = Limits(memory_bytes=1 << 30, pids=256, cpus=1.0)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


class Bench:
    def __init__(self, n: int) -> None:
        self.n = n
        self.base = Path(tempfile.mkdtemp(prefix="ph-bench-"))
        os.chmod(self.base, 0o755)
        self.ws = self.base / "ws"
        self.ws.mkdir()
        self.runs = self.base / "runs"
        self.count = 0

    def spec(self, command: list[str], image: str | None = None) -> SandboxSpec:
        self.count += 1
        rid = f"b{self.count}"
        rd = self.runs / rid
        prepare_run_dir(rd)
        return SandboxSpec(run_id=rid, profile="bench", command=command, workspace=self.ws,
                           run_dir=rd, env={"PATH": "/usr/bin:/bin"}, limits=LIMITS,
                           image=image)  # fmt: skip


async def time_async(fn: Callable[[], Awaitable[None]]) -> float:
    t = time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000


def time_sync(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def raw_bwrap_runner(b: Bench, bwrap: str) -> Callable[[], None]:
    spec = b.spec(["/bin/true"])
    binds = FdBinds()  # the descriptors stay open for the bench's life; each run inherits them
    args = build_args(spec, fds=binds)
    data = b"".join(a.encode() + b"\0" for a in args)

    def run() -> None:
        fd = os.memfd_create("a", 0)
        os.write(fd, data)
        os.lseek(fd, 0, 0)
        subprocess.run([bwrap, "--args", str(fd), "--", "/bin/true"], pass_fds=(fd, *binds.fds),
                       stdin=subprocess.DEVNULL, check=True)  # fmt: skip
        os.close(fd)

    return run


def docker_cli_runner(b: Bench, image: str) -> Callable[[], None] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    rd = b.runs / "cli"
    prepare_run_dir(rd)
    argv = [
        docker, "run", "--rm", "--network", "none", "--read-only",
        "--tmpfs", "/tmp:rw,nosuid,nodev,size=512m,mode=1777",
        "--tmpfs", "/home/agent:rw,nosuid,nodev,size=512m,mode=0700",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--init",
        "--user", "65534:65534", "--pids-limit", "256", "--memory", "1g", "--memory-swap", "1g",
        "--cpus", "1", "--label", "pilothouse.run=bench-cli",
        "--mount", f"type=bind,src={b.ws},dst=/workspace",
        "--mount", f"type=bind,src={rd},dst=/run/pilothouse,readonly",
        "-w", "/workspace", image, "/bin/true",
    ]  # fmt: skip
    return lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


class CliDaemon:
    """A daemon on a temporary PILOTHOUSE_HOME with one profile running /bin/true in bwrap."""

    def __init__(self, b: Bench, name: str = "phhome", entry: list[str] | None = None) -> None:
        """entry: how the daemon is started (default: the real one, `python -m console daemon`)."""
        self.home = b.base / name
        self.home.mkdir()
        self.entry = entry or [sys.executable, "-m", "console", "daemon"]
        # A repository as the workspace: the view protects .git (config, hooks, ...) and
        # reads the config for what it names.
        self.git_ws = b.base / f"{name}-gitws"
        subprocess.run(["git", "init", "-q", str(self.git_ws)], check=True)
        (self.git_ws / "tools").mkdir()
        subprocess.run(["git", "-C", str(self.git_ws), "config", "core.hooksPath", "./tools"],
                       check=True)  # fmt: skip
        (self.home / "config.toml").write_text(
            '[profiles.bench]\ncommand = ["/bin/true"]\nsandbox = "bwrap"\n'
        )
        self.env = as_installed({**os.environ, "PILOTHOUSE_HOME": str(self.home)})
        self.dev_cli = str(Path(sys.executable).parent / "pilothouse")
        self.python, self.cli = sys.executable, self.dev_cli  # installed_layout() by start()
        self.venv = b.base / "venv"
        self.ws = b.ws
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        if not os.access(self.dev_cli, os.X_OK):
            return False
        # As installed (bench.common.installed_layout), whatever the development venv holds.
        self.python, self.cli = installed_layout(self.venv, self.dev_cli)
        log = open(self.home / "daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.entry, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (self.home / "run" / "operator.sock").exists():
                try:
                    self.run()
                    return True
                except subprocess.CalledProcessError:
                    pass
            time.sleep(0.2)
        return False

    def run(self) -> None:
        subprocess.run([self.cli, "run", "--wait", "-w", str(self.ws), "bench"], env=self.env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def start_python(self) -> None:
        """`python -c pass` with the CLI's environment: the floor of any Python CLI."""
        subprocess.run([self.python, "-c", "pass"], env=self.env, check=True)

    def run_client(self, ws: Path | None = None) -> None:
        """The same run through the daemon with the client library: what `run --wait` costs
        without starting a Python process for the CLI."""
        from console.client.sync import Client
        from console.paths import resolve

        if not hasattr(self, "_client"):
            self._client = Client(resolve(self.home), autostart=False)
        rec = self._client.call("run.start", profile="bench", workspace=str(ws or self.ws))
        for _kind, _payload in self._client.stream("logs", run=rec["id"], follow=True):
            pass

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short run: -n 15 unless -n is given")
    ap.add_argument("-n", type=int, default=None, help="runs of each (default 30, 15 with --quick)")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-cli", action="store_true")
    opts = ap.parse_args()
    if opts.n is None:
        opts.n = 15 if opts.quick else 30
    b = Bench(opts.n)
    bwrap = find_bwrap()
    if bwrap is None:
        sys.exit("bubblewrap is not installed")
    backend = BwrapBackend(owner=owner_key(b.runs))
    raw = raw_bwrap_runner(b, bwrap)
    servers: list[asyncio.Server] = []

    async def gate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def with_bridge(h) -> None:  # type: ignore[no-untyped-def]
        servers.append(await serve_bridge(await open_bridge_listener(h.netns_pid), gate))

    # Run folders are made before the clock starts: the run manager makes them, not the backend.
    async def via_backend(spec: SandboxSpec, prepare=None) -> None:  # type: ignore[no-untyped-def]
        h = await backend.start(spec, prepare)
        await h.output.read()
        await h.wait()

    docker_backend = docker_cli = image = None
    if not opts.no_docker:
        try:
            from console.sandbox.docker import DockerBackend
            from tests.images.build import busybox_image

            docker_backend = DockerBackend(owner=owner_key(b.runs))
            if docker_backend.usable()[0]:
                image = busybox_image(docker_backend.client)
                docker_cli = docker_cli_runner(b, image)
            else:
                docker_backend = None
        except Exception as e:  # noqa: BLE001 - a bench reports and goes on
            print(f"docker skipped: {e}", file=sys.stderr)
            docker_backend = None

    async def via_docker(spec: SandboxSpec) -> None:
        assert docker_backend is not None
        h = await docker_backend.start(spec)
        await h.output.read()
        await h.wait()

    daemon = None if opts.no_cli else CliDaemon(b)
    if daemon is not None and not daemon.start():
        print("pilothouse run --wait skipped: the CLI or daemon did not start", file=sys.stderr)
        daemon.stop()
        daemon = None
    # A second daemon, patched for the bench only, times raw bwrap with the exact argv the
    # daemon gives it (bench/raw_argv_daemon.py): the anchor with the same options.
    raw_argv_out = b.base / "raw-argv.txt"
    same_argv = None if daemon is None else CliDaemon(
        b, "phhome-raw-argv", [sys.executable, str(ROOT / "bench" / "raw_argv_daemon.py")])
    if same_argv is not None:
        same_argv.env["RAW_ARGV_OUT"] = str(raw_argv_out)
        if not same_argv.start():
            print("the daemon's-argv anchor skipped: its daemon did not start", file=sys.stderr)
            same_argv.stop()
            same_argv = None

    t: dict[str, list[float]] = {k: [] for k in
                                 ("raw", "backend", "bridge", "docker", "docker_cli", "cli",
                                  "client", "client_git", "python", "raw_argv")}  # fmt: skip
    # Warm-up: first runs pay page cache and image probes.
    true = ["/bin/true"]
    raw()
    await via_backend(b.spec(true))
    if docker_backend is not None:
        await via_docker(b.spec(true, image))
    for _ in range(opts.n):
        t["raw"].append(time_sync(raw))
        s1, s2 = b.spec(true), b.spec(true)
        t["backend"].append(await time_async(lambda s=s1: via_backend(s)))
        t["bridge"].append(await time_async(lambda s=s2: via_backend(s, with_bridge)))
        if docker_backend is not None:
            s3 = b.spec(true, image)
            t["docker"].append(await time_async(lambda s=s3: via_docker(s)))
            if docker_cli is not None:
                t["docker_cli"].append(time_sync(docker_cli))
        if daemon is not None:
            t["cli"].append(time_sync(daemon.run))
            t["client"].append(time_sync(daemon.run_client))
            t["client_git"].append(time_sync(lambda d=daemon: d.run_client(d.git_ws)))
            t["python"].append(time_sync(daemon.start_python))
        if same_argv is not None:
            same_argv.run_client()
        for s in servers:
            s.close()
        servers.clear()
    for d in (daemon, same_argv):
        if d is not None:
            d.stop()
    if same_argv is not None:
        samples = [line.split() for line in raw_argv_out.read_text().splitlines()]
        failed = [rc for _ms, rc in samples if rc != "0"]
        if failed:
            print(f"the daemon's-argv anchor failed ({len(failed)} raw starts exited non-zero): "
                  "its row is left out", file=sys.stderr)
        else:
            t["raw_argv"] = [float(ms) for ms, _rc in samples[-opts.n:]]  # warm-up left out

    rows: list[Row] = []

    def row(name: str, key: str, anchor: str, akey: str, target: str = "") -> None:
        xs, ys = t[key], t[akey]
        if not xs or not ys:
            return
        p50, p99, a50, a99 = statistics.median(xs), pct(xs, 99), statistics.median(ys), pct(ys, 99)
        print(f"{name:<30} {p50:8.1f} {p99:8.1f}   {anchor:<26} {a50:8.1f} {a99:8.1f}   "
              f"{p50 / a50:5.2f}x")
        rows.append(Row(f"{name}, p50", p50, "ms", f"{anchor}, p50", a50, target))
        rows.append(Row(f"{name}, p99", p99, "ms", f"{anchor}, p99", a99))

    print(f"start-to-exit of /bin/true, n={opts.n}, {os.cpu_count()} CPUs")
    print(f"{'figure':<30} {'p50 ms':>8} {'p99 ms':>8}   {'anchor':<26} {'p50 ms':>8} {'p99 ms':>8}"
          "   ratio")
    row("bwrap backend", "backend", "raw bwrap, bench spec", "raw")
    row("bwrap backend + bridge", "bridge", "raw bwrap, bench spec", "raw")
    row("docker backend", "docker", "docker run --rm, same opts", "docker_cli", "<= 1.2x")
    row("pilothouse run --wait (bwrap)", "cli", "raw bwrap, daemon's argv", "raw_argv",
        "<= +25 ms")
    row("pilothouse run --wait (bwrap)", "cli", "raw bwrap, bench spec", "raw")
    row("run via daemon, client library", "client", "raw bwrap, bench spec", "raw")
    row("same, git repository workspace", "client_git", "raw bwrap, bench spec", "raw")
    if t["cli"] and t["client"] and t["raw"]:
        # bwrap with the daemon's own argv where it was measured: bwrap's share of the run.
        which, label = ("raw_argv", "the daemon's argv") if t["raw_argv"] else ("raw", "bench spec")
        cli, client, raw = (statistics.median(t[k]) for k in ("cli", "client", which))
        python = statistics.median(t["python"])
        print(f"run --wait p50 {cli:.1f} ms = raw bwrap ({label}) {raw:.1f} + the daemon's part "
              f"{client - raw:.1f} (client library row minus raw) + the CLI process "
              f"{cli - client:.1f} (run --wait minus the client library row), of which "
              f"starting Python alone (`python -c pass`) is {python:.1f}")
        # The CLI's floor: the interpreter's start is paid before any of Pilothouse runs.
        rows.append(Row("the CLI process of run --wait, p50", cli - client, "ms",
                        "python -c pass, p50", python))
    shutil.rmtree(b.base, ignore_errors=True)
    print()
    emit(rows, f"sandbox (start-to-exit of /bin/true, n={opts.n})")


if __name__ == "__main__":
    asyncio.run(main())
