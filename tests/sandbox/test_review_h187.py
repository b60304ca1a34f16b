"""Review h187: what review h184's covers cost, and one they missed.

A socket in a folder left readable but not searchable (chmod 600) by an earlier run's agent:
the walk listed it but could not look at it, and a person's daemon passed it over (the case is
test_review_h184's socket test, parametrized "unsearchable"). Here: many folders not looked
into are each compared with their own parents only (the check was quadratic), and the includes
and commands git configs name are bounded (read whole, they made a start take minutes)."""

from __future__ import annotations

import os

import pytest


class _Counted(str):
    """A path that counts the comparisons made with it."""

    calls = 0
    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        _Counted.calls += 1
        return str.__eq__(self, other)

    def startswith(self, *args) -> bool:  # type: ignore[override]
        _Counted.calls += 1
        return str.startswith(self, *args)


def test_many_unopened_folders_are_each_compared_with_their_ancestors_only():
    """An earlier run's agent made 20,000 folders a person's daemon may not open: each was
    compared with every folder covered before it, and the start took 60 s before it was refused
    (more than PROTECTED_MAX paths); 200,000 (the walk's entry bound) would take hours."""
    from console.sandbox.special_files import unlooked

    n = 3000
    pruned = [_Counted(f"m/{i}") for i in range(n)] + [_Counted("m/1/x"), _Counted("m/22/y/z")]
    _Counted.calls = 0
    covered = unlooked(pruned)
    assert sorted(covered) == sorted(f"m/{i}" for i in range(n))
    assert _Counted.calls < 10 * n, f"{_Counted.calls:,} comparisons for {n:,} folders"


def test_configs_that_name_too_many_includes_refuse_the_run(tmp_path):
    """Read whole (review h184), a nested repository's config of 4 MiB of `path = ...` lines
    made the start resolve each: 55 s for four such repositories, 15 minutes for 64."""
    from console.sandbox.base import SandboxError
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.protect import plan_protection

    git = tmp_path / "sub" / ".git"
    for d in ("objects", "refs", "hooks"):
        (git / d).mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "config").write_text("[include]\n\tpath = ../../notes.cfg\n" * 8193)  # CONFIG_ENTRIES_MAX + 1
    (tmp_path / "notes.cfg").write_text("[core]\n\tbare = false\n")
    fd = open_dir_nofollow(tmp_path)
    try:
        with pytest.raises(SandboxError, match=r"more than 8,192 included files .* sub/\.git/config"):
            plan_protection(fd)
    finally:
        os.close(fd)


def test_a_hook_that_names_too_many_config_files_refuses_the_run(tmp_path):
    """Hooks are read for 1 MiB since review h184 (16 KiB before): one hook of `--config FILE`
    lines named a file 28,000 times, each resolved through the workspace (83 hooks a folder:
    minutes), outside the bound on what configs name (s44's read of the change)."""
    from console.sandbox.base import SandboxError
    from console.sandbox.fsview import open_dir_nofollow
    from console.sandbox.protect import plan_protection

    git = tmp_path / "sub" / ".git"
    for d in ("objects", "refs", "hooks"):
        (git / d).mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "hooks" / "pre-commit").write_text(
        "#!/bin/sh\n" + "pre-commit run --config ../../c.yaml\n" * 8193)  # one name, each resolved
    fd = open_dir_nofollow(tmp_path)
    try:
        with pytest.raises(SandboxError, match=r"more than 8,192 .* sub/\.git/hooks/pre-commit"):
            plan_protection(fd)
    finally:
        os.close(fd)
