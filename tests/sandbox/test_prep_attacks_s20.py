"""Attack review s20 (prep): what a run's start does on the host with what an earlier run's
agent, or a repository, left in the workspace.

- A nested repository whose `.git/modules` holds a folder tree deeper than Python's recursion
  limit: the look for its submodules' git folders used os.walk, which recurses in Python 3.11
  (review s16 bounded every other walk). The next start in that workspace raised
  RecursionError: no run could start there.
- A repository whose index lists thousands of submodules that are not checked out (a hostile
  repository cloned without --recursive, or an index the agent wrote): each became a mount of
  its own, and under a root daemon a mount in the host's own mount table, without bound. The
  kernel takes 100,000 mounts per namespace (fs.mount-max): past it, every mount on the host
  fails (containers, systemd) while the run lives. A start that needs more than the bound is
  refused now, before anything is made or mounted, saying why and what to do.

Each test failed before the fix (/work/notes/review-s20-prep-before.txt). Sandbox tests run a
real sandbox, both backends under a root daemon and an ordinary-user daemon (`hostile`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from console.sandbox.base import SandboxError
from console.sandbox.fsview import mount_points
from console.sandbox.protect import plan_protection
from tests.sandbox.hostile_kit import give, workspace_owner
from tests.sandbox.test_sandbox_attacks_s16 import _deep_tree, _remove_deep

ENV = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}
SUBMODULES = 2500  # past the bound on paths one start protects (plan_limits.PROTECTED_MAX)


def _nested_repo_with_deep_modules(ws: Path, owner: tuple[int, int] = (-1, -1)) -> Path:
    """sub/.git (HEAD, objects, refs) whose modules folder holds modules/deep/d/d/... 1,100
    deep; returns the deep tree's top."""
    git = ws / "sub" / ".git"
    for folder in (git / "objects", git / "refs", git / "modules"):
        folder.mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    for path in (ws / "sub", git, git / "objects", git / "refs", git / "modules", git / "HEAD"):
        os.lchown(path, *owner)
    _deep_tree(git / "modules" / "deep", owner)
    return git / "modules" / "deep"


def _index_with_gitlinks(ws: Path, count: int) -> None:
    """A repository whose index lists `count` submodules, none checked out (no folder)."""
    subprocess.run(["git", "init", "-q", str(ws)], check=True, env=ENV)
    lines = "".join(f"160000 {'1' * 40}\tmod/s{i:05d}\n" for i in range(count))
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "update-index", "--add", "--index-info"],
                   input=lines.encode(), check=True, env=ENV)  # fmt: skip
    (ws / "mod").mkdir()


def test_a_deep_tree_in_a_nested_repositorys_modules_folder_does_not_stop_the_plan(
        tmp_path: Path) -> None:
    """The plan of the next start must not crash, and its notes say the look was cut."""
    ws = tmp_path / "ws"
    ws.mkdir()
    deep = _nested_repo_with_deep_modules(ws)
    try:
        try:
            plan = plan_protection(ws)
        except RecursionError as e:
            pytest.fail(f"the plan crashed on a deep modules folder: {e!r}")
        try:
            kinds = {b.rel: b.kind for b in plan.binds}
            assert kinds.get("sub/.git/modules") == "ro", kinds
            assert any("submodules stopped early in sub/.git/modules" in n for n in plan.notes), \
                plan.notes
        finally:
            plan.close()
    finally:
        _remove_deep(deep)


async def test_a_run_starts_beside_a_nested_repository_with_a_deep_modules_folder(hostile):
    ws = hostile.workspace
    give(hostile, ws)
    deep = _nested_repo_with_deep_modules(ws, workspace_owner(hostile))
    try:
        try:
            r = await hostile.run("echo STARTED", timeout=120)
        except RecursionError as e:  # the root daemon's backend, in this process
            pytest.fail(f"the start crashed on a deep modules folder: {e!r}")
        assert "STARTED" in r.out, (r.out, r.handle.notes)
    finally:
        _remove_deep(deep)


def test_a_plan_of_more_protected_paths_than_the_bound_is_refused(tmp_path: Path) -> None:
    """Before: 20,000 submodules in a 1.4 MB index planned 20,000 binds."""
    ws = tmp_path / "ws"
    _index_with_gitlinks(ws, SUBMODULES)
    with pytest.raises(SandboxError) as refused:
        plan_protection(ws).close()
    assert "submodule" in str(refused.value) and "mod" in str(refused.value), refused.value
    assert "git submodule update --init" in refused.value.hint, refused.value.hint


async def test_thousands_of_submodules_not_checked_out_mount_nothing(hostile):
    """The run is refused, saying why; nothing was made in the workspace. Before, a root daemon
    mounted one mask per submodule in the host's mount table while the run lived."""
    ws = hostile.workspace
    _index_with_gitlinks(ws, SUBMODULES)
    give(hostile, ws)
    before = len(mount_points())
    during: list[int] = []

    async def count_mounts(_handle) -> None:
        during.append(len(mount_points()) - before)

    try:
        r = await hostile.run("echo STARTED", prepare=count_mounts)
    except (SandboxError, AssertionError) as e:  # refused (AssertionError: the user daemon's)
        assert "submodule" in str(e), e
    else:
        pytest.fail(f"the run started; host mounts added while it lived: {during}; {r.out!r}")
    assert os.listdir(ws / "mod") == [], "folders were made for the submodules"


