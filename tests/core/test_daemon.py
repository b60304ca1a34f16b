"""The daemon end to end: real process, real socket, real SQLite, real bubblewrap."""

from __future__ import annotations

import json
import os
import pwd
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.conftest import Daemon, ensure_user, needs_bwrap, read_until


def test_cli_starts_the_daemon_on_demand_and_stops_it(home: Path, daemon_env: dict[str, str]) -> None:
    d = Daemon(home, daemon_env)
    d.cli("ps", "--json")  # any command but status starts it (status only looks, s27)
    status = json.loads(d.cli("status", "--json").stdout)
    assert status["role"] == "operator" and status["user"] == pwd.getpwuid(os.getuid()).pw_name
    assert oct(os.stat(home / "run").st_mode & 0o777) == "0o700"
    assert oct(os.stat(home / "run" / "operator.sock").st_mode & 0o777) == "0o600"
    out = d.cli("daemon", "stop").stdout
    assert "stopped" in out
    assert not (home / "run" / "operator.sock").exists()


def test_one_daemon_per_home(daemon: Daemon) -> None:
    second = subprocess.run([sys.executable, "-m", "console", "daemon"], env=daemon.env,
                            capture_output=True, text=True, timeout=30)
    assert second.returncode == 3
    assert "already runs" in second.stderr


def test_bad_config_is_refused_with_line(home: Path, daemon_env: dict[str, str]) -> None:
    (home / "config.toml").write_text('[defaults]\nsandbox = "jail"\n')
    d = Daemon(home, daemon_env)
    result = d.cli("ps", check=False)
    assert result.returncode != 0
    assert "config.toml:2" in result.stderr and "must be one of" in result.stderr
    assert "Traceback" not in result.stderr


@needs_bwrap
def test_run_lifecycle_in_bubblewrap(daemon: Daemon, workspace: Path) -> None:
    r = daemon.cli("run", "shell", "--workspace", str(workspace), "--wait", "--",
                   "sh", "-c", "echo out-$((6*7)); echo made > /workspace/made.txt; exit 3", check=False)
    assert r.returncode == 3, r.stderr
    assert "out-42" in r.stdout
    assert (workspace / "made.txt").read_text() == "made\n"
    runs = json.loads(daemon.cli("ps", "--all", "--json").stdout)
    assert any(x["state"] == "failed" and x["exit_code"] == 3 for x in runs)
    hist = json.loads(daemon.cli("history", "--kind", "run.", "--json").stdout)
    kinds = [h["kind"] for h in hist]
    assert "run.started" in kinds and "run.ended" in kinds
    run_id = next(x["id"] for x in runs if x["exit_code"] == 3)
    found = json.loads(daemon.cli("history", "--search", "shell bwrap", "--json").stdout)
    assert any(h["kind"] == "run.started" and h["run_id"] == run_id for h in found)
    logs = daemon.cli("logs", run_id).stdout
    assert "out-42" in logs
    grep = daemon.cli("logs", run_id, "--search", "out-42").stdout
    assert grep.strip() == "out-42"


@needs_bwrap
def test_sandbox_has_no_network_no_home_and_ro_system(daemon: Daemon, workspace: Path) -> None:
    script = (
        "test -e /root/.bashrc && echo HOME-VISIBLE; "
        "touch /usr/x 2>/dev/null && echo USR-WRITABLE; "
        "ls /sys/class/net 2>/dev/null | tr '\\n' ' '; echo; "
        f"test -e {daemon.home} && echo PH-HOME-VISIBLE; echo done"
    )
    r = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", script)
    assert "done" in r.stdout
    assert "HOME-VISIBLE" not in r.stdout and "USR-WRITABLE" not in r.stdout
    assert "PH-HOME-VISIBLE" not in r.stdout


