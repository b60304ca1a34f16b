"""Review h152: a split index hid its submodules from the start's look.

`git update-index --split-index` (an earlier run's agent can run it: the index is its to
write) keeps most entries in `.git/sharedindex.HEX`, and `.git/index` names it. The start read
`.git/index` alone: a submodule not checked out whose entry sat in the shared part was not
made read-only, and a `.git` written into it ran its core.fsmonitor at a `git status` the rules
allow (review s19b's attack, again). Both parts are read now.
"""

from __future__ import annotations

import os
from pathlib import Path

from console.sandbox.gitindex import not_checked_out
from console.sandbox.protect import plan_protection
from tests.sandbox.test_gitindex_s19b import _git, _repository


def _split(ws: Path) -> Path:
    _git(ws, "-c", "splitIndex.maxPercentChange=0", "update-index", "--split-index")
    assert list((ws / ".git").glob("sharedindex.*")), "git kept no shared index"
    return ws


def test_the_gitlinks_of_a_split_index_are_found(tmp_path: Path) -> None:
    ws = _split(_repository(tmp_path, "2"))
    fd = os.open(ws, os.O_PATH | os.O_DIRECTORY)
    try:
        assert sorted(not_checked_out(fd)) == ["deep/er/lib", "lib"]
    finally:
        os.close(fd)


def test_a_submodule_not_checked_out_in_a_split_index_is_read_only(tmp_path: Path) -> None:
    ws = _split(_repository(tmp_path, "4"))
    (ws / "lib").mkdir()
    p = plan_protection(ws)
    try:
        kinds = {b.rel: b.kind for b in p.binds}
    finally:
        p.close()
    assert kinds.get("lib") == "ro", kinds
