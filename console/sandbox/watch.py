"""What a run's end looks at again, beside new nested repositories (view.py): protected files
that changed although they were read-only inside, and what changed in the nested git folders
watched rather than bound (past protect.NESTED_GIT_MAX).

A read-only bind stops writes through its own name only. A second name (a hard link) the look
at the start could not see (a folder it could not open, a link a sibling run made after the
plan) still reaches the same file, so every read-only protected file is compared with the
start: a ctime at or after it means the file was written, linked or unlinked since (the agent
can set a file's mtime back, never its ctime). The look is bounded like the one for nested
repositories; where it stops early a note says so. So are the places links in read-only folders
lead to when the look for links at the start stopped early (links.py): they were not bound.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .nested import NESTED_MAX_ENTRIES, NESTED_MAX_SECONDS, too_deep, walk_below

# What git changes in a git folder in ordinary use (commit, fetch, merge, rebase, gc) and no
# tool runs: passed over, so committing in a submodule or a watched repository is not news.
GIT_VOLATILE_DIRS = frozenset({"objects", "refs", "logs", "lfs", "rr-cache", "rebase-merge",
                               "rebase-apply", "sequencer"})  # fmt: skip
GIT_VOLATILE_FILES = frozenset({"index", "packed-refs", "COMMIT_EDITMSG", "MERGE_MSG",
                                "MERGE_MODE", "SQUASH_MSG", "gc.log", "gc.pid", "shallow",
                                "sharedindex", "description", "FETCH_HEAD", "ORIG_HEAD",
                                "AUTO_MERGE"})  # fmt: skip
SHOWN_MAX = 10  # changed files named one by one in the notes; the rest are counted
T = TypeVar("T")


def one_part(notes: list[str], what: str, look: Callable[[], T], nothing: T) -> T:
    """One part of a run's end look: what it found, or `nothing` and a note that it could not
    look. A part that fails costs its own notes only: a RecursionError in one lost every note
    of the run's end, a nested repository's fsmonitor and a rebase's exec lines with it
    (review s30)."""
    try:
        return look()
    except Exception as exc:  # noqa: BLE001 - said in the notes; the others still look
        notes.append(f"the run's end could not look at {what} ({type(exc).__name__}: "
                     f"{str(exc)[:120]}): look in the workspace yourself before a tool on the "
                     "host uses it")
        return nothing


@dataclass
class Budget:
    """The entries and seconds one run's end may spend looking; `cut` once it ran out."""

    entries: int = NESTED_MAX_ENTRIES
    deadline: float = 0.0
    cut: bool = False

    def __post_init__(self) -> None:
        self.deadline = self.deadline or time.monotonic() + NESTED_MAX_SECONDS

    def spend(self, n: int) -> bool:
        self.entries -= n
        if self.entries < 0 or time.monotonic() > self.deadline:
            self.cut = True
        return not self.cut


def _volatile(name: str) -> bool:
    return name in GIT_VOLATILE_FILES or name.endswith((".lock", "_HEAD")) or name == "HEAD"


def changed_below(dir_fd: int, since: float, budget: Budget, git: bool = False) -> list[str]:
    """Regular files and links below a folder (a descriptor, O_PATH or not) with a ctime at or after
    `since`, relative to it, never through links. In a git folder (`git`, or any folder below
    one holding a HEAD: a submodule's in .git/modules) what git changes in ordinary use is
    passed over, but for the object alternates."""
    out: list[str] = []
    gits: list[str] = ["."] if git else []
    for root, dirs, files, rfd in walk_below(dir_fd):
        if not budget.spend(len(dirs) + len(files)):
            break
        if "HEAD" in files and ({"objects", "refs"} <= set(dirs) or "commondir" in files):
            gits.append(root)
            for alt in ("objects/info/alternates", "objects/info/http-alternates"):
                with contextlib.suppress(OSError):
                    if os.stat(alt, dir_fd=rfd, follow_symlinks=False).st_ctime >= since:
                        out.append(os.path.normpath(os.path.join(root, alt)))
        in_git = any(root == g or root.startswith(g + "/") for g in gits)
        if in_git:
            dirs[:] = [d for d in dirs if d not in GIT_VOLATILE_DIRS]
        if too_deep(root, dirs):
            budget.cut = True
        for name in files:
            if in_git and _volatile(name):
                continue
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=rfd, follow_symlinks=False)
                # A link too: one made below a watched folder can stand for a module (s32).
                if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and st.st_ctime >= since:
                    out.append(os.path.normpath(os.path.join(root, name)))
    return out


