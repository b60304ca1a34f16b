"""Where a run's start goes: the daemon's steps for `run --wait -- /bin/true`, on one clock.

    .venv/bin/python bench/run_steps.py [-n 25]

A profile, not a figure with a target (bench/sandbox.py has the row): it starts a daemon on a
temporary PILOTHOUSE_HOME in a child process with wall-clock marks around its steps, starts
/bin/true through the client library n times (the first five are warm-up), and prints each
step's median start (from the client's call) and duration, beside raw bwrap with the same
options. The marks wrap the daemon's functions from outside (this file only; nothing in the
daemon knows of them): steps that overlap (the cgroup move and the channels) show as such.
perf_counter is CLOCK_MONOTONIC on Linux, so the client's and the daemon's marks compare.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (module, attribute path, shown as): the steps of RunManager.start and of the bwrap backend.
STEPS = [
    ("console.daemon.runs", "open_workspace", "check and open the workspace"),
    ("console.daemon.runs", "RunManager._new_id", "new run id"),
    ("console.sandbox.spare_folders", "SpareRunFolders.take", "run folder (a spare renamed)"),
    ("store.writer", "StoreWriter.acommit", "commit (run.started; #2 run.ended)"),
    ("console.sandbox.bwrap", "BwrapBackend.start", "backend start (to the sandbox's release)"),
    ("console.sandbox.bwrap", "open_view", "workspace view (protected paths)"),
    ("console.sandbox.view", "plan_protection", "  of which the plan (what to protect)"),
    ("console.sandbox.view", "WorkspaceView._make_mountpoints", "  of which masks' mountpoints"),
    ("console.sandbox.view", "WorkspaceView._stage", "  of which the staged view (root)"),
    ("console.sandbox.view", "WorkspaceView._hand_off", "  of which the hand-off (root)"),
    ("console.sandbox.cgroups", "Limiter.start_move_early", "early write (RCU wait, a thread)"),
    ("console.sandbox.bwrap", "_create_after", "cgroups made (waits for the early write)"),
    ("console.sandbox.bwrap", "build_args", "bwrap arguments"),
    ("console.sandbox.bwrap", "_read_info", "bwrap exec to its child's pid"),
    ("console.sandbox.bwrap", "_attach", "cgroup move (after the early one)"),
    ("console.daemon.channels", "RunChannels.prepare", "agent.sock, gate.sock, bridge"),
    ("console.sandbox.bwrap", "BwrapHandle.wait", "the sandbox runs /bin/true and exits"),
    ("console.sandbox.bwrap", "BwrapHandle._cleanup", "cgroups removed, view closed"),
    ("console.sandbox.bwrap", "_close_view", "  of which the view (a thread)"),
    ("console.sandbox.cgroups", "RunLimits.cleanup", "  of which the cgroups' rmdir"),
    ("console.daemon.runs", "RunManager._finish", "teardown and run.ended"),
]


def _daemon() -> None:
    """The daemon, marked: each step's (name, start, end) goes to $RUN_STEPS on SIGUSR1."""
    import asyncio
    import importlib

    marks: list[tuple[str, float, float]] = []

    def wrap(owner: Any, attr: str, name: str) -> None:
        fn = getattr(owner, attr)
        if asyncio.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def marked(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                try:
                    return await fn(*a, **k)
                finally:
                    marks.append((name, t, time.perf_counter()))
        else:
            @functools.wraps(fn)
            def marked(*a: Any, **k: Any) -> Any:  # type: ignore[misc]
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    marks.append((name, t, time.perf_counter()))
        setattr(owner, attr, marked)

    for module, path, name in STEPS:
        owner: Any = importlib.import_module(module)
        *parents, attr = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        wrap(owner, attr, name)

    def dump(*_: Any) -> None:
        Path(os.environ["RUN_STEPS"]).write_text(json.dumps(marks))

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["pilothouse", "daemon"]
    from console.cli.main import main

    main()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=25, help="runs (the first five are warm-up)")
    opts = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ph-steps-"))
    os.chmod(base, 0o755)
    home, ws, steps = base / "home", base / "ws", base / "steps.json"
    home.mkdir()
    ws.mkdir()
    (home / "config.toml").write_text('[profiles.bench]\ncommand = ["/bin/true"]\n'
                                      'sandbox = "bwrap"\n')
    env = {**os.environ, "PILOTHOUSE_HOME": str(home), "RUN_STEPS": str(steps)}
    daemon = subprocess.Popen([sys.executable, __file__, "--daemon"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        from console.client.sync import Client
        from console.paths import resolve

        deadline = time.monotonic() + 20
        while not (home / "run" / "operator.sock").exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("the daemon did not start")
            time.sleep(0.05)
        client = Client(resolve(home), autostart=False)
        calls: list[tuple[float, float, float]] = []
        for _ in range(opts.n):
            time.sleep(0.05)  # runs apart, as a person's are
            t = time.perf_counter()
            rec = client.call("run.start", profile="bench", workspace=str(ws))
            answered = time.perf_counter()
            for _event in client.stream("logs", run=rec["id"], follow=True):
                pass
            calls.append((t, answered, time.perf_counter()))
        raw = _raw_bwrap_ms(ws, opts.n)
        daemon.send_signal(signal.SIGUSR1)
        while not steps.exists():
            time.sleep(0.05)
        marks = json.loads(steps.read_text())
    finally:
        daemon.terminate()
        daemon.wait(20)
    at: dict[str, list[tuple[float, float]]] = {}
    for t, answered, ended in calls[5:]:
        at.setdefault("run.start answered (client)", []).append((0.0, (answered - t) * 1e3))
        at.setdefault("the run's end seen (client)", []).append((0.0, (ended - t) * 1e3))
        seen: dict[str, int] = {}
        for name, a, b in sorted(marks, key=lambda m: m[1]):
            if t <= a <= ended:
                seen[name] = seen.get(name, 0) + 1  # a step taken twice: each on its own row
                shown = name if seen[name] == 1 else f"{name} #{seen[name]}"
                at.setdefault(shown, []).append(((a - t) * 1e3, (b - a) * 1e3))
    print(f"# a run of /bin/true through the daemon, n={len(calls) - 5}; raw bwrap from the "
          f"bench spec (bench/sandbox.py): {raw:.1f} ms p50")
    print(f"{'step':<44} {'starts at':>10} {'takes':>9}   (medians, ms from the client's call)")
    for name, v in sorted(at.items(), key=lambda kv: statistics.median(x[0] for x in kv[1])):
        print(f"{name:<44} {statistics.median(x[0] for x in v):>10.2f} "
              f"{statistics.median(x[1] for x in v):>9.2f}")


def _raw_bwrap_ms(ws: Path, n: int) -> float:
    from bench.sandbox import Bench, find_bwrap, raw_bwrap_runner, time_sync

    bwrap = find_bwrap()
    if bwrap is None:
        sys.exit("bubblewrap is not installed")
    run = raw_bwrap_runner(Bench(n), bwrap)
    run()
    return statistics.median(time_sync(run) for _ in range(n))


if __name__ == "__main__":
    if sys.argv[1:] == ["--daemon"]:
        _daemon()
    else:
        main()
