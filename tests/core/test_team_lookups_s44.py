"""A teammate's role is looked up in the account files again only when they change (s44: a
[team] group of 5,000 members took 2.5 ms to read, on the daemon's loop, at every teammate
operation); a member taken off the group is still refused at the very next operation."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest

from console.config.load import TeamConfig
from console.daemon import peers
from tests.conftest import Daemon, accounts_locked, ensure_group, ensure_user
from tests.core.test_team import _open_parents, as_user

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")

GROUP, MEMBER = "phlookteam", "phlookmember"


def _member_of_group() -> None:
    ensure_group(GROUP)
    ensure_user(MEMBER, "--no-create-home", "--shell", "/usr/sbin/nologin")
    with accounts_locked():
        subprocess.run(["gpasswd", "-a", MEMBER, GROUP], check=True, capture_output=True)


def test_the_group_is_read_once_while_its_file_is_unchanged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _member_of_group()
    uid = pwd.getpwnam(MEMBER).pw_uid
    looks: list[Any] = []
    real = grp.getgrnam

    def counted(name: str) -> Any:
        looks.append(name)
        return real(name)

    monkeypatch.setattr(grp, "getgrnam", counted)
    team = TeamConfig(group=GROUP)
    roles = {peers.role_of(uid, MEMBER, team) for _ in range(200)}
    assert roles == {"watcher"}
    # Once, or twice where the answers' second of life ended inside the loop.
    assert len(looks) <= 2, f"{len(looks)} look-ups for 200 operations"


def test_a_member_taken_off_the_group_is_refused_at_the_next_operation(
        home: Path, daemon_env: dict[str, str]) -> None:
    _member_of_group()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\n')
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        for _ in range(3):  # looked up, then answered from what was kept
            watched = as_user(MEMBER, d, "ps", "--json")
            assert watched.returncode == 0, watched.stderr
        with accounts_locked():
            subprocess.run(["gpasswd", "-d", MEMBER, GROUP], check=True, capture_output=True)
        refused = as_user(MEMBER, d, "ps", "--json")
        assert refused.returncode != 0, refused.stdout
    finally:
        d.stop()
        with accounts_locked():
            subprocess.run(["gpasswd", "-a", MEMBER, GROUP], capture_output=True)
