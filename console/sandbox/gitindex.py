"""A git index read without running git: the submodule paths (gitlinks) it lists, and its
entries (the stat data, object id and flags hidden.py compares with the work tree), a split
index's shared part merged in as git does.

`git status` and `git diff` (which the profiles allow) run `git status` inside every submodule
whose folder holds a `.git`, and that one reads the submodule's own config (core.fsmonitor: a
program). The index says which paths are submodules; `.gitmodules` need not (review s19b).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

from .fsview import open_beneath, read_beneath
from .links import inside_workspace

GITLINK = 0o160000
MODE_TYPE = 0o170000
EXTENDED = 0x4000
INDEX_MAX = 64 << 20  # bytes read from all indexes at one start; past it, read up to here
SUBMODULE_DEPTH = 4  # submodules of submodules looked into, as protect.py does their git folders
INDEXES_MAX = 64  # indexes read at one start (all together up to INDEX_MAX bytes)
# A name git itself would not write (PATH_MAX): the index is malformed from there. Version 4
# builds each name from the one before, so without it names the agent made grow by 64 bytes an
# entry cost work with the square of the index's size (review s30: 16 MiB held a start 74 s).
NAME_MAX = 4096
LONG_NAME = "\0"  # gitlink_paths' last path when a name past NAME_MAX stopped it
ASSUME_VALID = 0x8000  # an entry's flags: git trusts the entry without looking at the file
SKIP_WORKTREE = 0x4000  # its extended flags (index version 3 and 4)
ENTRIES_MAX = 200_000  # entries read from one index by parse_index


def gitlink_paths(data: bytes, hash_len: int = 20, most: int | None = None) -> list[str]:
    """Workspace-relative paths of the gitlinks in an index (versions 2 to 4), at most `most`;
    those before where the data is cut or malformed when it is. hash_len is 32 for a SHA-256
    repository. A name past NAME_MAX ends the reading with LONG_NAME last: git takes such a
    name, so the entries after it are not known (the caller says so)."""
    if len(data) < 12 or data[:4] != b"DIRC":
        return []
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        return []
    found: list[str] = []
    pos, previous = 12, b""
    try:
        for _ in range(count):
            mode = int.from_bytes(data[pos + 24:pos + 28], "big")
            flags = int.from_bytes(data[pos + 40 + hash_len:pos + 42 + hash_len], "big")
            start = pos + 42 + hash_len + (2 if version >= 3 and flags & EXTENDED else 0)
            if version == 4:  # the name: how much of the previous one to drop, then the rest
                strip, start = _varint(data, start)
                end = data.index(b"\0", start)
                name = previous[:len(previous) - strip] + data[start:end]
                pos = end + 1
            else:  # the name, then NULs to a multiple of 8 bytes
                end = data.index(b"\0", start)
                name = data[start:end]
                pos += (start - pos + len(name) + 8) & ~7
            if end > len(data) - hash_len:
                break
            if len(name) >= NAME_MAX:
                found.append(LONG_NAME)
                break
            previous = name
            if mode & MODE_TYPE == GITLINK:
                found.append(name.decode("utf-8", "surrogateescape"))
                if most is not None and len(found) >= most:
                    break
    except (ValueError, IndexError):
        pass  # cut short or malformed: what was read so far
    return found


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset varint (varint.c): (value, position after it)."""
    byte = data[pos]
    pos += 1
    value = byte & 0x7F
    while byte & 0x80:
        byte = data[pos]
        pos += 1
        value = ((value + 1) << 7) | (byte & 0x7F)
    return value, pos


def _read(root_fd: int, rel: str, limit: int) -> bytes | None:
    """A regular file's first `limit` bytes, opened without links; None when it is not one."""
    got = read_beneath(root_fd, rel, limit)
    return None if got is None else got[0]


