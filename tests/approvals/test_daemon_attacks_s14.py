"""Session 14: a teammate's workspace path is looked at with the teammate's rights, not the
daemon's. Real daemons (root, and an ordinary user's) on temporary homes, real second users
(setpriv), real sockets. Failed before the fix: /work/notes/sandbox-s14-before.txt.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from tests.approvals.test_daemon_attacks_s13 import (  # noqa: F401 - shared_tmp: a fixture
    MATE,
    OWNER,
    persons_team_daemon,
    root_only,
    shared_tmp,
)
from tests.approvals.test_inbox_and_team_attacks import team_daemon
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER, as_user


def _closed_places(top: Path, owner: str) -> list[Path]:
    """Four workspace paths a teammate cannot see into, inside `top` (open to everyone): a
    folder that exists and one that does not, both inside a folder closed to them, and a link
    they can read to each. A secure daemon answers all four alike."""
    pw = pwd.getpwnam(owner)
    closed = top / "closed"
    (closed / "project").mkdir(parents=True)
    os.chown(closed, pw.pw_uid, pw.pw_gid)
    os.chown(closed / "project", pw.pw_uid, pw.pw_gid)
    os.chmod(closed, 0o700)
    (top / "to-project").symlink_to(closed / "project")
    (top / "to-nothing").symlink_to(closed / "nothing")
    return [closed / "project", closed / "nothing", top / "to-project", top / "to-nothing"]


def _answers(user: str, d: Daemon, asked: list[Path]) -> list[str]:
    out = []
    for path in asked:
        r = as_user(user, d, "run", "demo", "-w", str(path), "--", "/bin/true")
        assert r.returncode != 0, (path, r.stdout, r.stderr, d.log())
        assert "Traceback" not in r.stderr, r.stderr
        out.append((r.stdout + r.stderr).replace(str(path), "ASKED"))
    return out


@root_only
@needs_bwrap
def test_a_teammate_cannot_learn_what_exists_in_a_folder_closed_to_them(
        home: Path, daemon_env: dict[str, str], shared_tmp: Path) -> None:  # noqa: F811
    """open_workspace resolved the path and asked is_dir() as the daemon (root) before
    check_workspace looked at the requester: an approver asking for `closed/project` heard
    "you cannot reach it", for `closed/nothing` "is not a folder" (so they learnt what exists
    in a folder closed to them), and a link was followed where they could not follow it.
    Secure: the four answers are one; the daemon's own user keeps today's answers."""
    d = team_daemon(home, daemon_env)
    try:
        asked = _closed_places(shared_tmp, "root")
        answers = _answers(APPROVER, d, asked)
        assert len(set(answers)) == 1, answers
        assert "project" not in answers[0] and "nothing" not in answers[0], answers[0]
        own = d.cli("run", "demo", "-w", str(asked[1]), check=False)
        assert own.returncode != 0 and "is not a folder" in own.stdout + own.stderr, own
    finally:
        d.stop()


@root_only
@needs_bwrap
def test_a_teammate_of_a_persons_daemon_cannot_probe_the_owners_closed_folders(
        shared_tmp: Path) -> None:  # noqa: F811
    """The same against an ordinary user's daemon: a folder only the owner may enter."""
    d = persons_team_daemon(shared_tmp, "")
    try:
        asked = _closed_places(shared_tmp, OWNER)
        answers = _answers(MATE, d, asked)
        assert len(set(answers)) == 1, answers
    finally:
        d.stop()
