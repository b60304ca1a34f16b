"""Tracked files the run changed while the git index tells git on the host not to look
(review h152).

The workspace's `.git/index` is the agent's to write (git needs it). An entry's
assume-unchanged bit (`git update-index --assume-unchanged`), its skip-worktree bit
(`--skip-worktree`), or stat data copied from the changed file (size and mtime as the file
now has them, beside the old content's object id) make `git status` and `git diff` say the
file is as committed: an agent rewrote a tracked Makefile, hid it so, and the person's review
(`git status --ignored`, `git diff`) showed nothing before `make` ran it. At a run's end each
tracked file changed during the run that git would so pass over is named, read without running
git and without following links (gitindex.py reads the same index).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import time
from dataclasses import dataclass

from .fsview import open_beneath, read_beneath
from .gitindex import EXTENDED, NAME_MAX, _read, _varint, git_folder

ASSUME_VALID = 0x8000  # an entry's flags: git trusts the entry without looking at the file
SKIP_WORKTREE = 0x4000  # its extended flags (index version 3 and 4)
REGULAR = 0o100000
MODE_TYPE = 0o170000
INDEX_MAX = 64 << 20  # bytes of indexes read at one end
HASH_MAX = 64 << 20  # bytes of files hashed at one end, all together
FILE_MAX = 16 << 20  # a larger file is not hashed (named when its stat data was copied)
ENTRIES_MAX = 200_000
SECONDS_MAX = 2.0  # of looking at one end
SHOWN = 10


@dataclass
class Entry:
    name: str
    mtime: tuple[int, int]
    size: int
    oid: bytes
    assume_valid: bool
    skip_worktree: bool
    mode: int


def _parse(data: bytes, hash_len: int, most: int) -> tuple[list[Entry], int]:
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


def index_entries(data: bytes, hash_len: int = 20, most: int = ENTRIES_MAX) -> list[Entry]:
    """The entries of an index (versions 2 to 4), those before where it is cut or malformed."""
    return _parse(data, hash_len, most)[0]


def _extensions(data: bytes, pos: int, hash_len: int) -> dict[bytes, bytes]:
    """An index's extensions from `pos` (where its entries end) to its trailing hash."""
    out: dict[bytes, bytes] = {}
    while pos and pos + 8 <= len(data) - hash_len:
        sig, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        out[sig] = data[pos + 8:pos + 8 + size]
        pos += 8 + size
    return out


def _ewah(data: bytes, pos: int, limit: int) -> tuple[list[int], int]:
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


def _merged(ws_fd: int, gd: str, data: bytes, hash_len: int,
            limit: int) -> tuple[list[Entry], float, int]:
    """The entries git reads from an index, a split index's shared part merged in as
    split-index.c does (review h152: `git update-index --split-index` put a skip-worktree
    entry where a reader of the index file alone did not see it); the newest ctime of the
    files read and the bytes read besides `data`."""
    entries, end = _parse(data, hash_len, ENTRIES_MAX)
    link = _extensions(data, end, hash_len).get(b"link")
    if link is None or len(link) < hash_len:
        return entries, 0.0, 0
    shared = read_beneath(ws_fd, f"{gd}/sharedindex.{link[:hash_len].hex()}", limit)
    if shared is None:
        return entries, 0.0, 0
    base = _parse(shared[0], hash_len, ENTRIES_MAX)[0]
    deleted: set[int] = set()
    replaced: list[int] = []
    if len(link) > hash_len:
        try:
            dele, pos = _ewah(link, hash_len, len(base))
            replaced, _ = _ewah(link, pos, len(base))
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


def _object_id(content: bytes, sha256: bool) -> bytes:
    h = hashlib.sha256() if sha256 else hashlib.sha1()  # noqa: S324 - git's object ids
    h.update(b"blob %d\0" % len(content))
    h.update(content)
    return h.digest()


def _lstat(ws_fd: int, rel: str) -> os.stat_result | None:
    """The entry at `rel` itself (a link not followed), reached with no link on the way."""
    parent, name = os.path.split(rel)
    try:
        pfd = open_beneath(ws_fd, parent or ".")
    except OSError:
        return None
    try:
        return os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(pfd)