def git_folder(root_fd: int, top: str = "") -> str | None:
    """The git folder of the work tree at `top` (workspace-relative, "" for the workspace):
    `top/.git`, or where a `.git` file's `gitdir:` line leads (a submodule checked out, `git
    init --separate-git-dir`, a linked worktree; review s20: their index went unread); None
    when that is outside the workspace."""
    dot_git = os.path.join(top, ".git")
    text = _read(root_fd, dot_git, 4096)
    if text is None:
        return dot_git  # a folder (or absent, or a link: nothing is read through it)
    first = text.decode(errors="replace").partition("\n")[0]
    if not first.startswith("gitdir:"):
        return None
    return inside_workspace(top or ".", first[len("gitdir:"):].strip(), root_fd)


def object_id_length(root_fd: int, gd: str) -> int:
    """Bytes of an object id in the repository of git folder `gd`: 32 for SHA-256, else 20.
    The object format is in the config of the git folder, or of the common one a linked
    worktree's names."""
    config = _read(root_fd, f"{gd}/config", 1 << 16)
    common = (_read(root_fd, f"{gd}/commondir", 4096) or b"").decode(errors="replace").strip()
    if config is None and common:
        where = inside_workspace(gd, common, root_fd)
        config = _read(root_fd, f"{where}/config", 1 << 16) if where is not None else None
    return 32 if re.search(rb"(?im)^\s*objectformat\s*=\s*sha256", config or b"") else 20


def index_gitlinks(root_fd: int, top: str = "", limit: int = INDEX_MAX,
                   most: int | None = None) -> tuple[list[str], int]:  # fmt: skip
    """The gitlinks of the index of the work tree at `top` (at most `most`), as the index
    spells them (relative to `top`), from its first `limit` bytes, and how many bytes were
    read."""
    gd = git_folder(root_fd, top)
    index = _read(root_fd, f"{gd}/index", limit) if gd is not None else None
    if index is None:
        return [], 0
    hash_len = object_id_length(root_fd, gd)
    found = gitlink_paths(index, hash_len, most)
    shared = _shared_index(root_fd, gd, index, hash_len, max(limit - len(index), 0))
    if shared and found[-1:] != [LONG_NAME]:
        # A split index (`git update-index --split-index`) keeps most entries in its shared
        # part: a gitlink there went unseen and its folder stayed writable (review h152).
        # Both parts' gitlinks count (one the main part deletes is protected needlessly).
        found += [g for g in gitlink_paths(shared, hash_len, most) if g not in found]
        if most is not None:
            found = found[:most]
    return found, len(index) + len(shared)


def _has_shared_part(root_fd: int, gd: str, most: int = 4096) -> bool:
    """A `sharedindex.*` file in the git folder, among its first `most` entries (past them, or
    when the folder cannot be listed, True: the index is then read as a split one)."""
    try:
        path_fd = open_beneath(root_fd, gd)
    except OSError:
        return True
    try:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=path_fd)
    except OSError:
        return True
    finally:
        os.close(path_fd)
    try:
        with os.scandir(fd) as it:
            for i, entry in enumerate(it):
                if i >= most or entry.name.startswith("sharedindex."):
                    return True
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _shared_index(root_fd: int, gd: str, index: bytes, hash_len: int, limit: int) -> bytes:
    """The shared part a split index's `link` extension names (`sharedindex.HEX` in its git
    folder), its first `limit` bytes; b"" when there is none."""
    # No split index, the entries need no second reading: "link" can be in any path, and
    # finding the extensions parses every entry (30,000 entries: ~95 ms at each start).
    if b"link" not in index or not _has_shared_part(root_fd, gd):
        return b""
    link = index_extensions(index, parse_index(index, hash_len, 1 << 30)[1], hash_len).get(b"link")
    if link is None or len(link) < hash_len or limit <= 0:
        return b""
    return _read(root_fd, f"{gd}/sharedindex.{link[:hash_len].hex()}", limit) or b""


@dataclass
class _Look:
    """What one start's look through indexes may still take: gitlinks found, indexes read."""

    most: int
    indexes: int = INDEXES_MAX
    bytes_left: int = field(default_factory=lambda: INDEX_MAX)
    cut: str = ""  # the first work tree whose submodules were not looked into
    done: set[str] = field(default_factory=set)  # work trees looked at (a submodule is nested too)


