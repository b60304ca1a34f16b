"""Which folders a person may start a run in. A run gets the daemon's power over its workspace
(a root daemon's bind mounts reach everything), so the check is made for the person who asked,
identified by SO_PEERCRED, not for the daemon.

Refused, with the reason: `/`; system trees (/etc, /usr, /var but /var/tmp/*, /boot, /proc,
/sys, /dev, /run, /bin, /sbin, /lib*, /snap); a home folder itself and /home (each holds ~/.ssh
and the person's keys); other users' homes; Pilothouse's own state folders and any folder that
holds them; and any folder the person cannot reach and write themselves (team mode cannot be
used to read what an approver could not read).
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

SYSTEM_TREES = ("/etc", "/usr", "/var", "/boot", "/proc", "/sys", "/dev", "/run", "/bin",
                "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/snap")  # fmt: skip
ALLOWED_UNDER_SYSTEM = ("/var/tmp",)
SHARED_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True)
class Refusal:
    reason: str
    hint: str


def _under(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


def _homes() -> dict[Path, int]:
    homes: dict[Path, int] = {}
    for p in pwd.getpwall():
        home = Path(p.pw_dir)
        if p.pw_dir in ("/", "", "/nonexistent") or not home.is_absolute():
            continue
        if any(_under(home, Path(t)) for t in SYSTEM_TREES):
            continue  # service accounts (/var/lib/x, /usr/sbin): covered by the system trees
        homes.setdefault(home, p.pw_uid)
    return homes


def _groups(uid: int, gid: int) -> set[int]:
    try:
        return set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        return {gid}


def _allows(st: os.stat_result, uid: int, groups: set[int], bits: int) -> bool:
    """Mode-bit check for another uid (bits: 4 read, 2 write, 1 search). Root passes."""
    if uid == 0:
        return True
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        return mode & (bits << 6) == bits << 6
    if st.st_gid in groups:
        return mode & (bits << 3) == bits << 3
    return mode & bits == bits


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
    for parent in reversed(path.parents):
        if not _allows(os.stat(parent), uid, groups, 1):
            return Refusal(
                f"refusing {path} as a workspace: you cannot reach it ({parent} is closed to "
                "you), and a run must not open to you what you could not open yourself", hint,
            )  # fmt: skip
    st = os.fstat(fd)
    if st.st_uid != uid and not _allows(st, uid, groups, 3):
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


def carry_files(entries: list[tuple[str, str]], uid: int, gid: int, workspace: Path,
                into: Path) -> tuple[list[tuple[Path, str]], list[str]]:  # fmt: skip
    """Copy a profile's `carry` files into `into` (a run folder's) for the requester.

    Returns ([(copy, path inside)], notes). `~` is the requester's home. A file is taken only
    when the requester could read it themselves, it is a regular file of at most 1 MiB, and it
    is neither in the workspace (the agent's to change) nor in a place that holds keys; every
    file not taken is a note saying why. The sandbox gets the copy, read-only.
    """
    try:
        home = Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        home = None
    groups = _groups(uid, gid)
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
        elif not real.is_file():
            why = "no such file"
        elif not all(_allows(os.stat(p), uid, groups, 1) for p in real.parents) or not _allows(
            os.stat(real), uid, groups, 4
        ):
            why = "you cannot read it yourself"
        elif real.stat().st_size > CARRY_MAX_BYTES:
            why = "it is larger than 1 MiB"
        if why:
            notes.append(f"carry {src}: {why}; not carried")
            continue
        copy = into / f"{n}-{real.name}"
        with open(real, "rb") as fh:
            data = fh.read(CARRY_MAX_BYTES + 1)
        into.mkdir(mode=0o755, parents=True, exist_ok=True)
        copy.write_bytes(data[:CARRY_MAX_BYTES])
        os.chmod(copy, 0o444)
        taken.append((copy, inside))
    return taken, notes
