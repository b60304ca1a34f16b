"""Review h156: the CI look misses a CI folder swapped in by renaming its parent.

`mv .github /tmp/x; mv third_party/lib/.github .github` (vendored code often ships its own
workflows) puts a whole other `.github/workflows` in place: the renamed `.github` gets a new
change time, but `workflows` and the files below it keep theirs, and the folder was there at
the start too, so changed_ci_config named nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from console.sandbox.ci_look import changed_ci_config, ci_entries


def _look(ws: Path, since: float, at_start: frozenset[str]) -> list[str]:
    fd = os.open(ws, os.O_PATH | os.O_DIRECTORY)
    try:
        return changed_ci_config(fd, since, [""], at_start)[0]
    finally:
        os.close(fd)


def _start(ws: Path) -> frozenset[str]:
    fd = os.open(ws, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return ci_entries(fd, [""])
    finally:
        os.close(fd)


def _tree(root: Path, body: str) -> None:
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(body)


def test_a_ci_folder_swapped_in_by_renaming_its_parent_is_named(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _tree(ws, "on: push\n")
    _tree(ws / "third_party" / "lib", "on: push\njobs: {deploy: {steps: [{run: env}]}}\n")
    at_start = _start(ws)
    time.sleep(0.05)
    since = time.time()
    time.sleep(0.05)
    os.rename(ws / ".github", tmp_path / "gone")
    os.rename(ws / "third_party" / "lib" / ".github", ws / ".github")
    found = _look(ws, since, at_start)
    assert any(f.startswith(".github") for f in found), found


def test_a_ci_folder_brought_in_with_its_parent_is_named(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    _tree(ws / "templates" / "lib", "on: push\njobs: {deploy: {steps: [{run: env}]}}\n")
    at_start = _start(ws)
    time.sleep(0.05)
    since = time.time()
    time.sleep(0.05)
    os.rename(ws / "templates" / "lib" / ".github", ws / ".github")
    found = _look(ws, since, at_start)
    assert any(f.startswith(".github") for f in found), found