def not_checked_out(root_fd: int, nested: list[str] | None = None,
                    notes: list[str] | None = None) -> list[str]:  # fmt: skip
    """The gitlinks whose folder holds no `.git` (not checked out), workspace-relative: of the
    workspace's index, of the nested repositories' (`nested`: `.git` paths find_nested_git
    found; `git -C DIR status` is `git status` to the rules) and, SUBMODULE_DEPTH deep, of each
    submodule checked out in those: `git status` goes into every checked-out submodule and does
    the same there (review s20: a `.git` written into a submodule not checked out of a checked-
    out one, or of a nested repository, ran its core.fsmonitor). At most PROTECTED_MAX + 1 of
    them (protect.py would make each a mount of its own: plan_limits refuses past its bound),
    from at most INDEXES_MAX indexes and INDEX_MAX bytes; past those `notes` says where the look
    stopped."""
    from .plan_limits import PROTECTED_MAX

    look = _Look(PROTECTED_MAX + 1)
    found: list[str] = []
    tops = ["", *(os.path.dirname(r) for r in nested or () if os.path.basename(r) == ".git")]
    for top in tops:
        found += _below(root_fd, top, 0, look, look.most - len(found))
        if len(found) >= look.most:
            break
    if look.cut and notes is not None:
        notes.append(f"the look for submodules not checked out stopped at the git index of "
                     f"{look.cut} (past {INDEXES_MAX} indexes or {INDEX_MAX >> 20} MiB in all, "
                     f"or a name past {NAME_MAX} bytes): "
                     "one not checked out there or past it is writable, and `git status` runs "
                     "what a `.git` written into it names")
    return found


def _below(root_fd: int, top: str, depth: int, look: _Look, most: int) -> list[str]:
    """not_checked_out for the work tree at `top` and its checked-out submodules."""
    import errno

    if top in look.done:
        return []
    if look.indexes <= 0 or look.bytes_left <= 0:
        look.cut = look.cut or top or "."
        return []
    look.indexes -= 1
    look.done.add(top)
    found: list[str] = []
    # Each gitlink is one more below (most), or one more to look into: no more are needed.
    gitlinks, read = index_gitlinks(root_fd, top, look.bytes_left, look.most)
    look.bytes_left -= read
    if look.bytes_left <= 0 or gitlinks[-1:] == [LONG_NAME]:  # read only in part
        look.cut = look.cut or top or "."
        gitlinks = [g for g in gitlinks if g != LONG_NAME]
    for path in gitlinks:
        rel = os.path.normpath(os.path.join(top, path))
        if rel in (".", "..") or rel.startswith(("../", "/")) or (
                top and not rel.startswith(top + "/")):  # fmt: skip
            continue
        try:
            os.close(open_beneath(root_fd, f"{rel}/.git"))
        except OSError as e:
            if e.errno != errno.ENOENT:
                if e.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
                    continue
                raise
            found.append(rel)
        else:
            if depth < SUBMODULE_DEPTH:
                found += _below(root_fd, rel, depth + 1, look, most - len(found))
        if len(found) >= most:
            return found[:most]
    return found


@dataclass
class Entry:
    name: str
    mtime: tuple[int, int]
    size: int
    oid: bytes
    assume_valid: bool
    skip_worktree: bool
    mode: int


def parse_index(data: bytes, hash_len: int, most: int) -> tuple[list[Entry], int]:
    """An index's entries (versions 2 to 4), those before where it is cut or malformed, and
    where its extensions start (0 when the entries did not all parse)."""
    if len(data) < 12 or data[:4] != b"DIRC":
        return [], 0
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        return [], 0
    out: list[Entry] = []
    pos, previous = 12, b""
    try:
        for _ in range(count):
            if len(out) >= most:
                return out, 0
            _cs, _cn, ms, mn, _dev, _ino, mode, _uid, _gid, size = struct.unpack(
                ">10I", data[pos:pos + 40])
            oid = data[pos + 40:pos + 40 + hash_len]
            flags = int.from_bytes(data[pos + 40 + hash_len:pos + 42 + hash_len], "big")
            start = pos + 42 + hash_len
            ext = 0
            if version >= 3 and flags & EXTENDED:
                ext = int.from_bytes(data[start:start + 2], "big")
                start += 2
            if version == 4:
                strip, start = _varint(data, start)
                end = data.index(b"\0", start)
                name = previous[:len(previous) - strip] + data[start:end]
                pos = end + 1
            else:
                end = data.index(b"\0", start)
                name = data[start:end]
                pos += (start - pos + len(name) + 8) & ~7
            if end > len(data) - hash_len or len(name) >= NAME_MAX:
                return out, 0
            previous = name
            out.append(Entry(name.decode("utf-8", "surrogateescape"), (ms, mn), size, oid,
                             bool(flags & ASSUME_VALID), bool(ext & SKIP_WORKTREE), mode))
    except (ValueError, IndexError, struct.error):
        return out, 0
    return out, pos


