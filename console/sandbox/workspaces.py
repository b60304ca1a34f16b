"""Which folders a person may start a run in. A run gets the daemon's power over its workspace
(a root daemon's bind mounts reach everything), so the check is made for the person who asked,
identified by SO_PEERCRED, not for the daemon.

Refused, with the reason: `/`; system trees (/etc, /usr, /var but /var/tmp/*, /boot, /proc,
/sys, /dev, /run, /bin, /sbin, /lib*, /snap); a home folder itself and /home (each holds ~/.ssh
and the person's keys); other users' homes; Pilothouse's own state folders and any folder that
holds them; and any folder the person cannot reach and write themselves (team mode cannot be
used to read what an approver could not read).

The path itself is resolved as the person would resolve it (`find_workspace`): a teammate's
answer never depends on what lies in folders closed to them.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from .acl import acl_allows, read_acl

SYSTEM_TREES = ("/etc", "/usr", "/var", "/boot", "/proc", "/sys", "/dev", "/run", "/bin",
                "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/snap")  # fmt: skip
ALLOWED_UNDER_SYSTEM = ("/var/tmp",)
SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
LINKS_MAX = 40  # links followed in one path before the kernel answers ELOOP
PATH_MAX = 4096  # bytes of a path the kernel takes (ENAMETOOLONG past it)


@dataclass(frozen=True)
class Refusal:
    reason: str
    hint: str


def _under(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


def _homes() -> dict[Path, int]:
    """Each account's home folder and its owner, read afresh for every check (a user added a
    minute ago counts). Plain string work: this runs at every run's start, for every account."""
    tops = tuple(t + "/" for t in SYSTEM_TREES)
    homes: dict[str, int] = {}
    for p in pwd.getpwall():
        home = os.path.normpath(p.pw_dir) if p.pw_dir.startswith("/") else ""
        if home in ("/", "", "/nonexistent"):
            continue
        if home in SYSTEM_TREES or (home + "/").startswith(tops):
            continue  # service accounts (/var/lib/x, /usr/sbin): covered by the system trees
        homes.setdefault(home, p.pw_uid)
    return {Path(home): uid for home, uid in homes.items()}


def _groups(uid: int, gid: int) -> set[int]:
    try:
        return set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        return {gid}


def _allows(where: str | int, st: os.stat_result, uid: int, groups: set[int], bits: int) -> bool:
    """Whether `uid` (with `groups`) has `bits` (4 read, 2 write, 1 search) on the file at
    `where` (a path, or a descriptor of it), as the kernel decides: its POSIX ACL when it has
    one, else its mode bits. Root passes."""
    if uid == 0:
        return True
    acl = read_acl(where)
    if acl is not None:
        return acl_allows(acl, st, uid, groups, bits)
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        return mode & (bits << 6) == bits << 6
    if st.st_gid in groups:
        return mode & (bits << 3) == bits << 3
    return mode & bits == bits


def _may_search(where: str, st: os.stat_result, uid: int, groups: set[int]) -> bool:
    return stat.S_ISDIR(st.st_mode) and _allows(where, st, uid, groups, 1)


def _may_follow(folder: os.stat_result, link: os.stat_result, uid: int) -> bool:
    """fs.protected_symlinks: in a sticky world-writable folder (/tmp) the kernel follows a link
    only for its owner or the folder's."""
    try:
        with open("/proc/sys/fs/protected_symlinks") as f:
            on = f.read().strip() == "1"
    except OSError:
        on = True
    sticky_open = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    return not (on and sticky_open and uid != 0 and link.st_uid not in (uid, folder.st_uid))