def hidden_changes(ws_fd: int, since: float, tops: list[str]) -> tuple[list[str], str]:
    """(workspace-relative paths of tracked files changed since `since` that git would not
    show as changed, why the look stopped early or "") for the work trees at `tops`."""
    found: list[str] = []
    index_left, hash_left, cut = INDEX_MAX, HASH_MAX, ""
    deadline = time.monotonic() + SECONDS_MAX
    for top in dict.fromkeys(tops):
        gd = git_folder(ws_fd, top)
        got = read_beneath(ws_fd, f"{gd}/index", index_left) if gd is not None else None
        if got is None:
            continue
        data, ist = got
        index_left -= len(data)
        config = _read(ws_fd, f"{gd}/config", 1 << 16) or b""
        sha256 = bool(re.search(rb"(?im)^\s*objectformat\s*=\s*sha256", config))
        entries, shared_ctime, shared_read = _merged(ws_fd, gd, data, 32 if sha256 else 20,
                                                     max(index_left, 0))
        index_left -= shared_read
        if max(ist.st_ctime, shared_ctime) < since:
            continue  # an index the run did not write
        for e in entries:
            if e.mode & MODE_TYPE != REGULAR:
                continue
            if time.monotonic() > deadline:
                return found, f"{top or '.'} (past {SECONDS_MAX:g} s)"
            rel = os.path.normpath(os.path.join(top, e.name))
            if rel.startswith(("../", "/")) or rel == "..":
                continue
            st = _lstat(ws_fd, rel)
            if st is None or st.st_ctime < since:
                continue  # absent (a sparse checkout's skip-worktree), or not changed
            if e.assume_valid or e.skip_worktree:
                found.append(rel)  # a file, or a link or folder now standing in its place
                continue
            if not os.path.stat.S_ISREG(st.st_mode):
                continue  # git sees the type change and shows it
            mtime = (int(st.st_mtime) & 0xFFFFFFFF, st.st_mtime_ns % 1_000_000_000)
            if e.size != st.st_size & 0xFFFFFFFF or e.mtime[0] != mtime[0] or (
                    e.mtime[1] and e.mtime[1] != mtime[1]):
                continue  # git looks at this file, and shows it if it changed
            if st.st_size > FILE_MAX or st.st_size > hash_left:
                cut = cut or f"{rel} (past the {HASH_MAX >> 20} MiB hashed at one end)"
                continue
            content = read_beneath(ws_fd, rel, FILE_MAX + 1)
            if content is None:
                continue
            hash_left -= len(content[0])
            if _object_id(content[0], sha256) != e.oid:
                found.append(rel)
    return found, cut


def _any_changed(dfd: int, since: float, most: int = 10_000) -> bool:
    """An entry of the folder changed since `since`, among its first `most` (read one by one:
    a folder of millions is not listed whole); past them, True."""
    with os.scandir(dfd) as it:
        for i, entry in enumerate(it):
            if i >= most or entry.stat(follow_symlinks=False).st_ctime >= since:
                return True
    return False


def replace_refs(ws_fd: int, since: float, tops: list[str]) -> list[str]:
    """The git folders (workspace-relative) where the run made or changed a replace ref
    (`refs/replace/`, loose or packed): git on the host then shows the object it names in
    place of the real one (`git show HEAD:Makefile`, `git log -p`), whatever the work tree holds."""
    found = []
    for top in dict.fromkeys(tops):
        gd = git_folder(ws_fd, top)
        if gd is None:
            continue
        changed = False
        try:
            fd = open_beneath(ws_fd, f"{gd}/refs/replace")
        except OSError:
            fd = None
        if fd is not None:
            try:
                dfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                dfd = None
            finally:
                os.close(fd)
            if dfd is not None:
                try:
                    changed = os.fstat(dfd).st_ctime >= since or _any_changed(dfd, since)
                except OSError:
                    changed = True
                finally:
                    os.close(dfd)
        packed = read_beneath(ws_fd, f"{gd}/packed-refs", INDEX_MAX)
        if packed is not None and packed[1].st_ctime >= since and b" refs/replace/" in packed[0]:
            changed = True
        if changed:
            found.append(gd)
    return found


def hidden_change_notes(ws_fd: int, since: float, tops: list[str]) -> list[str]:
    found, cut = hidden_changes(ws_fd, since, tops)
    notes = [f"the run made or changed replace refs in {gd}/refs/replace (or packed-refs): git "
             "on your machine shows the objects they name in place of the real ones (`git log "
             "-p`, `git show`), so a change can read as another; look with "
             "`git --no-replace-objects log -p`, or remove them (`git replace -d`)"
             for gd in replace_refs(ws_fd, since, tops)]
    if found:
        shown = ", ".join(found[:SHOWN]) + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN
                                            else "")
        notes.append(f"the run changed tracked files that `git status` and `git diff` will not "
                     f"show ({shown}): the git index says they are unchanged (assume-unchanged "
                     "or skip-worktree bits, or stat data copied from the changed file); read "
                     "them before a tool on the host does, and run `git update-index "
                     "--really-refresh --no-assume-unchanged --no-skip-worktree -- PATH` "
                     "(a clean filter such as Git LFS, or end-of-line conversion, can also make a file differ from its "
                     "index entry)")
    if cut:
        notes.append(f"the look for tracked files git would not show as changed stopped early "
                     f"at {cut}")
    return notes
