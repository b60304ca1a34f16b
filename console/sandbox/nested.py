"""The bounded walk of a workspace for what host tools read below its top: nested git folders
(a `.git`, or a folder git takes for one: HEAD with objects and refs, or with a commondir) and
agents' project config. It never follows links; at a run's start what it finds is protected
(protect.py), at the end what is new is reported (view.py).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from console.policy.protected_names import AGENT_CONFIG_YAML, HOST_TOOL_CONFIG, NESTED_AGENT_CONFIG

from .gitconfig import PROJECT_FILES

# Reported when made at any level, the top included.
MADE_ANYWHERE = AGENT_CONFIG_YAML + HOST_TOOL_CONFIG


@dataclass
class WalkResult:
    """`.git` entries below the top of a workspace, from a walk bounded in entries and time that
    never follows links; `cut` says why it stopped early, `unreadable` what it could not open."""

    found: list[str] = field(default_factory=list)
    # Below the top, entries neither folder, file nor link (sockets, FIFOs, devices): a socket
    # there is a host service the agent would reach by its path (special_files.py).
    special: list[str] = field(default_factory=list)
    cut: str = ""
    unreadable: list[str] = field(default_factory=list)
    # Folders below which the walk did not look: their subfolders at WALK_MAX_DEPTH (pruned),
    # and those it could not open (special_files.py covers them: review h184).
    pruned: list[str] = field(default_factory=list)

    def notes(self, when: str) -> list[str]:
        out = []
        if self.cut:
            out.append(f"the look for nested git repositories {when} stopped early ({self.cut}): "
                       "any beyond that point is neither protected nor reported")  # fmt: skip
        if self.unreadable:
            shown = ", ".join(self.unreadable[:5]) + (" …" if len(self.unreadable) > 5 else "")
            out.append(f"the look for nested git repositories {when} could not open "
                       f"{len(self.unreadable)} folder(s): {shown}")  # fmt: skip
        return out


# Bounds of the look for nested repositories (at a run's start and end).
NESTED_MAX_ENTRIES = 200_000
NESTED_MAX_SECONDS = 2.0
# Python 3.11's os.fwalk and os.walk recurse (a generator frame, and for fwalk an open
# descriptor, per level): a tree 1,000 deep raised RecursionError out of every look through the
# workspace (review s16). Each walk goes no deeper than this, and says so when a folder there
# had folders below it.
WALK_MAX_DEPTH = 256


def too_deep(root: str, dirs: list) -> bool:
    """At WALK_MAX_DEPTH below a walk's top (`root` as os.fwalk gives it from "."): its folders
    are not walked into (dirs emptied); True when there were any."""
    if root.count("/") < WALK_MAX_DEPTH or not dirs:
        return False
    dirs[:] = []
    return True


def walk_below(dir_fd: int, onerror: Callable[[OSError], object] | None = None,
               most: int | None = None,
               special: list[str] | None = None) -> Iterator[tuple[str, list[str], list[str], int]]:
    """os.fwalk(".", dir_fd=dir_fd, follow_symlinks=False), top down, without its two ways out
    of a look's bounds: it lists at most `most` entries of one folder (NESTED_MAX_ENTRIES + 1,
    past every look's budget: os.fwalk listed a folder of millions of files whole, in memory,
    before any budget was checked), and it keeps no frame per level. As os.fwalk: `dirs` holds
    links to folders too (never walked into), a caller empties or trims `dirs` to prune, the
    descriptor is valid until the next step, and onerror gets a folder that cannot be opened.
    `special` collects the paths of entries the folder's listing says are neither folder, file
    nor link (no system call more)."""
    most = NESTED_MAX_ENTRIES + 1 if most is None else most
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(".", flags, dir_fd=dir_fd)
    except OSError as exc:
        if onerror is not None:
            onerror(exc)
        return
    root = "."
    stack: list[tuple[str, int, Iterator[str]]] = []  # open folders, closed by the stack only
    try:
        while True:
            stack.append((root, fd, iter(())))
            dirs, files = _listing(fd, most, onerror, root, special)
            yield root, dirs, files, fd
            stack[-1] = (root, fd, iter(list(dirs)))  # as the caller left them (pruned)
            while stack:
                parent, pfd, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    os.close(pfd)
                    continue
                try:
                    fd = os.open(name, flags, dir_fd=pfd)
                except OSError as exc:  # a link (ELOOP, ENOTDIR) is passed over, as fwalk does
                    if onerror is not None and exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        onerror(OSError(exc.errno, exc.strerror, f"{parent}/{name}"))
                    continue
                root = f"{parent}/{name}"
                break
            else:
                return
    finally:
        for _, pfd, _ in stack:
            os.close(pfd)


def _listing(fd: int, most: int, onerror: Callable[[OSError], object] | None,
             root: str, special: list[str] | None = None) -> tuple[list[str], list[str]]:
    dirs: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    (dirs if entry.is_dir() else files).append(entry.name)
                    if special is not None and not (entry.is_dir() or entry.is_file()
                                                    or entry.is_symlink()):
                        special.append(os.path.normpath(f"{root}/{entry.name}"))
                except OSError:  # gone meanwhile, or a dangling link: as a file
                    files.append(entry.name)
                if len(dirs) + len(files) >= most:
                    break
    except OSError as exc:
        if onerror is not None:
            onerror(OSError(exc.errno, exc.strerror, root))
    return dirs, files


def find_nested_git(root_fd: int) -> WalkResult:
    """Below the top, by descriptor, never through links: every `.git` (folder or file), every
    folder git takes for a git folder without one (HEAD, objects/ and refs/: a bare repository,
    which git opens by default when run inside it), and agents' project config
    (NESTED_AGENT_CONFIG)."""
    import time

    max_entries, max_seconds = NESTED_MAX_ENTRIES, NESTED_MAX_SECONDS
    res = WalkResult()
    deadline = time.monotonic() + max_seconds
    seen = 0

    def failed(err: OSError) -> None:
        res.unreadable.append(rel := os.path.relpath(str(err.filename or "?"), "."))
        if err.errno in (errno.EACCES, errno.EPERM) and rel not in ("?", "."):
            res.pruned.append(rel)  # its owner, the agent, may open it again next run

    for root, dirs, files, _dfd in walk_below(root_fd, onerror=failed, special=res.special):
        seen += len(dirs) + len(files)
        if seen > max_entries:
            res.cut = f"more than {max_entries:,} entries"
            break
        if time.monotonic() > deadline:
            res.cut = f"more than {max_seconds:g} s"
            break
        names = set(dirs) | set(files)
        if root != "." and "HEAD" in files and ({"objects", "refs"} <= names or "commondir" in files):
            res.found.append(os.path.normpath(root))
            dirs[:] = []
            continue
        for name in (".git", *NESTED_AGENT_CONFIG, *MADE_ANYWHERE):
            if name in dirs or name in files:
                if root != "." or name in MADE_ANYWHERE:
                    res.found.append(os.path.normpath(os.path.join(root, name)))
                if name in dirs:
                    dirs.remove(name)
        if too_deep(root, dirs):
            res.cut = res.cut or f"folders more than {WALK_MAX_DEPTH} deep"
            res.pruned.append(os.path.normpath(root))
    return res


def module_git_folders(modules_fd: int, budget) -> list[str]:
    """The submodules' git folders (those holding a HEAD) below a `.git/modules` folder (its
    descriptor), relative to it, top down, never through links, none inside another. `budget`
    (watch.Budget) bounds the look in entries, seconds and depth, and is marked cut when it
    stopped early: os.walk, used before, recursed one frame a level (review s20: a tree 1,100
    deep in a nested repository's modules folder stopped every start in the workspace)."""
    found: list[str] = []
    for root, dirs, files, _dfd in walk_below(modules_fd, most=NESTED_MAX_ENTRIES + 1):
        if not budget.spend(len(dirs) + len(files)):
            break
        if root != "." and "HEAD" in files:
            found.append(os.path.normpath(root))
            dirs[:] = []  # a module's own modules are looked for in its own modules folder
        elif too_deep(root, dirs):
            budget.cut = True
    return found


def made_note(rel: str) -> str:
    """The end-of-run note for a repository or agent configuration the agent made at rel."""
    if os.path.basename(rel) == ".env":
        return (f"the agent changed {rel}: tools on the host load it as they start (docker "
                "compose takes COMPOSE_FILE and its file's variables from it, direnv's dotenv "
                "puts it in your shell, aider takes AIDER_ options: a command it runs); read it "
                "first")
    if "lefthook" in rel:
        return (f"the agent wrote {rel}: the lefthook hook in this repository runs the commands "
                "it lists at your next commit; read it first, or remove it")
    if os.path.basename(rel) in {n for names in PROJECT_FILES.values() for n in names}:
        return (f"the agent changed or made {rel}, which a command your git config runs reads "
                "(an alias or filter running make, npm, just, rake); read it before you use "
                "git here")
    if rel.endswith("/"):  # protect.py watches the folder of a script a git config runs
        return (f"files were added to, removed from or changed in {rel}, beside a script your git config "
                "runs (a filter, a diff driver, an alias): Python, node and sh load files from "
                "a script's own folder; read them before you use git here")
    if os.path.basename(rel) in HOST_TOOL_CONFIG:
        return (f"the agent wrote {rel}: a tool on the host that opens this folder runs what it "
                "names (a dev container's initializeCommand, an agent's MCP servers or plugins, "
                "an editor's project config, a repository's hooks); read it first, or remove it")
    if os.path.basename(rel) in (*NESTED_AGENT_CONFIG, *AGENT_CONFIG_YAML):
        return (f"the agent wrote agent configuration at {rel}: an agent or editor started in "
                f"that folder on the host reads it (hooks, MCP servers, programs to run); read it "
                "first, or remove it")
    return (f"the agent wrote a git repository at {rel}: git on the host runs what its config "
            "names (core.fsmonitor, hooks) as soon as you use git in that folder; read "
            f"{rel}/config and {rel}/hooks first, or remove it")