def _resolve_as(path: str, uid: int, groups: set[int]) -> Path | None:
    """`path` (absolute) resolved part by part as the kernel resolves it for `uid`: nothing in
    a folder is looked at before that folder is found searchable for them, and a link is
    followed only where they could follow it. None: a part is missing, a folder on the way is
    closed to them, the links loop, the path is longer than the kernel takes (PATH_MAX), or
    it reaches into /proc, whose links the kernel answers per process (/proc/self is the
    daemon here) and guards by ptrace rules this walk does not apply."""
    if not path.startswith("/") or len(os.fsencode(path)) >= PATH_MAX:
        return None
    todo, here, links = path.split("/")[::-1], "/", 0  # todo: a stack, the next part last
    while todo:
        name = todo.pop()
        if name in ("", "."):
            continue
        try:
            folder = os.stat(here)
            if not _may_search(here, folder, uid, groups):
                return None
            if name == "..":
                here = os.path.dirname(here)
                continue
            step = os.path.join(here, name)
            if step == "/proc":
                return None
            st = os.lstat(step)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > LINKS_MAX or not _may_follow(folder, st, uid):
                    return None
                target = os.readlink(step)
                todo.extend(target.split("/")[::-1])
                here = "/" if target.startswith("/") else here
                continue
        except OSError:
            return None
        here = step
    return Path(here)


def find_workspace(asked: Path, uid: int, gid: int) -> Path | Refusal:
    """The folder `asked` (absolute, as the requester wrote it) names, resolved for `uid`, or
    why not. The daemon's own user and root get the kernel's own resolve and a precise answer.
    Anyone else (a teammate) gets `_resolve_as`, and one answer whether the path is missing or
    passes through a folder closed to them: the daemon's rights must not answer for them."""
    if len(os.fsencode(str(asked))) >= PATH_MAX:
        return Refusal(f"workspace path of {len(os.fsencode(str(asked)))} bytes: the kernel takes "
                       f"at most {PATH_MAX - 1}", "pass a shorter path to the folder")
    if uid in (0, os.getuid()):
        path = asked.resolve()
    else:
        found = _resolve_as(str(asked), uid, _groups(uid, gid))
        if found is None:
            return Refusal(
                f"workspace {asked} was not found, or a folder on the way is closed to you",
                "check the path as yourself (ls); a workspace must be a folder you can reach "
                "and write",
            )  # fmt: skip
        path = found
    if not path.is_dir():  # a teammate sees this themselves: every folder on the way is theirs
        return Refusal(f"workspace {path} is not a folder", "create it, or pass --workspace DIR")
    return path


def check_workspace(path: Path, fd: int, uid: int, gid: int,
                    own_dirs: list[Path]) -> Refusal | None:  # fmt: skip
    """None when `uid` may use `path` (resolved, and opened without links as `fd`) as a
    workspace, else why not. Ownership and mode are read from the descriptor."""
    hint = "point --workspace at a project folder of your own"
    if path == Path("/"):
        return Refusal(f"refusing {path} as a workspace: it is the whole system", hint)
    for top in SYSTEM_TREES:
        if _under(path, Path(top)) and not any(
            path.is_relative_to(ok) and path != Path(ok) for ok in ALLOWED_UNDER_SYSTEM
        ):
            return Refusal(f"refusing {path} as a workspace: it is part of the system ({top})",
                           hint)  # fmt: skip
    if str(path) in SHARED_SCRATCH:
        return Refusal(f"refusing {path} as a workspace: every user's scratch files are there",
                       "make a folder below it, or use a project folder")  # fmt: skip
    for own in own_dirs:
        own = own.resolve()
        if _under(own, path) or _under(path, own):
            return Refusal(
                f"refusing {path} as a workspace: it holds Pilothouse's own state ({own}); an "
                "agent there could reach the daemon's sockets and history", hint,
            )  # fmt: skip
    if path == Path("/home"):
        return Refusal(f"refusing {path} as a workspace: it holds every user's home", hint)
    for home, owner in _homes().items():
        if path == home:
            return Refusal(
                f"refusing {path} as a workspace: it is a whole home folder (keys, shell "
                "history, credentials)", "use a project folder inside it",
            )  # fmt: skip
        if _under(path, home) and owner != uid:
            return Refusal(f"refusing {path} as a workspace: it is in another user's home "
                           f"({home})", hint)  # fmt: skip
    groups = _groups(uid, gid)
    for parent in reversed(path.parents):  # again, on the folder as opened (find_workspace)
        if not _may_search(str(parent), os.stat(parent), uid, groups):
            return Refusal(
                f"refusing {path} as a workspace: you cannot reach it ({parent} is closed to "
                "you), and a run must not open to you what you could not open yourself", hint,
            )  # fmt: skip
    st = os.fstat(fd)
    if st.st_uid != uid and not _allows(fd, st, uid, groups, 3):
        return Refusal(
            f"refusing {path} as a workspace: it belongs to someone else and you cannot write "
            "it", "use a folder you own or can write",
        )  # fmt: skip
    return None


