"""`pilothouse tui`, `daemon`, `daemon stop` and `status`: the console and the daemon itself."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo, fail, visible
from console.cli.parsing import command, group, quick_exit

SUN_PATH_MAX = 108  # sockaddr_un's sun_path on Linux, its closing NUL included


@command()
@pass_ctx
@friendly
def tui(c: Context) -> None:
    """Open the console (the default command)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Else it draws its screen into a pipe or file, and waits for keys that never come.
        fail("the console needs a terminal, and standard input or output is not one here",
             "run `pilothouse` in a terminal; a script reads the same with --json: "
             "`pilothouse ps --json`, `approvals --json`, `history --json`", code=2)
    from console.tui.app import run_app

    run_app(c.paths, c.config_file)


@group(alone=True)
@pass_ctx
def daemon(c: Context) -> None:
    """Run the daemon in the foreground (for systemd); `daemon stop` stops it."""
    from console.client.sync import not_utf8
    from console.home_trust import OPEN_HOME_HINT
    from console.paths import UnusableSetting

    try:
        paths = c.paths
    except UnusableSetting as exc:
        fail(exc.message, exc.hint, code=2)
    if (problem := not_utf8(paths, c.config_file)) is not None:  # it could never answer
        fail(problem.message, problem.hint, code=2)
    sock = os.fsencode(paths.operator_sock)
    if len(sock) >= SUN_PATH_MAX:  # bind() would fail once everything else was opened
        fail(f"the daemon's socket path is {len(sock)} bytes, past the {SUN_PATH_MAX - 1} a "
             f"unix socket may have: {visible(paths.operator_sock)}",
             "set PILOTHOUSE_HOME (or XDG_RUNTIME_DIR) to a shorter path", code=2)
    # Before anything is made or chmodded there: in an open home another user's link
    # (`data -> /etc/ssl`) had the daemon's user make that folder 0700 (review h169).
    try:
        why = paths.open_to_others()
    except OSError:  # a folder it cannot look in: making the folders says what is wrong
        why = None
    if why is not None:
        fail(f"not started: {why}", OPEN_HOME_HINT, code=2)
    try:
        paths.ensure()
    except OSError as exc:
        fail(f"cannot make the daemon's folders ({visible(exc.filename or paths.data_dir)}: "
             f"{exc.strerror})", "point PILOTHOUSE_HOME at a folder you may write, or create "
             "it", code=2)
    from pathlib import Path

    from console.daemon.server import run_foreground

    config = Path(os.path.abspath(c.config_file)) if c.config_file else paths.config_file
    os.chdir("/")  # its programs (notify_command, git) never start in a person's project (h138)
    sys.exit(run_foreground(paths, config))


@daemon.command("stop")
@pass_ctx
@friendly
def daemon_stop(c: Context) -> None:
    """Stop the daemon: runs are stopped cleanly and the store is flushed."""
    from console.client.sync import ClientError

    try:
        client = c.client(autostart=False)
    except ClientError as exc:
        if exc.code == "no-daemon":
            echo("the daemon is not running")
            return
        raise
    with client:
        pid = client.call("hello")["pid"]
        answer = client.call("daemon.stop")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    echo(f"daemon {pid} stopped" if not _alive(pid) else f"daemon {pid} is still stopping")
    if answer.get("recorded") is False:  # it stopped: a warning, not a failure
        echo("warning: the history could not record this stop (the daemon stopped anyway); "
             "the history cannot be written: check the disk with `pilothouse doctor`, and the "
             "daemon log", err=True)
    elif "recorded" in answer and answer["recorded"] is None:  # it may yet land
        echo("warning: this stop is not confirmed as recorded (the daemon stopped anyway); "
             "the daemon log says why the store is stuck", err=True)


def _alive(pid: int) -> bool:
    """Still running: an exited process its parent has not yet reaped (a zombie: a daemon a
    supervisor or a script started and waits on) has stopped too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[:1]
    except OSError:
        return True  # no /proc to read: it answered the signal, so it is there
    return state not in ([b"Z"], [b"X"])


def _show_status(info: dict[str, Any]) -> None:
    echo(f"daemon {info['daemon']} pid {info['pid']} up {info['uptime_s']}s, "
         f"you are {info['user']} ({info['role']})")
    if info.get("config_error"):
        echo(f"config not loaded: {info['config_error']['text']}; the previous policy "
             "stays in force (fix the file; it reloads when saved)", err=True)
    if lost := info.get("trace_rows_lost"):
        echo(f"warning: {lost} request(s) to inference endpoints were metered but could not be "
             "stored, so `trace` and the benchmark miss them; the daemon log says why (a full "
             "disk, most often: `pilothouse doctor`)", err=True)


@command()
@quick_exit
@json_option
@pass_ctx
@friendly
def status(c: Context) -> None:
    """Is the daemon up, and who am I to it. Starts nothing: exit 3 when it is not running."""
    from console.client.sync import ClientError

    try:
        client = c.client(autostart=False)
    except ClientError as exc:
        if exc.code != "no-daemon":
            raise
        c.emit({"running": False}, lambda _: echo(
            "the daemon is not running; `pilothouse` (or any command that needs it) starts it"))
        sys.exit(3)  # what an init script's `status` says of a service that is not running
    with client:
        info = client.call("hello")
    c.emit({"running": True, **info}, _show_status)


COMMANDS = (tui, daemon, status)
