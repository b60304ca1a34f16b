"""Team mode with real users: the group may watch, approvers may decide, others are refused."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, ensure_group, ensure_user, needs_bwrap

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

GROUP = "phteam"
WATCHER, APPROVER, OUTSIDER = "phwatcher", "phapprover", "phoutsider"


def _ensure_users() -> None:
    ensure_group(GROUP)
    for user, groups in ((WATCHER, [GROUP]), (APPROVER, [GROUP]), (OUTSIDER, [])):
        ensure_user(user, "--no-create-home", "--shell", "/usr/sbin/nologin",
                    *(["-G", ",".join(groups)] if groups else []))


def _open_parents(path: Path) -> None:
    # pytest's tmp folders are 0700; a teammate must be able to reach the runtime folder.
    for parent in path.parents:
        if parent in (Path("/tmp"), Path("/")):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)


def as_user(user: str, d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PILOTHOUSE_HOME": str(d.home), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
         str(BIN / "pilothouse"), *args], env=env, capture_output=True, text=True, timeout=60,
    )


@needs_bwrap
def test_watchers_watch_approvers_decide_outsiders_are_refused(
    home: Path, daemon_env: dict[str, str], workspace: Path
) -> None:
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        sock = home / "run" / "operator.sock"
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
        assert oct(os.stat(home / "run").st_mode & 0o777) == "0o750"

        out = as_user(OUTSIDER, d, "ps")
        assert out.returncode != 0 and "permission denied" in out.stderr
        assert "Traceback" not in out.stderr

        result: dict[str, subprocess.CompletedProcess[str]] = {}

        def run_agent() -> None:
            result["run"] = d.cli("run", "shell", "-w", str(workspace), "--wait", "--", "sh", "-c",
                                  "ph-ask exec -- make deploy; echo rc=$?", check=False)

        t = threading.Thread(target=run_agent)
        t.start()
        pending: list[dict] = []
        deadline = time.monotonic() + 30
        while not pending and time.monotonic() < deadline:
            watched = as_user(WATCHER, d, "approvals", "--json")
            assert watched.returncode == 0, watched.stderr
            pending = json.loads(watched.stdout)
            time.sleep(0.2)
        assert pending, "the watcher sees the pending request"
        request_id = pending[0]["id"]

        refused = as_user(WATCHER, d, "approve", request_id)
        assert refused.returncode != 0 and "may watch but not" in refused.stderr

        approved = as_user(APPROVER, d, "approve", request_id)
        assert approved.returncode == 0, approved.stderr
        assert f"decided by {APPROVER}" in approved.stdout
        t.join(timeout=60)
        assert "rc=0" in result["run"].stdout

        decided = json.loads(d.cli("history", "--kind", "approval.decided", "--json").stdout)
        assert decided[0]["actor"] == APPROVER
        denied_op = json.loads(d.cli("history", "--kind", "operator.denied_op", "--json").stdout)
        assert denied_op and denied_op[0]["actor"] == WATCHER
    finally:
        d.stop()


def test_team_group_that_does_not_exist_keeps_the_socket_private(
    home: Path, daemon_env: dict[str, str]
) -> None:
    (home / "config.toml").write_text('[team]\ngroup = "no-such-group-ph"\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        assert oct(os.stat(home / "run" / "operator.sock").st_mode & 0o777) == "0o600"
    finally:
        d.stop()


def test_a_reload_opens_the_socket_to_a_new_team_group_and_closes_it_again(
    home: Path, daemon_env: dict[str, str]
) -> None:
    """[team] group added by a reload: its members may watch at once, without a restart; taken
    off again, the socket is the owner's alone (s42)."""
    _ensure_users()
    config = home / "config.toml"
    config.write_text("")
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        assert as_user(WATCHER, d, "ps").returncode != 0
        config.write_text(f'[team]\ngroup = "{GROUP}"\n')
        d.cli("reload")
        watched = as_user(WATCHER, d, "ps", "--json")
        assert watched.returncode == 0, watched.stderr
        assert oct(os.stat(home / "run" / "operator.sock").st_mode & 0o777) == "0o660"
        config.write_text("")
        d.cli("reload")
        out = as_user(WATCHER, d, "ps")
        assert out.returncode != 0 and "permission denied" in out.stderr, out.stderr
        assert oct(os.stat(home / "run" / "operator.sock").st_mode & 0o777) == "0o600"
        assert oct(os.stat(home / "run").st_mode & 0o777) == "0o700"
    finally:
        d.stop()
