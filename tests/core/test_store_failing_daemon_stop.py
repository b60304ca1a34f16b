"""`pilothouse daemon stop` while the store cannot record: the daemon always stops (by
design, daemon/ops/daemon.py), and it should still stop its runs cleanly (SIGTERM, teardown)
and promptly; the store failing is no reason to skip that."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap
from tests.core.failing_store import start_run, store_failing, wait_file

SCRIPT = "trap 'echo term > got-term; exit 0' TERM; touch trapped; while :; do sleep 0.05; done"


def _mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(path))]


def _handoffs(run_id: str) -> set[str]:
    """A root daemon's hand-off mounts (console/sandbox/view.py) of one run (RUN-TOKEN), which
    live outside its home: another test's runs may have theirs there at the same time."""
    return set(_mounts_under(Path("/run/pilothouse-handoff") / f"{run_id}-"))


@pytest.fixture
def cleanup(home: Path, daemon_env: dict[str, str]) -> Iterator[None]:
    yield
    if _mounts_under(home):  # a fresh daemon's start detaches a lost run's view
        d = Daemon(home, daemon_env)
        d.start()
        d.stop()


def _ask_stop(d: Daemon) -> None:
    from console.client.sync import Client
    from console.paths import resolve

    with Client(resolve(d.home), autostart=False) as client:
        client.call("daemon.stop")


def _stopped(d: Daemon) -> None:
    """The daemon gone within 15 s of being asked (a stop that hung waited out the run's
    60 s): a timeout on the wait, not a measured time."""
    assert d.proc is not None
    try:
        d.proc.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not stop within 15 s of daemon.stop:\n{d.log()[-2000:]}")


def _stop(d: Daemon, workspace: Path, failing: bool) -> tuple[bool, list[str]]:
    run_id = start_run(d, "shell", workspace, SCRIPT)
    wait_file(workspace / "trapped")  # the shell's trap is set (running is the sandbox's state)
    # Through the client: the CLI's own wait reads a zombie (the test's child) as alive.
    if failing:
        with store_failing(d):
            _ask_stop(d)
            _stopped(d)
    else:
        _ask_stop(d)
        _stopped(d)
    time.sleep(0.5)
    left = _mounts_under(d.home) + sorted(_handoffs(run_id))
    return (workspace / "got-term").exists(), left


@needs_bwrap
def test_control_daemon_stop_with_a_working_store(daemon: Daemon, workspace: Path,
                                                  cleanup: None) -> None:
    termed, mounts = _stop(daemon, workspace, failing=False)
    assert termed and not mounts, (termed, mounts)


@needs_bwrap
def test_daemon_stop_while_the_store_fails_still_stops_its_runs(
        daemon: Daemon, workspace: Path, cleanup: None) -> None:
    termed, mounts = _stop(daemon, workspace, failing=True)
    assert termed and not mounts, (
        f"SIGTERM reached the run: {termed}; mounts the run left on the host: {mounts[:2]}")


@needs_bwrap
def test_daemon_stop_says_when_the_store_could_not_record_it(daemon: Daemon,
                                                             workspace: Path) -> None:
    """The daemon stops anyway; the person is told the stop is not on the record."""
    assert daemon.proc is not None
    with store_failing(daemon):
        cli = subprocess.Popen([str(BIN / "pilothouse"), "daemon", "stop"], env=daemon.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        daemon.proc.wait(60)  # reaped here, so the command's wait sees it gone
        out, err = cli.communicate(timeout=30)
    assert cli.returncode == 0, (out, err)  # what was asked for happened
    assert "stopped" in out, out
    assert "warning: the history could not record this stop" in err, err
    assert "Traceback" not in err, err