def _separate_git_dir_with_a_submodule(ws: Path) -> None:
    """A work tree whose `.git` is a file naming its git folder inside the workspace
    (`git init --separate-git-dir`, the path made relative so that git finds it inside the
    sandbox too), whose index lists `lib`, not checked out (empty)."""
    ws.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q", f"--separate-git-dir={ws / '.repo.git'}", str(ws)],
                   check=True, env=ENV)  # fmt: skip
    (ws / ".git").write_text("gitdir: .repo.git\n")
    subprocess.run(["git", "-c", "safe.directory=*", "-C", str(ws), "update-index", "--add",
                    "--cacheinfo", f"160000,{'1' * 40},lib"], check=True, env=ENV)  # fmt: skip
    (ws / "lib").mkdir()


def test_a_submodule_not_checked_out_is_read_only_when_dot_git_is_a_file(tmp_path: Path) -> None:
    """Review s19b made such a folder read-only, reading `.git/index`: with `.git` a file,
    that index is elsewhere, and `lib` stayed writable (a `.git` written there, with a
    core.fsmonitor, ran from the next `git status` the rules allow)."""
    ws = tmp_path / "ws"
    _separate_git_dir_with_a_submodule(ws)
    plan = plan_protection(ws)
    try:
        kinds = {b.rel: b.kind for b in plan.binds}
    finally:
        plan.close()
    assert kinds.get("lib") == "ro", kinds


async def test_no_git_folder_can_be_written_into_a_submodule_not_checked_out(hostile):
    ws = hostile.workspace
    _separate_git_dir_with_a_submodule(ws)
    give(hostile, ws)
    r = await hostile.run("mkdir lib/.git 2>/dev/null && echo WROTE || echo REFUSED")
    assert "REFUSED" in r.out, r.out


def _submodule_with_a_submodule_not_checked_out(ws: Path, scratch: Path) -> None:
    """ws holds `lib`, a submodule checked out, whose own index lists `inner`, not checked
    out (`git submodule update --init` without --recursive leaves it so)."""
    env = {**ENV, "HOME": str(scratch), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t.invalid"}  # fmt: skip

    def git(where: Path, *args: str) -> None:
        subprocess.run(["git", "-c", "safe.directory=*", "-c", "protocol.file.allow=always",
                        "-C", str(where), *args], check=True, env=env, capture_output=True)

    inner = scratch / "inner-lib"
    git(scratch, "init", "-q", str(inner))
    (inner / "b.txt").write_text("b\n")
    git(inner, "add", "b.txt")
    git(inner, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},inner")
    git(inner, "commit", "-qm", "lib")
    ws.mkdir(parents=True, exist_ok=True)
    git(ws, "init", "-q", ".")
    git(ws, "submodule", "add", "-q", str(inner), "lib")
    assert (ws / "lib" / "inner").is_dir() and not (ws / "lib" / "inner" / ".git").exists()


def test_a_submodule_not_checked_out_inside_a_checked_out_one_is_read_only(
        tmp_path: Path) -> None:
    """`git status` goes into lib and, from there, into lib/inner once it holds a `.git`:
    whose core.fsmonitor it ran (on the host too). Only the workspace's own index was read."""
    ws = tmp_path / "ws"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _submodule_with_a_submodule_not_checked_out(ws, scratch)
    plan = plan_protection(ws)
    try:
        kinds = {b.rel: b.kind for b in plan.binds}
    finally:
        plan.close()
    assert kinds.get("lib/inner") == "ro", {k: v for k, v in kinds.items() if "lib" in k}


async def test_no_git_folder_can_be_written_into_a_submodule_of_a_submodule(hostile):
    ws = hostile.workspace
    scratch = hostile.home / "scratch"
    scratch.mkdir()
    _submodule_with_a_submodule_not_checked_out(ws, scratch)
    give(hostile, ws)
    r = await hostile.run("mkdir lib/inner/.git 2>/dev/null && echo WROTE || echo REFUSED")
    assert "REFUSED" in r.out, r.out


def test_a_submodule_not_checked_out_of_a_nested_repository_is_read_only(tmp_path: Path) -> None:
    """vendor/dep, a repository of its own below the top (vendored with its .git), lists
    `inner`, not checked out: `git -C vendor/dep status` is `git status` to the rules."""
    ws = tmp_path / "ws"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True, env=ENV)
    _submodule_with_a_submodule_not_checked_out(ws / "vendor" / "dep", scratch)
    plan = plan_protection(ws)
    try:
        kinds = {b.rel: b.kind for b in plan.binds}
    finally:
        plan.close()
    assert kinds.get("vendor/dep/lib/inner") == "ro", {k: v for k, v in kinds.items()
                                                       if "vendor" in k}  # fmt: skip


def test_the_look_through_indexes_is_bounded_and_says_where_it_stopped(tmp_path: Path) -> None:
    """Each nested repository's index is read (up to 64 MiB each): past INDEXES_MAX of them
    the look stops, and the run's notes say so."""
    from console.sandbox.gitindex import INDEXES_MAX

    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(INDEXES_MAX + 2):
        (ws / f"r{i:03d}" / ".git").mkdir(parents=True)
    plan = plan_protection(ws)
    plan.close()
    assert any("submodules not checked out stopped" in n for n in plan.notes), plan.notes


def test_the_look_through_indexes_reads_a_bounded_number_of_bytes(tmp_path: Path,
                                                                   monkeypatch) -> None:  # fmt: skip
    """All the indexes one start reads are read up to INDEX_MAX bytes together (64 indexes of
    64 MiB each, which an agent can write into repositories of its own, took minutes)."""
    from console.sandbox import gitindex

    ws = tmp_path / "ws"
    _index_with_gitlinks(ws, 40)
    monkeypatch.setattr(gitindex, "INDEX_MAX", 1000)
    plan = plan_protection(ws)
    plan.close()
    assert any("submodules not checked out stopped" in n for n in plan.notes), plan.notes
