"""Benchmark: how long the CLI takes to start and answer, beside `python -c pass`.

    .venv/bin/python bench/cli.py [--quick] [-n 40] [--profile]

Rows (p50 over N runs, interleaved with the anchor so drift hits both): `pilothouse --version`,
`pilothouse ps --json` and `pilothouse approvals --json` against a daemon on a temporary
PILOTHOUSE_HOME, each beside `python -c pass` (the same interpreter) measured in this run.
Target (issue 17): each at most 1.5x the anchor. One more row runs `ps --json` as most people
do, without PILOTHOUSE_HOME (the user's XDG places under a throwaway HOME, a daemon there).

Measured twice. "installed": a throwaway venv where the package is found through a plain .pth
line, as after `pip install pilothouse`; the anchor there is a bare interpreter start, and the
targets are read on these rows. "make setup": the development venv, an editable install
(a plain .pth line too, as `make setup` asks for: setuptools' default editable mode would add
an import finder, pathlib and re, to every Python start there, the anchor's included); shown
without a target, as is `ps` as a table (rich loaded). The same commands' CPU time (user +
system, the child alone) follows as rows without a target: on a loaded machine it moves far
less than the wall clock.
--profile prints what `--version` and `ps --json` import beyond `python -c pass`
(`python -X importtime`, the program's own top-level imports, largest first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, as_installed, emit, installed_layout  # noqa: E402

PYTHON = sys.executable
CLI = str(Path(sys.executable).parent / "pilothouse")
COMMANDS = {
    "pilothouse --version": ["--version"],
    "pilothouse ps --json": ["ps", "--json"],
    "pilothouse approvals --json": ["approvals", "--json"],
    "pilothouse ps (table)": ["ps"],
}
TARGETS = {"pilothouse ps (table)": ""}
USER_ROW = "pilothouse ps --json, no PILOTHOUSE_HOME"


def start_daemon(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A daemon with this environment (its places: env's PILOTHOUSE_HOME, else env's HOME)."""
    with open(home / "daemon.log", "ab") as log:
        proc = subprocess.Popen([PYTHON, "-m", "console", "daemon"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    from console.client.sync import Client, ClientError
    from console.paths import resolve

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        paths = resolve()  # where that daemon's socket is, as its CLI finds it
    finally:
        os.environ.clear()
        os.environ.update(saved)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        # Asked without starting a daemon (`pilothouse status` would start a rival one).
        try:
            with Client(paths, autostart=False) as client:
                if client.call("hello")["pid"] == proc.pid:
                    return proc
        except (ClientError, OSError):
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"the daemon did not start: {(home / 'daemon.log').read_text()[-2000:]}")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms): the CPU time (user + system) of the child alone is what a loaded
    machine distorts least, so it is shown beside the wall-clock figure."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def import_profile(env: dict[str, str], argv: list[str], floor_us: int = 150) -> None:
    """What `pilothouse ARGV` imports beyond `python -c pass` (everything after `site`), three
    levels of the import tree, in import order, each at least floor_us (this run)."""
    done = subprocess.run([PYTHON, "-X", "importtime", CLI, *argv], env=env,
                          capture_output=True, text=True)
    rows, after_site, total = [], False, 0
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2][1:].rstrip()  # "| name", two more spaces a level down
        depth = (len(name) - len(name.lstrip())) // 2
        if depth == 0 and name == "site":
            after_site = True
        elif after_site and depth <= 2:
            total += int(parts[1]) if depth == 0 else 0
            rows.append((int(parts[1]), int(parts[0]), name))
    print(f"imports of `pilothouse {' '.join(argv)}` beyond `python -c pass`: {total} us under "
          "-X importtime (cumulative us, self us, module; children above their parent):")
    for cumulative, own, name in rows:
        if cumulative >= floor_us:
            print(f"  {cumulative:8d} {own:8d}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a short run: -n 20 unless -n is given")
    ap.add_argument("-n", type=int, default=None, help="runs of each (default 40, 20 with --quick)")
    ap.add_argument("--profile", action="store_true", help="also print the import profile")
    opts = ap.parse_args()
    n = opts.n or (20 if opts.quick else 40)
    home = Path(tempfile.mkdtemp(prefix="ph-bench-cli-"))
    env = as_installed({k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")})
    env |= {"PILOTHOUSE_HOME": str(home), "PILOTHOUSE_CONFIG": str(home / "config.toml")}
    daemon = start_daemon(home, env)
    # As most people run it: no PILOTHOUSE_HOME, the XDG places under a HOME of its own.
    user_env = {k: v for k, v in env.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    user_env["HOME"] = str(home / "user")
    (home / "user").mkdir()
    user_daemon = start_daemon(home / "user", user_env)
    python, cli = installed_layout(home / "venv", CLI)
    layouts = {"installed": (python, cli), "make setup": (PYTHON, CLI)}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {
        (layout, name): [] for layout in layouts for name in ["python -c pass", *COMMANDS]}
    times["installed", USER_ROW] = []
    try:
        for py, program in layouts.values():  # warm-up: page cache, .pyc files
            timed([py, "-c", "pass"], env)
            for argv in COMMANDS.values():
                timed([program, *argv], env)
        for _ in range(n):
            for layout, (py, program) in layouts.items():
                times[layout, "python -c pass"].append(timed([py, "-c", "pass"], env))
                for name, argv in COMMANDS.items():
                    times[layout, name].append(timed([program, *argv], env))
            times["installed", USER_ROW].append(timed([cli, "ps", "--json"], user_env))
        if opts.profile:
            for argv in (["--version"], ["ps", "--json"]):
                import_profile(env, argv)
    finally:
        for proc in (daemon, user_daemon):
            proc.terminate()
            proc.wait(20)
        shutil.rmtree(home, ignore_errors=True)

    def p50(layout: str, name: str, which: int) -> float:
        return statistics.median(sample[which] for sample in times[layout, name])

    rows = []
    for layout in layouts:
        anchor = f"python -c pass ({layout}), p50"
        target = "<= 1.5x" if layout == "installed" else ""
        rows += [Row(f"{name} ({layout}), p50", p50(layout, name, 0), "ms", anchor,
                     p50(layout, "python -c pass", 0), TARGETS.get(name, target))
                 for name in COMMANDS]
    rows.append(Row(f"{USER_ROW} (installed), p50", p50("installed", USER_ROW, 0), "ms",
                    "python -c pass (installed), p50", p50("installed", "python -c pass", 0),
                    "<= 1.5x"))
    rows += [Row(f"{name} (installed), CPU p50", p50("installed", name, 1), "ms",
                 "python -c pass (installed), CPU p50", p50("installed", "python -c pass", 1))
             for name in COMMANDS]
    emit(rows, f"CLI start (n={n}, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
