"""console/sandbox/gitindex.py: the submodule paths of a git index, in each index version git
writes, and the read-only folder protect.py makes of a submodule not checked out (review s19b:
`git status` ran the fsmonitor of a `.git` the agent wrote into such a folder).

Review h152: `git update-index --split-index` (an earlier run's agent can run it: the index is
its to write) keeps most entries in `.git/sharedindex.HEX`, which `.git/index` names. The start
read `.git/index` alone, so a submodule whose entry sat in the shared part was not made
read-only. Both parts are read now."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from console.sandbox.gitindex import gitlink_paths, not_checked_out
from console.sandbox.protect import plan_protection

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t.invalid", "PATH": "/usr/bin:/bin"}


def _git(ws: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(ws), *args], check=True, env={**ENV, "HOME": str(ws)})


def _repository(ws: Path, version: str, split: bool = False) -> Path:
    """Files before, between and after two submodules, one of them deep (index v4 compresses
    each path against the one before it); split: most entries in a shared index."""
    _git(ws, "init", "-q", "-b", "main", ".")
    for name in ("a.txt", "deep/er/b.txt", "z.txt"):
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(name)
    _git(ws, "add", "-A")
    for path in ("deep/er/lib", "lib"):
        _git(ws, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},{path}")
    _git(ws, "update-index", "--index-version", version)
    if split:
        _git(ws, "-c", "splitIndex.maxPercentChange=0", "update-index", "--split-index")
        assert list((ws / ".git").glob("sharedindex.*")), "git kept no shared index"
    return ws


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_the_gitlinks_of_each_index_version(tmp_path: Path, version: str) -> None:
    ws = _repository(tmp_path, version)
    assert gitlink_paths((ws / ".git" / "index").read_bytes()) == ["deep/er/lib", "lib"]


def test_a_cut_or_foreign_index_gives_what_it_can(tmp_path: Path) -> None:
    data = (_repository(tmp_path, "2") / ".git" / "index").read_bytes()
    assert gitlink_paths(data[:20]) == []
    assert gitlink_paths(b"not an index") == []
    second = data.index(b"lib\0", data.index(b"deep/er/lib\0") + 12)
    assert gitlink_paths(data[:second + 1]) == ["deep/er/lib"]  # cut inside the second's name


def test_the_gitlinks_of_a_split_index_are_found(tmp_path: Path) -> None:
    fd = os.open(_repository(tmp_path, "2", split=True), os.O_PATH | os.O_DIRECTORY)
    try:
        assert sorted(not_checked_out(fd)) == ["deep/er/lib", "lib"]
    finally:
        os.close(fd)


@pytest.mark.parametrize(("version", "split"), [("2", False), ("4", True)])
def test_a_submodule_not_checked_out_is_read_only(tmp_path: Path, version: str,
                                                  split: bool) -> None:
    """lib/ is there and empty, deep/er/lib/ is not there: neither can be given a .git."""
    ws = _repository(tmp_path, version, split)
    (ws / "lib").mkdir()
    p = plan_protection(ws)
    try:
        kinds = {b.rel: b.kind for b in p.binds}
    finally:
        p.close()
    assert kinds.get("lib") == "ro", kinds
    assert kinds.get("deep/er/lib") == "mask-dir", kinds
