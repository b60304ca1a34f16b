"""What the hostile tests share: who owns a box's workspace, planting files as that owner, which
daemon a box is, and a small git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CANARY = "ph-canary-7f3a9c"


def workspace_owner(box) -> tuple[int, int]:
    st = box.workspace.stat()
    return st.st_uid, st.st_gid


def give(box, *paths: Path) -> None:
    """Files the test plants belong to the workspace's owner, as a person's checkout would."""
    uid, gid = workspace_owner(box)
    for p in paths:
        for root, dirs, files in os.walk(p) if p.is_dir() and not p.is_symlink() else [(None, [], [])]:
            for n in ([root] if root else []) + [os.path.join(root, x) for x in dirs + files]:
                os.lchown(n, uid, gid)
        os.lchown(p, uid, gid)


def persons_daemon(box) -> bool:
    return box.name.endswith("-user")


async def refused_for_a_persons_daemon(box, script: str) -> None:
    """A daemon run by a person cannot cover a protected link: it refuses the run and says
    which link (the agent could otherwise replace the link with a file of its own)."""
    with pytest.raises(AssertionError, match="symbolic link"):
        await box.run(script)


def git_repo(ws: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed (apt-get install git)")
    subprocess.run([git, "-c", "safe.directory=*", "init", "-q", str(ws)], check=True)
    (ws / "a.txt").write_text("a\n")
    subprocess.run([git, "-C", str(ws), "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid",
                    "commit", "-qm", "init", "--allow-empty"], check=True)  # fmt: skip