# Files a profile may carry into the sandbox must not be keys: these places are refused even
# when named ("carry" is for configuration such as a registry mirror, never credentials).
SECRET_PLACES = (".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".config/gcloud",
                 ".netrc", ".git-credentials", ".pypirc", ".local/share/keyrings")  # fmt: skip
CARRY_MAX_BYTES = 1 << 20


def carry_files(entries: list[tuple[str, str]], requester: tuple[int, int],
                reader: tuple[int, int], workspace: Path,
                into: Path) -> tuple[list[tuple[Path, str]], list[str]]:  # fmt: skip
    """Copy a profile's `carry` files into `into` (a run folder's). Blocking: call in a thread.

    Returns ([(copy, path inside)], notes). `~` is the requester's home. Each file is read by a
    child process running as `reader` (the agent's identity: the uid that will see the copy),
    so the kernel decides what may be read, links and races included, and a FIFO or a slow
    device cannot hold the daemon: the child is killed after a few seconds. Files in the
    workspace, files over 1 MiB and places that hold keys are refused. Every file not taken is a
    note saying why. The sandbox gets the copy, read-only.
    """
    try:
        home = Path(pwd.getpwuid(requester[0]).pw_dir)
    except KeyError:
        home = None
    taken: list[tuple[Path, str]] = []
    notes: list[str] = []
    for n, (src, inside) in enumerate(entries):
        if src.startswith("~/"):
            if home is None:
                notes.append(f"carry {src}: you have no home folder here; not carried")
                continue
            src_path = home / src[2:]
        else:
            src_path = Path(src)
        real = Path(os.path.realpath(src_path))
        why = ""
        if home is not None and any(_under(real, home / p) for p in SECRET_PLACES):
            why = "it is where keys are kept; carry configuration, never credentials"
        elif _under(real, workspace.resolve()):
            why = "it is in the workspace, which the agent can change"
        data = b""
        if not why:
            data, why = _read_as(src_path, reader)
        if why:
            notes.append(f"carry {src}: {why}; not carried")
            continue
        copy = into / f"{n}-{real.name}"
        into.mkdir(mode=0o755, parents=True, exist_ok=True)
        copy.write_bytes(data)
        os.chmod(copy, 0o444)
        taken.append((copy, inside))
    return taken, notes


def _read_as(path: Path, who: tuple[int, int], timeout: float = 5.0) -> tuple[bytes, str]:
    """(content, "") or (b"", why not): `head` run as `who`, no supplementary groups."""
    import subprocess

    switch: dict[str, object] = {}
    if os.geteuid() == 0 and who[0] != 0:
        switch = {"user": who[0], "group": who[1], "extra_groups": []}
    try:
        r = subprocess.run(
            ["head", "-c", str(CARRY_MAX_BYTES + 1), "--", str(path)], env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd="/",
            **switch,  # type: ignore[arg-type]
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return b"", "it did not finish reading within a few seconds (not a plain file?)"
    except OSError as exc:
        return b"", f"it could not be read ({exc.strerror})"
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().rsplit(": ", 1)[-1] or "unreadable"
        return b"", f"the agent's identity (uid {who[0]}) cannot read it ({err})"
    if len(r.stdout) > CARRY_MAX_BYTES:
        return b"", "it is larger than 1 MiB"
    return r.stdout, ""
