"""run.start refuses workspaces that would give the agent (or a teammate) too much (issue 11.6).

A real daemon; the requester is identified by SO_PEERCRED. The teammate case uses real users.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER, GROUP, _ensure_users, _open_parents, as_user


@needs_bwrap
@pytest.mark.parametrize("target", ["/", "/etc", "/usr/lib", "/var/lib", "/proc", "/dev",
                                    "/root", "/home", "/tmp", "OWN_RUNTIME", "OWN_HOME"])
def test_system_and_own_folders_are_refused(daemon: Daemon, target: str) -> None:
    path = {"OWN_RUNTIME": str(daemon.home / "run"), "OWN_HOME": str(daemon.home)}.get(target, target)
    if not Path(path).is_dir():
        pytest.skip(f"{path} does not exist here")
    r = daemon.cli("run", "demo", "--workspace", path, check=False)
    assert r.returncode != 0, r.stdout
    assert "refusing" in (r.stdout + r.stderr), r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    runs = daemon.cli("ps", "--json").stdout
    assert '"id"' not in runs  # nothing started


@pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")
@needs_bwrap
def test_an_approver_cannot_start_a_run_in_a_folder_they_cannot_write(
    home: Path, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    private = tmp_path / "roots-project"
    private.mkdir()
    (private / "secret.txt").write_text("root only\n")
    os.chmod(private, 0o700)  # the approver cannot even enter it
    readonly = tmp_path / "shared-readonly"
    readonly.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        for ws in (private, readonly):
            r = as_user(APPROVER, d, "run", "demo", "--workspace", str(ws))
            assert r.returncode != 0, r.stdout
            assert "refusing" in r.stdout + r.stderr, r.stdout + r.stderr
        mine = tmp_path / "approvers-project"
        mine.mkdir()
        subprocess.run(["chown", APPROVER, str(mine)], check=True)
        r = as_user(APPROVER, d, "run", "demo", "--workspace", str(mine), "--", "/bin/true")
        assert "refusing" not in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        d.stop()
