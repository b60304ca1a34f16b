"""The daemon's loop never waits on file work: a rule save held on its lock, or a config reload
held on a file that has not finished arriving, leaves every other operation answered.

Each hold is real (a flock the test owns, a pipe the test keeps open) and is released by the
test, so no timing decides the outcome: with the file work on the loop, the second operation
could not be answered until the release.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

HOLD_LIMIT_S = 60  # only bounds a broken daemon's wait: the test releases the hold itself


def wait_until_daemon_opens(d: Daemon, path: Path) -> None:
    """Until the daemon process has `path` open: it is then inside the held file work."""
    assert d.proc is not None
    ino = os.stat(path).st_ino
    fds = Path(f"/proc/{d.proc.pid}/fd")
    deadline = time.monotonic() + HOLD_LIMIT_S
    while time.monotonic() < deadline:
        for fd in fds.iterdir():
            try:
                if os.stat(fd).st_ino == ino:
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"the daemon never opened {path}: {d.log()}")


@needs_bwrap
def test_a_held_rule_save_leaves_other_operations_answered(daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    config.write_text("# my settings\n[defaults]\napproval_timeout = \"60s\"\n")
    daemon.cli("reload")  # in force and recorded: a rule is saved only into the file in force
    t, out = background(daemon, workspace, "ph-ask exec -- make lint; echo rc=$?")
    req = wait_pending(daemon)[0]
    lock = config.with_name(config.name + ".lock")
    decided: dict[str, Any] = {}
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the save waits on this, as on another writer

        def approve() -> None:
            decided["result"] = daemon.cli("approve", req["id"], "--scope", "profile", "--yes",
                                           "--json", check=False, timeout=HOLD_LIMIT_S * 2)

        approver = threading.Thread(target=approve)
        approver.start()
        try:
            wait_until_daemon_opens(daemon, lock)
            status = daemon.cli("status", "--json", timeout=HOLD_LIMIT_S)
            assert json.loads(status.stdout)["pid"] == daemon.proc.pid  # type: ignore[union-attr]
            assert approver.is_alive(), "the rule was reported saved before it was written"
            assert "make lint" not in config.read_text()
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    approver.join(HOLD_LIMIT_S)
    result = decided["result"]
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout)["saved"]
    assert saved["lines"] == ['+ demo exec allow "make lint"'] and "error" not in saved
    assert "make lint" in config.read_text()
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout


def test_a_held_config_reload_leaves_other_operations_answered(daemon: Daemon) -> None:
    config = daemon.home / "config.toml"
    fifo = daemon.home / "config.fifo"
    os.mkfifo(fifo)
    # Open for writing first: the daemon's open then succeeds, and its read waits for our close.
    writer = os.open(fifo, os.O_RDWR)
    try:
        os.replace(fifo, config)  # the file watcher sees a change and reloads it
        wait_until_daemon_opens(daemon, config)
        status = daemon.cli("status", "--json", timeout=HOLD_LIMIT_S)
        assert json.loads(status.stdout)["pid"] == daemon.proc.pid  # type: ignore[union-attr]
        # A plain file from here on, so the watcher's next look does not wait on a pipe.
        plain = daemon.home / "config.plain"
        plain.write_text("[defaults]\napproval_timeout = \"90s\"\n")
        os.replace(plain, config)
        os.write(writer, b"[defaults]\napproval_timeout = \"90s\"\n")
    finally:
        os.close(writer)
    deadline = time.monotonic() + HOLD_LIMIT_S
    while time.monotonic() < deadline:
        changed = json.loads(daemon.cli("history", "--kind", "policy.changed", "--json").stdout)
        if any(c["data"].get("cause") == "file-change" for c in changed):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the released reload was not recorded: {daemon.log()}")
    assert json.loads(daemon.cli("status", "--json").stdout)["config_error"] is None
