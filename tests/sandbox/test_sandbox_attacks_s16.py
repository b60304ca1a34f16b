"""Sandbox review s16: a folder tree deeper than Python's recursion limit in the workspace.

Python 3.11's os.fwalk and os.walk recurse, one generator frame (and, for fwalk, one open
descriptor) per level. The walks a run's start and end make through the workspace (the look for
nested repositories, nested.find_nested_git; the end's look for changed protected files and
watched git folders, watch.changed_below; the look through read-only folders for links,
aliases.LookBudget) were bounded in entries and seconds, not in depth: `mkdir d; cd d` 1,100
times (1,100 entries, well inside every bound) raised RecursionError out of them.

At the end of a run that made the report of everything else the agent wrote vanish: the nested
repository it wrote beside the tree (whose core.fsmonitor git on the host runs) was never
named, and a Docker run's view was left mounted. At the start of the next run the daemon could
not plan the protection at all.

Each test failed before the fix (/work/notes/review-s16-sandbox-before.txt). Sandbox tests run
a real sandbox, both backends under a root daemon and an ordinary-user daemon (`hostile`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sandbox.hostile_kit import give, workspace_owner
from tests.sandbox.test_workspace_attacks import mentions

DEPTH = 1100  # past sys.getrecursionlimit() (1000), far inside every entry and time bound
NEW_REPO = ("mkdir -p src/.git/objects src/.git/refs && echo 'ref: refs/heads/main' > "
            "src/.git/HEAD && printf '[core]\\n\\tfsmonitor = touch /tmp/owned\\n' > "
            "src/.git/config")  # fmt: skip
DEEP_TREE = (f"mkdir deep && cd deep && for i in $(seq {DEPTH}); do mkdir d && cd d || exit 1;"
             " done && echo MADE")  # fmt: skip


def _deep_tree(top: Path, owner: tuple[int, int] = (-1, -1), depth: int = DEPTH) -> None:
    """top/d/d/.../d, made by descriptor (each path stays short), each folder the owner's."""
    top.mkdir()
    os.chown(top, *owner)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            os.chown("d", *owner, dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


def _remove_deep(top: Path) -> None:
    """Take top/d/d/... apart one level at a time (shutil.rmtree recurses too)."""
    if not top.is_dir():
        return
    while (top / "d").is_dir():
        if (top / "d" / "d").is_dir():
            os.rename(top / "d" / "d", top / "t")
            os.rmdir(top / "d")
            os.rename(top / "t", top / "d")
        else:
            os.rmdir(top / "d")
    os.rmdir(top)


async def _run(box, script: str):
    try:
        return await box.run(script, timeout=120)
    except RecursionError as e:  # the root daemon's backend, in this process
        pytest.fail(f"the daemon's walk of the workspace crashed: {e!r}")


async def test_a_deep_tree_does_not_silence_the_report_of_a_repository_the_agent_wrote(hostile):
    """The agent writes src/.git, whose core.fsmonitor git on the host runs, and a folder tree
    1,100 deep. The run's end must still name src/.git (and say if its look was cut short);
    before, the look for nested repositories raised RecursionError: no end notes, no
    `sandbox.finding`, the run recorded as "lost track of the sandbox", and under Docker the
    view left mounted."""
    ws = hostile.workspace
    give(hostile, ws)
    try:
        r = await _run(hostile, f"{NEW_REPO} && {DEEP_TREE}")
        assert "MADE" in r.out, r.out
        assert mentions(r.handle.end_notes, "src/.git"), (
            "src/.git written during the run, and the end notes do not say so",
            r.handle.end_notes)  # fmt: skip
    finally:
        _remove_deep(ws / "deep")


async def test_a_run_starts_in_a_workspace_with_a_deep_tree_and_says_the_look_was_cut(hostile):
    """The tree left by an earlier run (or cloned): the next start planned nothing and failed
    with RecursionError (a root daemon left the run in its live table, never ended). It must
    start, and its notes say the look for nested repositories did not go all the way down."""
    ws = hostile.workspace
    give(hostile, ws)
    _deep_tree(ws / "deep", workspace_owner(hostile))
    try:
        r = await _run(hostile, "echo STARTED")
        assert "STARTED" in r.out, (r.out, r.handle.notes)
        assert any("look for nested git repositories" in n and "deep" in n
                   for n in r.handle.notes), r.handle.notes  # fmt: skip
    finally:
        _remove_deep(ws / "deep")


def test_the_end_of_run_looks_survive_a_deep_tree_and_say_they_were_cut(tmp_path: Path) -> None:
    """The end's look below a watched git folder or a read-only folder (watch.changed_below)
    and the start's look through read-only folders for links (aliases.LookBudget) recursed as
    deep as the tree: RecursionError. They must stop at a depth and say the look was cut."""
    from console.sandbox.aliases import LookBudget
    from console.sandbox.watch import Budget, changed_below

    top = tmp_path / "watched"
    _deep_tree(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        budget = Budget()
        try:
            changed_below(fd, 0.0, budget, git=True)
        except RecursionError as e:
            pytest.fail(f"changed_below crashed on a deep tree: {e!r}")
        assert budget.cut, "the look stopped short of the bottom and did not say so"
        look = LookBudget()
        try:
            list(look.entries(fd, "watched"))
        except RecursionError as e:
            pytest.fail(f"LookBudget.entries crashed on a deep tree: {e!r}")
        assert look.cut == ["watched"], look.cut
    finally:
        os.close(fd)
        _remove_deep(top)