def index_extensions(data: bytes, pos: int, hash_len: int) -> dict[bytes, bytes]:
    """An index's extensions from `pos` (where its entries end) to its trailing hash."""
    out: dict[bytes, bytes] = {}
    while pos and pos + 8 <= len(data) - hash_len:
        sig, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        out[sig] = data[pos + 8:pos + 8 + size]
        pos += 8 + size
    return out


def ewah_bits(data: bytes, pos: int, limit: int) -> tuple[list[int], int]:
    """The set bits below `limit` of git's EWAH bitmap at `pos` (ewah/ewah_io.c), and where it
    ends. Its sizes are the agent's: no more words are read than the data holds, and no run is
    spelled out past `limit`."""
    _bits, words = struct.unpack(">II", data[pos:pos + 8])
    words = min(words, max(len(data) - pos - 8, 0) // 8)
    buf = [int.from_bytes(data[pos + 8 + 8 * i:pos + 16 + 8 * i], "big") for i in range(words)]
    pos += 8 + 8 * words + 4  # the words, then the position of the last run-length word
    out: list[int] = []
    i, word = 0, 0
    while i < len(buf) and word * 64 < limit:
        rlw = buf[i]
        i += 1
        run, literals = (rlw >> 1) & 0xFFFFFFFF, rlw >> 33
        if rlw & 1:
            out.extend(range(word * 64, min((word + run) * 64, limit)))
        word += run
        for lit in buf[i:i + literals]:
            out.extend(b for b in range(word * 64, min(word * 64 + 64, limit)) if lit >> (b - word * 64) & 1)
            word += 1
        i += literals
    return out, pos


def merged_entries(ws_fd: int, gd: str, data: bytes, hash_len: int,
            limit: int) -> tuple[list[Entry], float, int]:
    """The entries git reads from an index, a split index's shared part merged in as
    split-index.c does (review h152: `git update-index --split-index` put a skip-worktree
    entry where a reader of the index file alone did not see it); the newest ctime of the
    files read and the bytes read besides `data`."""
    entries, end = parse_index(data, hash_len, ENTRIES_MAX)
    link = index_extensions(data, end, hash_len).get(b"link")
    if link is None or len(link) < hash_len:
        return entries, 0.0, 0
    shared = read_beneath(ws_fd, f"{gd}/sharedindex.{link[:hash_len].hex()}", limit)
    if shared is None:
        return entries, 0.0, 0
    base = parse_index(shared[0], hash_len, ENTRIES_MAX)[0]
    deleted: set[int] = set()
    replaced: list[int] = []
    if len(link) > hash_len:
        try:
            dele, pos = ewah_bits(link, hash_len, len(base))
            replaced, _ = ewah_bits(link, pos, len(base))
            deleted = set(dele)
        except (struct.error, IndexError):
            pass
    merged: list[Entry | None] = list(base)
    fresh = [e for e in entries if e.name]
    unnamed = iter(e for e in entries if not e.name)
    for i in replaced:
        new = next(unnamed, None)
        if new is not None and i < len(merged) and merged[i] is not None:
            merged[i] = Entry(merged[i].name, new.mtime, new.size, new.oid,  # type: ignore[union-attr]
                              new.assume_valid, new.skip_worktree, new.mode)
    for i in deleted:
        if i < len(merged):
            merged[i] = None
    return [e for e in merged if e is not None] + fresh, shared[1].st_ctime, len(shared[0])
