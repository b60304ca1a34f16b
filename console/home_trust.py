"""Whether another local user could stand in for the daemon: change a folder on the way to its
home (or re-point a link there) and put an operator.sock of their own in its place, which would
then list what it likes as pending and hear every decision and every key a run is sent (reviews
h164, h169). Checked as OpenSSH's StrictModes checks a user's files, on every folder the system
looks a name up in, before the daemon makes anything there and before a client connects."""

from __future__ import annotations

import errno
import os
import stat

OPEN_HOME_HINT = ("another user who may change a folder on the way could move the daemon's "
                  "folders aside and answer in its place (hearing every decision, and the keys a "
                  "run is sent); the daemon's owner makes each folder there theirs alone (chmod "
                  "go-w), or sets PILOTHOUSE_HOME to a folder only they can write")


def open_to_others(path: str, *, its_owner: bool = False) -> str | None:
    """Why someone other than root, this process's user and (with `its_owner`) the owner of
    `path` itself (the daemon's user, as a teammate's client sees the runtime folder) could
    rename or replace what `path` names, or None. Checked on every folder the system looks a
    name up in to reach it (or the deepest that exists), from `/`, as OpenSSH's StrictModes:
    each owned by one of those, and none writable by its group or by others, unless sticky
    (/tmp) or the group is its owner's alone (a user-private group); the owner of `path` is
    trusted only for folders no one else could have made first (not in /tmp: review h169). A
    folder another user may write lets them move the runtime folder aside and put an
    operator.sock of their own in its place, which then hears the owner's decisions and keys
    (review h164)."""
    folders, links = _looked_up(os.path.abspath(path))
    stats = [os.stat(folder) for folder in folders]
    trusted = {0, os.geteuid()}
    theirs = None
    if its_owner and folders[-1] == os.path.realpath(path) and stats[-1].st_uid not in trusted:
        theirs = stats[-1].st_uid
    return _open_on_the_way(folders, stats, links, trusted, theirs)


def _open_on_the_way(folders: list[str], stats: list[os.stat_result],
                     links: list[tuple[str, int, int]], trusted: set[int],
                     theirs: int | None) -> str | None:
    """open_to_others, given the folders looked in and the links followed (path, owner, how
    many folders had been looked in when it was met); `theirs`: the daemon's user, trusted for
    folders only where no one else could have made them."""
    for link, owner, _ in links:  # whoever owns a link may point it elsewhere
        if owner not in trusted:
            return f"{link} is a link of uid {owner}'s, who could point it elsewhere"
    for i, (folder, st) in enumerate(zip(folders, stats, strict=True)):
        if st.st_uid == theirs and i and stats[i - 1].st_mode & stat.S_ISVTX and (
                stats[i - 1].st_mode & 0o022):
            # In /tmp any user may make the folder first: its owner is not the daemon's, then
            # (review h169: a home under /tmp made by another user before its owner's daemon).
            return (f"{folder} is another user's folder in {folders[i - 1]}, where others may "
                    "make one: it need not be the daemon's (a team's daemon keeps its home where "
                    "only root makes folders, such as /srv)")
        if st.st_uid not in trusted | {theirs}:
            return f"{folder} belongs to uid {st.st_uid}, who could replace what is in it"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX and not _private_group(folder,
                                                                                      st):
            who = "its group and others" if st.st_mode & 0o022 == 0o022 else (
                "its group" if st.st_mode & 0o020 else "others")
            return f"{folder} can be written by {who} (mode {st.st_mode & 0o7777:04o})"
    return None


def links_open_to_others(path: str) -> str | None:
    """open_to_others for the links on the way to `path` and the folders they sit in (up to
    the last link), as this user: PILOTHOUSE_HOME is kept as its real path, which no longer
    shows a link another user could re-point at a home of theirs (review h169)."""
    folders, links = _looked_up(os.path.abspath(path))
    if not links:
        return None
    upto = links[-1][2]
    return _open_on_the_way(folders[:upto], [os.stat(f) for f in folders[:upto]], links,
                            {0, os.geteuid()}, None)


def _looked_up(path: str) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The folders (real paths, from `/`) the system looks a name up in to reach `path`, up to
    the deepest that exists, and the links it follows on the way: (path, owner, how many
    folders were looked in before it). os.path.realpath gives where a path leads, not the
    folder a link sits in, whose writers could swap the link (review h169)."""
    folders, links, todo = ["/"], [], path.split("/")[::-1]
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        here = folders[-1]
        if part == "..":
            folders.append(os.path.dirname(here))
            continue
        step = os.path.join(here, part)
        try:
            st = os.lstat(step)
        except FileNotFoundError:
            break  # what is missing is made by Paths.ensure, closed to others
        if stat.S_ISLNK(st.st_mode):
            if len(links) >= 40:
                raise OSError(errno.ELOOP, "too many levels of links", path)
            links.append((step, st.st_uid, len(folders)))
            target = os.readlink(step)
            todo.extend(target.split("/")[::-1])
            if target.startswith("/"):
                folders.append("/")
            continue
        if not stat.S_ISDIR(st.st_mode):
            break
        folders.append(step)
    return folders, links


def _private_group(folder: str, st: os.stat_result) -> bool:
    """Whether only the folder's owner may write it through its group: not writable by others,
    no ACL (whose mask the group bits then are, review h169), and the group is the owner's
    alone: its primary group, with no other member, nor any other user's primary group (gr_mem
    lists neither; a site where every account's group is `users`, review h169)."""
    if st.st_mode & 0o002 or _has_acl(folder):
        return False
    import grp
    import pwd

    try:
        owner, group = pwd.getpwuid(st.st_uid), grp.getgrgid(st.st_gid)
    except KeyError:
        return False
    return (owner.pw_gid == st.st_gid and set(group.gr_mem) <= {owner.pw_name}
            and all(p.pw_gid != st.st_gid or p.pw_uid == st.st_uid for p in pwd.getpwall()))


def _has_acl(folder: str) -> bool:
    try:
        return bool(os.getxattr(folder, "system.posix_acl_access"))
    except OSError:  # none (ENODATA), or no ACLs on this file system
        return False