def changed_read_only(binds: list, since: float, skip: set[str],
                      budget: Budget) -> list[str]:  # fmt: skip
    """Protected paths bound read-only (protect.Bind, descriptors still open) whose file, or a
    file below whose folder, changed since the start; `skip`: paths reported otherwise."""
    out: list[str] = []
    masks = {b.rel for b in binds if b.fd is None}
    for b in binds:
        if b.kind != "ro" or b.fd is None or b.rel in skip or budget.cut:
            continue
        with contextlib.suppress(OSError):
            st = os.fstat(b.fd)
            if stat.S_ISREG(st.st_mode):
                if st.st_ctime >= since:
                    out.append(b.rel)
            elif stat.S_ISDIR(st.st_mode):
                rels = (os.path.normpath(os.path.join(b.rel, r))
                        for r in changed_below(b.fd, since, budget))  # fmt: skip
                out += [r for r in rels if r not in masks and r not in skip and r not in out]
    return out


def changed_behind_links(ws_fd: int, folders: list[str], since: float,
                         budget: Budget) -> list[str]:  # fmt: skip
    """Where the links in read-only folders the look at the start did not get through
    (protect.Protection.link_look.cut) lead inside the workspace, when a file there, or below a
    folder there, changed since the start. Those places were not read-only: a change is news."""
    from .fsview import open_beneath
    from .links import link_target

    out: list[str] = []
    targets: dict[tuple[str, str], str | None] = {}  # (folder, link text) -> where it leads
    for rel in dict.fromkeys(folders):
        try:
            fd = open_beneath(ws_fd, rel)
        except OSError:
            continue
        try:
            for root, dirs, files, rfd in walk_below(fd):
                if not budget.spend(len(dirs) + len(files)):
                    break
                names = dirs + files  # a link to a folder is among dirs: read before a cut
                if too_deep(root, dirs):
                    budget.cut = True
                folder = os.path.normpath(os.path.join(rel, root))
                for name in names:
                    with contextlib.suppress(OSError):
                        key = (folder, os.readlink(name, dir_fd=rfd))  # not a link: OSError
                        if key not in targets:
                            targets[key] = link_target(ws_fd, os.path.join(folder, name))
        finally:
            os.close(fd)
    for target in sorted({t for t in targets.values() if t is not None}):
        if budget.cut:
            break
        with contextlib.suppress(OSError):
            tfd = open_beneath(ws_fd, target)
            try:
                st = os.fstat(tfd)
                if stat.S_ISDIR(st.st_mode):
                    out += [os.path.normpath(os.path.join(target, r))
                            for r in changed_below(tfd, since, budget)]  # fmt: skip
                elif st.st_ctime >= since:
                    out.append(target)
            finally:
                os.close(tfd)
    return out


def _listed(changed: list[str], one: str, more: str) -> list[str]:
    """A note per changed path (`one` with {rel}) up to SHOWN_MAX, then one counting the rest."""
    notes = [one.format(rel=rel) for rel in changed[:SHOWN_MAX]]
    if len(changed) > SHOWN_MAX:
        notes.append(more.format(n=len(changed) - SHOWN_MAX))
    return notes


def read_only_notes(changed: list[str], budget: Budget) -> list[str]:
    notes = _listed(changed, "{rel} was changed during the run although it is read-only in the "
                    "sandbox: through another name (a hard link) in the workspace, or from "
                    "outside the sandbox; read it before a tool on the host does",
                    "{n} more read-only protected files were changed during the run")
    if budget.cut:
        notes.append("the look at the end of the run for protected files changed through "
                     "another name stopped early (too many files, or folders too deep): not "
                     "every one was looked at")
    return notes


def behind_links_notes(changed: list[str]) -> list[str]:
    return _listed(changed, "{rel} was changed during the run: a link in a read-only folder "
                   "leads to it, and the look at the start stopped before that link (too many "
                   "entries), so it was not read-only; read it before a tool on the host does",
                   "{n} more files behind links in read-only folders were changed during the run")


def git_folder_changed(ws_fd: int, rel: str, since: float, budget: Budget) -> bool:
    """A watched git folder (not bound) in which something a tool runs or reads changed since
    the start: a hook rewritten in place, a submodule's config, info/attributes."""
    from .fsview import open_beneath

    try:
        fd = open_beneath(ws_fd, rel)
    except OSError:
        return False
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            return False
        return bool(changed_below(fd, since, budget, git=True))
    finally:
        os.close(fd)


