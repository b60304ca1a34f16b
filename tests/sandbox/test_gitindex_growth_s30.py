"""Review s30 (helper 100): a git index the agent leaves, read at every later start.

`.git/index` is the agent's to write. Version 4 builds each name from the one before; an index
whose names grow by 64 bytes an entry made gitlink_paths build ever longer names, work with the
square of the size (INDEX_MAX bounds the bytes read, not that): 16 MiB held a root daemon's
start 74 s, and as gitlinks every name was kept (1 MiB took the daemon to 3.6 GiB). A name
past NAME_MAX (git's own PATH_MAX) now ends the index as malformed, and no more gitlinks are
collected than the start could use.

Memory is measured (tracemalloc's peak while the index is read), not time: the longest name
built is what the square came from.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from console.sandbox.gitindex import LONG_NAME, NAME_MAX, gitlink_paths, not_checked_out

FILE, GITLINK = 0o100644, 0o160000


def index_v4(entries: list[tuple[int, int, bytes]]) -> bytes:
    """A version-4 index: (mode, how much of the previous name to drop, what follows)."""
    out = bytearray(b"DIRC" + struct.pack(">II", 4, len(entries)))
    for mode, strip, rest in entries:
        out += bytes(24) + struct.pack(">I", mode) + bytes(12) + bytes(20)
        out += struct.pack(">H", min(len(rest), 0xFFF)) + bytes([strip]) + rest + b"\0"
    return bytes(out + bytes(20))  # room for the checksum


def growing(mode: int, size: int, step: int = 64) -> bytes:
    """Entries whose names grow by `step` bytes each, up to about `size` bytes of index."""
    return index_v4([(mode, 0, b"a" * step)] * (size // (63 + step)))


def peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_names_that_grow_without_end_are_read_no_further_than_git_would() -> None:
    data = growing(FILE, 8 << 20)
    assert peak(lambda: gitlink_paths(data)) < 1 << 20  # the longest name built: 4 MiB before


def test_a_name_past_the_bound_ends_the_reading_and_says_so() -> None:
    long_name = [(FILE, 0, b"x" * 4000), (FILE, 0, b"y" * 200)]  # the second is 4,200 bytes
    data = index_v4([(GITLINK, 0, b"lib"), *long_name, (GITLINK, 255, b"after")])
    assert NAME_MAX < 4200 and gitlink_paths(data) == ["lib", LONG_NAME]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed (apt-get install git)")
def test_a_submodule_listed_past_a_long_name_is_noted(tmp_path: Path) -> None:
    """Second round (helper 104): git takes a name of 4,624 bytes in its index, and a gitlink
    after it went unread without a word (its folder not masked: a `.git` the agent writes
    there later runs its fsmonitor at the person's `git status`). The start now says the look
    stopped there."""
    git = ["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid",
           "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q", "-b", "master"], check=True)
    (tmp_path / "f").write_text("x\n")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    blob = subprocess.run([*git, "hash-object", "-w", "f"], capture_output=True, text=True,
                          check=True).stdout.strip()
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    long = "a" * 200 + "/" + ("b" * 200 + "/") * 22 + "x"
    subprocess.run([*git, "update-index", "--add", "--cacheinfo", f"100644,{blob},{long}"], check=True)
    subprocess.run([*git, "update-index", "--add", "--cacheinfo", f"160000,{head},zsub"], check=True)
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    notes: list[str] = []
    try:
        not_checked_out(fd, [], notes)
    finally:
        os.close(fd)
    assert notes and "stopped at the git index" in notes[0], notes


def test_no_more_gitlinks_are_kept_than_asked_for() -> None:
    data = growing(GITLINK, 256 << 10)
    assert len(gitlink_paths(data, most=10)) == 10
    assert peak(lambda: gitlink_paths(data, most=2049)) < 16 << 20  # 128 MiB of names before