@needs_bwrap
def test_stop_ends_a_running_run(daemon: Daemon, workspace: Path) -> None:
    run_id = daemon.cli("run", "shell", "-w", str(workspace), "--", "sleep", "300").stdout.strip()
    ps = json.loads(daemon.cli("ps", "--json").stdout)
    assert [r["id"] for r in ps] == [run_id] and ps[0]["state"] == "running"
    pids = ps[0]["pids"]
    out = json.loads(daemon.cli("stop", run_id, "--json").stdout)
    assert out["state"] == "stopped"
    # Until they are gone (far past the stop's own wait), not a fixed 2 s a loaded machine
    # may need more of to reap them.
    alive = read_until(lambda: [p for p in pids if _alive(p)], lambda left: not left, 30)
    assert not alive, alive
    assert json.loads(daemon.cli("ps", "--json").stdout) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@needs_bwrap
def test_two_clients_see_the_same_events(daemon: Daemon, workspace: Path) -> None:
    paths = resolve(daemon.home)
    seen: list[list[dict]] = [[], []]
    ready = threading.Barrier(3)

    def watch(i: int) -> None:
        with Client(paths, autostart=False) as c:
            stream = c.stream("subscribe", topics=["run"])
            next(stream)  # "subscribed"
            ready.wait()
            for _kind, ev in stream:
                seen[i].append(ev)
                if ev.get("kind") == "run.state" and ev["run"]["state"] in ("exited", "failed"):
                    return

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    ready.wait(timeout=10)
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "echo", "hello both")
    for t in threads:
        t.join(timeout=20)
    states = [[e["run"]["state"] for e in s if e["kind"] == "run.state"] for s in seen]
    assert states[0] == states[1] and states[0][-1] == "exited"
    lines = [[ln for e in s if e["kind"] == "run.output" for ln in e["lines"]] for s in seen]
    assert "hello both" in lines[0] and lines[0] == lines[1]


def test_connection_from_another_user_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to create a second user")
    user = "phtestother"
    ensure_user(user, "--no-create-home")
    pw = pwd.getpwnam(user)
    # The folder is 0700: the kernel refuses the other user before the daemon sees it.
    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n s.connect(sys.argv[1]); print('connected')\n"
        "except PermissionError: print('denied')\n"
    )
    as_other = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                sys.executable, "-c", probe, str(daemon.sock)]
    assert subprocess.run(as_other, capture_output=True, text=True).stdout.strip() == "denied"
    # Even if a person opens the permissions by mistake, SO_PEERCRED still refuses the peer.
    for parent in [daemon.home / "run", *daemon.home.parents]:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o055)
    os.chmod(daemon.sock, 0o777)
    # The request goes a moment after the connect, as a slow or loaded client's does: the
    # refusal must still reach it (it once raced the daemon's close: a broken pipe, no reply).
    probe2 = (
        "import socket,sys,json,time\n"
        "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.2)\n"
        "s.sendall(b'{\"v\":1,\"id\":1,\"op\":\"runs.list\",\"args\":{}}\\n')\n"
        "print(s.makefile().readline())\n"
    )
    out = subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                          sys.executable, "-c", probe2, str(daemon.sock)], capture_output=True, text=True)
    assert out.stdout, out.stderr
    reply = json.loads(out.stdout)
    assert reply["ok"] is False and reply["error"]["code"] == "not-allowed"
    assert user in reply["error"]["message"]
    refused = json.loads(daemon.cli("history", "--kind", "operator.refused", "--json").stdout)
    assert refused and refused[0]["actor"] == user