# Todo files whose `exec` lines git runs at `git rebase --continue`. The workspace's .git is the
# agent's to write but for its config and hooks, and git's own rebase keeps its state there: a
# todo written or changed in the run runs its commands on the host when the person carries on
# (review s20). Named at the run's end, since a rebase the agent runs itself needs them writable.
# A rebase's or a cherry-pick's state in a git folder, which git on the host carries on: its
# todo file, and where it keeps the merge strategy it runs as `git-merge-<strategy>`.
GIT_STATES = (("rebase-merge", "git-rebase-todo", "strategy", "rebase"),
              ("sequencer", "todo", "opts", "cherry-pick"))
TODO_READ_MAX = 64 * 1024
TODO_NOTES_MAX = 10  # git folders named one by one at a run's end; the rest are counted
SHOWN_CHARS = 200  # of each command quoted
# Strategies git has built in; any other name is a program git looks for, and one with a slash
# is a path from the work tree (`/../evil.sh` and a folder `git-merge-` ran ./evil.sh).
BUILTIN_STRATEGIES = frozenset({"ort", "recursive", "resolve", "octopus", "ours", "subtree"})


def left_todo_notes(ws_fd: int, since: float, git_dirs: list[str]) -> list[str]:
    """A note for each rebase or cherry-pick changed since the start in one of `git_dirs`
    (the workspace's git folder, the one a `.git` file names, nested repositories'), when
    git on the host would run something carrying it on: a todo's exec lines, a todo longer
    than the part read, a strategy that is not built in (review s30: the same todo in a
    separate or nested git folder, after 64 KiB of comments, or a strategy, went unnamed)."""
    notes: list[str] = []
    more = 0
    for gd in dict.fromkeys(git_dirs):
        for state, todo, holds_strategy, command in GIT_STATES:
            found = _todo_commands(ws_fd, f"{gd}/{state}/{todo}", since)
            strategy = _strategy(ws_fd, f"{gd}/{state}/{holds_strategy}", since)
            if strategy is not None:
                found.append(f"a merge strategy git runs as a program, {strategy!r}")
            if found and len(notes) >= TODO_NOTES_MAX:  # bounded: one run made 400 of them,
                more += 1  # 50 MB of notes in one record, past what a client reads (review s30)
            elif found:
                notes.append(f"the run left {gd[:200]}/{state}/{todo}, whose commands git runs "
                             f"on your machine at `git {command} --continue`: "
                             f"{'; '.join(found)}; read it first, or run `git {command} --abort`")
    if more:
        notes.append(f"{more} more rebases or cherry-picks the run left in git folders of the "
                     "workspace, each with commands git runs on your machine when it carries "
                     "them on: look for rebase-merge and sequencer folders before you do")
    return notes


def _todo_commands(ws_fd: int, rel: str, since: float) -> list[str]:
    from .fsview import read_beneath

    got = read_beneath(ws_fd, rel, TODO_READ_MAX + 1)  # no link on the way, a regular file
    if got is None or got[1].st_ctime < since:
        return []
    text = got[0][:TODO_READ_MAX].decode("utf-8", "replace")
    runs = [line.strip() for line in text.splitlines()
            if line.split(maxsplit=1)[:1] in (["exec"], ["x"])]
    found = ["; ".join(repr(r[:SHOWN_CHARS]) + ("..." if len(r) > SHOWN_CHARS else "")
                       for r in runs[:3]) + (f"; {len(runs) - 3} more" if len(runs) > 3
                                             else "")] if runs else []
    if len(got[0]) > TODO_READ_MAX:
        found.append(f"more than the first {TODO_READ_MAX >> 10} KiB read here, which may hold "
                     "exec lines too")
    return found


def _strategy(ws_fd: int, rel: str, since: float) -> str | None:
    """The merge strategy a rebase's `strategy` or a cherry-pick's `opts` names (the last
    value, as git takes it, read by git's own config parser), when it was written since the
    start and is not one git has built in; a file longer than the part read is named as such
    (review s30: a second `strategy =`, one on the section's line, or one after 4 KiB of
    comments was passed over)."""
    from .fsview import read_beneath
    from .gitconfig import config_entries

    got = read_beneath(ws_fd, rel, TODO_READ_MAX + 1)
    if got is None or got[1].st_ctime < since:
        return None
    if len(got[0]) > TODO_READ_MAX:
        return f"(in a file longer than the first {TODO_READ_MAX >> 10} KiB read here)"
    text = got[0].decode("utf-8", "replace")
    if rel.endswith("/opts"):  # a config file: `strategy = NAME` under [options]
        values = [v for k, v in config_entries(text) if k == "options.strategy"]
        text = values[-1] if values else ""
    name = text.strip()
    return None if not name or name in BUILTIN_STRATEGIES else name[:SHOWN_CHARS]
