"""Review s30 (helper 100): the person's own git while a run lives.

A mask needs a mount point: the start makes an empty file where the masked one is absent. For
`.git/commondir` that empty file, on the real disk, broke every `git status` of the person's in
that workspace while the run lived ("fatal: failed to read .git/commondir"), on both backends
with either daemon; a person who deleted it to mend git (a person's daemon) lifted the mask in
the live sandbox. The mount point now holds what the mask shows (`.`: the git folder itself),
and is removed at the run's end while it still does (second round, helper 104: it was left).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from tests.sandbox.hostile_kit import git_repo

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed "
                                "(apt-get install git)")
GIT = ["git", "-c", "safe.directory=*"]


async def test_the_persons_git_works_while_a_run_lives(hostile) -> None:
    ws = hostile.workspace
    git_repo(ws)
    seen: dict[str, tuple[int, str]] = {}

    async def person() -> None:
        for _ in range(100):  # until the run has made its mount points
            if (ws / ".git" / "commondir").exists():
                break
            await asyncio.sleep(0.1)
        done = subprocess.run([*GIT, "-C", str(ws), "status", "--short"], capture_output=True,
                              text=True)
        seen["git"] = (done.returncode, (done.stdout + done.stderr).strip())
        (ws / ".person-done").write_text("")  # the run ends once the person has looked

    # The run lives until the person's git has run (60 s at most), not a fixed 6 s.
    await asyncio.gather(hostile.run(
        "for i in $(seq 600); do [ -e .person-done ] && break; sleep 0.1 2>/dev/null || sleep 1; "
        "done; echo DONE", timeout=90), person())
    assert seen["git"][0] == 0, seen
    assert not (ws / ".git" / "commondir").exists(), "the mount point was left after the run"
