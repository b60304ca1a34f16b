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

import struct
import tracemalloc
from collections.abc import Callable

from console.sandbox.gitindex import NAME_MAX, gitlink_paths

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


def test_a_malformed_name_ends_the_index_what_came_before_stands() -> None:
    long_name = [(FILE, 0, b"x" * 4000), (FILE, 0, b"y" * 200)]  # the second is 4,200 bytes
    data = index_v4([(GITLINK, 0, b"lib"), *long_name, (GITLINK, 255, b"after")])
    assert NAME_MAX < 4200 and gitlink_paths(data) == ["lib"]


def test_no_more_gitlinks_are_kept_than_asked_for() -> None:
    data = growing(GITLINK, 256 << 10)
    assert len(gitlink_paths(data, most=10)) == 10
    assert peak(lambda: gitlink_paths(data, most=2049)) < 16 << 20  # 128 MiB of names before
