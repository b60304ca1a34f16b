"""Review h187: a host service's socket in the workspace, its folder left readable but not
searchable (chmod 600) by an earlier run's agent.

The start's walk could open and list that folder (read is enough) and saw the socket, but could
not look at it (a look needs search): a person's daemon, whose uid is the agent's, passed it
over, and did not cover the folder either (it had opened it). The next run's agent gave search
back and reached the service, past the gate."""

from __future__ import annotations

import os

import pytest

from tests.sandbox.hostile_kit import give
from tests.sandbox.test_review_h184 import _listen, _second_run


async def test_a_socket_in_a_folder_made_unsearchable_is_still_covered(hostile, request):
    listener = _listen(hostile.workspace)
    try:
        give(hostile, hostile.workspace / "tmp", hostile.workspace / "probe.py")
        first = await hostile.run("chmod 600 tmp/sockets && echo PLANTED")
        assert "PLANTED" in first.out, first.out
        await _second_run(hostile, request, listener, "chmod 755 tmp/sockets", "tmp/sockets")
    finally:
        listener.close()
        os.chmod(hostile.workspace / "tmp" / "sockets", 0o755)


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