def test_bad_messages_get_errors_not_crashes(daemon: Daemon) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.sock))
    f = s.makefile("rwb")
    f.write(b'{"v":1,"id":1,"op":"nope","args":{}}\n{"v":9,"id":2}\nnot json\n')
    f.write(b'{"v":1,"id":3,"op":"hello","args":{}}\n')
    f.flush()
    replies = [json.loads(f.readline()) for _ in range(4)]
    by_code = sorted(r["error"]["code"] for r in replies if not r["ok"])
    assert by_code == ["bad-message", "bad-message", "unknown-op"]
    assert any("version" in r["error"]["message"] for r in replies if not r["ok"])
    assert any(r["ok"] and r["id"] == 3 for r in replies), "the connection survives bad lines"
    s.close()
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.sock))
    try:
        s.sendall(b"x" * (5 * 1024 * 1024) + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon stops reading once the bound is passed
    reply = s.makefile("rb")
    too_long = json.loads(reply.readline())
    assert too_long["error"]["code"] == "bad-message" and "longer than" in too_long["error"]["message"]
    assert reply.readline() == b"", "an oversize line ends the connection"
    s.close()
    assert daemon.cli("status").returncode == 0


@needs_bwrap
def test_kill9_during_burst_keeps_every_acknowledged_event(daemon: Daemon, workspace: Path) -> None:
    paths = resolve(daemon.home)
    daemon.cli("run", "shell", "-w", str(workspace), "--", "sh", "-c",
               "i=0; while [ $i -lt 10000 ]; do echo line-$i; i=$((i+1)); done; sleep 30")
    acked: list[int] = []
    stop = threading.Event()

    def ack_loop() -> None:
        try:
            with Client(paths, autostart=False) as c:
                while not stop.is_set():
                    acked.append(c.call("config.reload")["event_id"])
        except (ClientError, OSError, ValueError):
            return

    t = threading.Thread(target=ack_loop, daemon=True)
    t.start()
    time.sleep(1.5)  # into the run's burst of output
    # Killed once more than five reloads were acknowledged (a loaded machine's reloads may be
    # slower than 0.3 s each), while the loop still asks.
    read_until(lambda: len(acked), lambda n: n > 5 or not t.is_alive(), 30, 0.05)
    daemon.kill9()
    stop.set()
    t.join(timeout=10)
    assert len(acked) > 5
    conn = sqlite3.connect(paths.db_file)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in conn.execute("SELECT id FROM events WHERE kind = 'policy.changed'")}
    conn.close()
    assert set(acked) <= ids
    daemon.start()  # a new daemon reconciles the lost run
    verify = json.loads(daemon.cli("audit", "verify", "--json").stdout)
    assert verify["ok"], verify
    runs = json.loads(daemon.cli("ps", "--all", "--json").stdout)
    assert runs and all(r["state"] != "running" for r in runs)
    assert any(r["state"] == "lost" for r in runs)


@needs_bwrap
def test_logs_page_through_long_output(daemon: Daemon, workspace: Path) -> None:
    """More lines than one page (ops.runs.LOG_PAGE): all of them, in order, once."""
    from console.daemon.ops.runs import LOG_PAGE

    n = LOG_PAGE * 2 + 345
    script = f"i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done; sleep 1; echo last"
    follow = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c", script)
    expected = [f"line-{i}" for i in range(n)] + ["last"]
    assert follow.stdout.splitlines() == expected
    run_id = json.loads(daemon.cli("ps", "--all", "--json").stdout)[0]["id"]
    assert daemon.cli("logs", run_id).stdout.splitlines() == expected
    assert daemon.cli("logs", run_id, "--tail", "3").stdout.splitlines() == expected[-3:]
    found = daemon.cli("logs", run_id, "--search", f"line-{n - 1}").stdout.splitlines()
    assert found == [f"line-{n - 1}"]


def _daemons_for(home: Path) -> list[int]:
    """Daemon processes serving `home`, found by their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"daemon" in cmdline and f"PILOTHOUSE_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_a_daemon_restarted_after_kill9_is_the_fixtures_own_and_none_is_left(
        daemon: Daemon) -> None:
    """The fixture's readiness check went through `pilothouse status`, which starts a daemon
    when none answers: right after a kill -9 it raced the fixture's own new daemon, the
    status one took the lock, and it was left running after the test (found in CI's
    process list). Each round is the race once."""
    for _ in range(5):
        daemon.kill9()
        daemon.start()
        assert daemon.proc is not None
        assert _daemons_for(daemon.home) == [daemon.proc.pid]
    daemon.stop()
    assert _daemons_for(daemon.home) == []


def test_daemon_stop_says_stopped_once_the_daemon_has_exited_though_not_yet_reaped(
        daemon: Daemon) -> None:
    """The fixture's daemon is the test's child: once it exits it stays a zombie until the
    test waits on it, as under any supervisor that reaps late. `daemon stop` took the zombie
    for a live daemon: it waited its whole 15 s and said "is still stopping"."""
    assert daemon.proc is not None
    r = daemon.cli("daemon", "stop")
    assert r.stdout.strip() == f"daemon {daemon.proc.pid} stopped", r.stdout
    assert daemon.proc.wait(5) is not None
