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
import time

from .fsview import FolderStats, open_dir_beneath, read_beneath
from .gitindex import git_folder, merged_entries, object_id_length

REGULAR = 0o100000
MODE_TYPE = 0o170000
INDEX_MAX = 64 << 20  # bytes of indexes read at one end
HASH_MAX = 64 << 20  # bytes of files hashed at one end, all together
FILE_MAX = 16 << 20  # a larger file is not hashed (named when its stat data was copied)
SECONDS_MAX = 2.0  # of looking at one end
TREES_MAX = 64  # work trees looked at (the top first), as gitindex reads at most 64 indexes
SHOWN = 10


def _object_id(content: bytes, hash_len: int) -> bytes:
    h = hashlib.sha256() if hash_len == 32 else hashlib.sha1()  # noqa: S324 - git's object ids
    h.update(b"blob %d\0" % len(content))
    h.update(content)
    return h.digest()


def stored_as(content: bytes, oid: bytes, hash_len: int) -> bool:
    """Whether `oid` is this content as git stores it: itself, or with its CRLF line ends made LF
    (end-of-line conversion, which can hide no more than carriage returns). Not a Git LFS
    pointer to it: any pointer matches the content it was made from, and a pointer the agent
    stored through a filter of its own shows in `git show` where the content never does
    (review h153); such a file is named, the note saying why."""
    if _object_id(content, hash_len) == oid:
        return True
    return b"\r\n" in content and _object_id(content.replace(b"\r\n", b"\n"), hash_len) == oid


def hidden_changes(ws_fd: int, since: float, tops: list[str]) -> tuple[list[str], str]:
    """(workspace-relative paths of tracked files changed since `since` that git would not
    show as changed, why the look stopped early or "") for the work trees at `tops`."""
    found: list[str] = []
    index_left, hash_left, cut = INDEX_MAX, HASH_MAX, ""
    deadline = time.monotonic() + SECONDS_MAX
    folders = FolderStats(ws_fd)
    try:
        for top in dict.fromkeys(tops):
            gd = git_folder(ws_fd, top)
            got = read_beneath(ws_fd, f"{gd}/index", index_left) if gd is not None else None
            if got is None:
                continue
            data, ist = got
            index_left -= len(data)
            hash_len = object_id_length(ws_fd, gd)
            entries, shared_ctime, shared_read = merged_entries(ws_fd, gd, data, hash_len,
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
                st = folders.lstat(rel)
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
                if not stored_as(content[0], e.oid, hash_len):
                    found.append(rel)
    finally:
        folders.close()
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
            dfd = open_dir_beneath(ws_fd, f"{gd}/refs/replace")
        except OSError:
            dfd = None
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
    # A workspace of thousands of nested repositories (an agent can leave them) must not make
    # every run's end read thousands of indexes: the first TREES_MAX, and a note past them.
    trees = list(dict.fromkeys(tops))
    tops, past = trees[:TREES_MAX], trees[TREES_MAX:TREES_MAX + 1]
    found, cut = hidden_changes(ws_fd, since, tops)
    if past and not cut:
        cut = f"{past[0]} (past {TREES_MAX} repositories; their replace refs were not read either)"
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
                     "(a file checked out through Git LFS, or another clean filter, is named too: "
                     "git keeps its pointer, not its content, so read the file itself)")
    if cut:
        notes.append(f"the look for tracked files git would not show as changed stopped early "
                     f"at {cut}")
    return notes
