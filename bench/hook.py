"""Benchmark: the helper's round trip for a rule-decided command, inside a real bwrap sandbox.

    .venv/bin/python bench/hook.py [--quick] [-n 40]

A daemon on a temporary PILOTHOUSE_HOME starts one run in bubblewrap whose command is a small
timing driver (standard library, run by the sandbox's own python3). Inside that one sandbox the
driver times, interleaved and in a shuffled order each round:

- `ph-claude-hook` with a PreToolUse event for a Bash command an allow rule decides
  (`git status --short fN`, a new subject every call, so no call is folded into a flood summary:
  every one is committed to the store before it is answered),
- `ph-ask exec -- git status fN` (the same decision through the ask command),
- the anchors: `python3 -S -c pass` and `python3 -c pass`, spawned the same way.

Beside the wall times it reports each helper's own CPU time (user + sys, from getrusage of
the children), which a loaded machine inflates far less.

Every figure is the p50 (and p99) of wall time around spawn-to-exit, beside the anchor's same
percentile from the same rounds. Target (issue 17): hook and ask p50 <= 1.5x `python3 -S -c pass`.
Afterwards the bench checks that every call's decision row is in the history (none lost).

Then the same driver runs again while another run floods its output (a tight loop writing
lines as fast as its sandbox can): each helper's p50 beside its idle one, and `pilothouse logs
--tail 2` of the flooding run (session 45: a flood's backlog in the store's queue held every
run's decisions ~2.5 s, and another run's `run --wait` failed after 30 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit  # noqa: E402

# Runs inside the sandbox with `python3 -S`: standard library only.
FLOOD = "import sys\nw = sys.stdout.write\nline = 'x' * 60 + '\\n'\nwhile True:\n    w(line * 100)\n"
DRIVER = r'''
import json, random, resource, subprocess, sys, time
n = int(sys.argv[1])
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
def hook(i):
    event = {"session_id": "bench", "cwd": "/workspace", "hook_event_name": "PreToolUse",
             "tool_name": "Bash", "tool_input": {"command": "git status --short f%d" % i}}
    return ["ph-claude-hook"], json.dumps(event).encode(), '"permissionDecision": "allow"'
def ask(i):
    return ["ph-ask", "exec", "--", "git", "status", "f%d" % i], b"", None
def bare_s(i):
    return ["python3", "-S", "-c", "pass"], b"", None
def bare(i):
    return ["python3", "-c", "pass"], b"", None
kinds = {"hook": hook, "ask": ask, "python_S": bare_s, "python": bare}
times = {k: [] for k in kinds}
times.update({k + "_cpu": [] for k in kinds})
order = list(kinds)
for i in range(-3, n):  # three rounds of warm-up (page cache, the daemon's first decisions)
    random.shuffle(order)
    for k in order:
        argv, stdin, expect = kinds[k](i + 3)
        c, t = cpu(), time.perf_counter()
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt, dc = (time.perf_counter() - t) * 1000, (cpu() - c) * 1000
        if p.returncode != 0 or (expect and expect not in p.stdout.decode()):
            sys.exit("%s failed (rc %d): %r %r" % (k, p.returncode, p.stdout[-300:], p.stderr[-300:]))
        if i >= 0:
            times[k].append(dt)
            times[k + "_cpu"].append(dc)
with open("hook-bench.json", "w") as f:
    json.dump(times, f)
'''


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def _timed(cli: str, env: dict[str, str], ws: Path) -> dict[str, list[float]] | None:
    """One run of the timing driver; its times, or None (said) when it failed."""
    (ws / "hook-bench.json").unlink(missing_ok=True)
    run = subprocess.run([cli, "run", "--wait", "-w", str(ws), "hookbench"], env=env,
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0 or not (ws / "hook-bench.json").exists():
        print(f"the timing run failed (exit {run.returncode}):\n{run.stdout[-2000:]}\n"
              f"{run.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads((ws / "hook-bench.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 calls of each (default 100)")
    ap.add_argument("-n", type=int, default=None, help="calls of each")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home afterwards")
    args = ap.parse_args()
    n = args.n or (40 if args.quick else 100)
    if shutil.which("bwrap") is None:
        print("bubblewrap is not installed: no hook figures", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="ph-hookbench-"))
    os.chmod(base, 0o755)
    home, ws = base / "home", base / "ws"
    home.mkdir()
    ws.mkdir()
    (ws / "driver.py").write_text(DRIVER)
    (ws / "flood.py").write_text(FLOOD)
    (home / "config.toml").write_text(
        f'[profiles.hookbench]\ncommand = ["python3", "-S", "driver.py", "{n}"]\n'
        'sandbox = "bwrap"\n\n[profiles.hookbench.exec]\ndefault = "ask"\n'
        'allow = ["git status"]\n'
        '\n[profiles.flood]\ncommand = ["python3", "-S", "flood.py"]\nsandbox = "bwrap"\n'
        # The rate bound on a run's asks is not what is measured: every call here must be
        # decided, not refused for its pace (the calls come faster than an agent's turns).
        '\n[limits]\nask_burst = 1000000\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update(PILOTHOUSE_HOME=str(home), PILOTHOUSE_CONFIG=str(home / "config.toml"))
    cli = str(Path(sys.executable).parent / "pilothouse")
    log = open(home / "daemon.log", "ab")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "console", "daemon"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while not (home / "run" / "operator.sock").exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                print("the daemon did not start:\n" + (home / "daemon.log").read_text()[-2000:],
                      file=sys.stderr)
                return 1
            time.sleep(0.1)
        times = _timed(cli, env, ws)
        if times is None:
            return 1
        search_idle_ms = _history_search_ms(cli, env)
        flood = json.loads(subprocess.run([cli, "run", "--json", "-w", str(ws), "flood"], env=env,
                                          capture_output=True, text=True, check=True).stdout)["id"]
        try:
            time.sleep(3)  # the flood fills the store's queue
            t = time.perf_counter()
            subprocess.run([cli, "logs", "--tail", "2", flood], env=env, capture_output=True,
                           check=True, timeout=300)
            tail_ms = (time.perf_counter() - t) * 1000
            search_ms = _history_search_ms(cli, env)
            flooded = _timed(cli, env, ws)
        finally:
            subprocess.run([cli, "stop", flood], env=env, capture_output=True)
        if flooded is None:
            return 1
    finally:
        daemon.terminate()
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
    from console.paths import resolve

    db_file = resolve(home).db_file
    recorded = None
    if db_file.exists():
        db = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        recorded = db.execute("SELECT count(*) FROM events WHERE kind = 'policy.decision' "
                              "AND text LIKE '%git status%'").fetchone()[0]
        db.close()
    rows: list[Row] = []
    print(f"# helper round trip inside one bwrap sandbox, {n} calls each (after 3 warm-up "
          f"rounds), {os.cpu_count()} CPUs; decision rows recorded: {recorded} "
          f"(expected {4 * (n + 3)}: two timing runs)")
    print(f"{'figure':<48} {'p50 ms':>8} {'p99 ms':>8}   {'anchor':<22} {'p50 ms':>8} "
          f"{'p99 ms':>8}   ratio")

    def row(name: str, key: str, anchor: str, akey: str, target: str = "") -> None:
        xs, ys = times[key], times[akey]
        p50, p99, a50, a99 = statistics.median(xs), pct(xs, 99), statistics.median(ys), pct(ys, 99)
        print(f"{name:<48} {p50:8.2f} {p99:8.2f}   {anchor:<22} {a50:8.2f} {a99:8.2f}   "
              f"{p50 / a50:5.2f}x")
        rows.append(Row(f"{name}, p50", p50, "ms", f"{anchor} (same sandbox), p50", a50, target))
        rows.append(Row(f"{name}, p99", p99, "ms", f"{anchor} (same sandbox), p99", a99))

    row("ph-claude-hook, rule-decided Bash command", "hook", "python3 -S -c pass", "python_S",
        "<= 1.5x")
    row("ph-ask exec, rule-decided command", "ask", "python3 -S -c pass", "python_S", "<= 1.5x")
    row("ph-claude-hook, rule-decided Bash command", "hook", "python3 -c pass", "python")
    # The helper's own CPU (user + sys of it and its wrapper), beside the interpreter's: what
    # the wall figures come to where the daemon's turn on a CPU is not contended.
    row("ph-claude-hook, CPU time of the helper", "hook_cpu", "python3 -S -c pass CPU",
        "python_S_cpu")
    row("ph-ask exec, CPU time of the helper", "ask_cpu", "python3 -S -c pass CPU",
        "python_S_cpu")
    for name, key in (("ph-claude-hook", "hook"), ("ph-ask exec", "ask")):
        p50, idle = statistics.median(flooded[key]), statistics.median(times[key])
        label = f"{name} under another run's output flood"
        print(f"{label:<48} {p50:8.2f}             "
              f"{'the same, idle daemon':<22} {idle:8.2f}            {p50 / idle:5.2f}x")
        rows.append(Row(f"{name} under another run's output flood, p50", p50, "ms",
                        f"{name}, idle daemon, p50", idle))
    print(f"# logs --tail 2 of the flooding run: {tail_ms:.0f} ms")
    rows.append(Row("logs --tail 2 of a run flooding its output", tail_ms, "ms",
                    "ph-ask exec, idle daemon, p50", statistics.median(times["ask"])))
    print(f"# history --search under another run's output flood: {search_ms:.0f} ms "
          f"(idle daemon: {search_idle_ms:.0f} ms)")
    rows.append(Row("history --search under another run's output flood", search_ms, "ms",
                    "the same, idle daemon", search_idle_ms))
    if recorded is not None and recorded != 4 * (n + 3):
        print(f"# WARNING: {recorded} decision rows recorded for {4 * (n + 3)} calls")
    if args.keep:
        print(f"# kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    print()
    emit(rows, f"hook (rule-decided round trip inside bwrap, n={n})")
    return 0


def _history_search_ms(cli: str, env: dict[str, str]) -> float:
    """One `history --search` of the events (the driver's runs): it reads their index only."""
    t = time.perf_counter()
    subprocess.run([cli, "history", "--search", "hookbench", "--json"], env=env,
                   capture_output=True, check=True, timeout=300)
    return (time.perf_counter() - t) * 1000


if __name__ == "__main__":
    sys.exit(main())
