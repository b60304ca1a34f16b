"""The workspace as one run's sandbox sees it: protected paths bound without following links.

`WorkspaceView.open(spec, identity)` plans the protection (protect.py), makes the mountpoints
that masks of absent paths need, and, with a root daemon, stages the whole view under the run
folder (`.view`): a clone of the workspace (id-mapped when root owns it) with every protected
path mounted read-only or masked on top, links covered rather than followed. Both backends then
bind that one folder. A daemon run by a person cannot mount on the host: bubblewrap gets the
opened descriptors (`--ro-bind-fd`), Docker the checked paths, and a protected path that is a
link is left as a link (it resolves inside the sandbox's own view, where no host file is) and
not mounted over; the notes say which.

`close()` (at the run's end) detaches the staged view and removes mountpoints no live run uses.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import fsview, privileged_files, special_files
from .acl import traverse_only_for
from .base import SandboxSpec
from .ci_look import Entry, ci_entries
from .gitindex import git_folder
from .identity import AgentIdentity, agent_identity
from .nested import WalkResult, find_nested_git
from .protect import MASK_CONTENT, Bind, Protection, plan_protection, protect_files
from .watch import Budget, git_folder_changed

VIEW_DIR = ".view"
# Root daemon: where the agent's uid finds what bubblewrap binds (bwrap resolves every source by
# path as that uid, and the run folder sits below the daemon's 0700 state folder). One folder
# per run, 0700 and owned by the agent's uid, below a root-owned 0711 base: nobody else can
# list or enter it.
HANDOFF_BASE = Path("/run/pilothouse-handoff")
# In the run folder: the name of its hand-off folder, so a later start removes only its own
# (another daemon's run may have the same id: view_leftovers.py).
HANDOFF_RECORD = ".handoff"

# Mountpoints this process made in workspaces. Several runs may share a workspace: deleting a
# mountpoint detaches the mounts on it in every namespace, so they go only with the last view
# of their workspace (_leave), never while another run may rely on one.
_MADE: set[tuple[int, int, str]] = set()
# Open views per workspace (device, inode): a person's daemon must not start a Docker run
# beside another live run (docker.py says why), and the last one removes the mountpoints.
_LIVE: dict[tuple[int, int], int] = {}
# Views open and close in worker threads (a run's start and end): the counts above and the
# making and removing of mountpoints change under this lock, one view at a time.
_BOOKS = threading.RLock()


_OPEN: set[int] = set()  # the workspace descriptors of live views (live_views walks up them)


def live_views(ws_fd: int) -> int:
    """Live views of this workspace, of a folder above it, or of one inside it: an agent writes
    every folder below its workspace, so a run in a folder above can swap this one's paths
    (review h141: a live run in the folder above was not counted)."""
    with _BOOKS:
        mine, above = _ws_key(ws_fd), _above(ws_fd)
        return sum(1 for fd in _OPEN if _ws_key(fd) == mine or _ws_key(fd) in above
                   or mine in _above(fd))  # fmt: skip


def _above(fd: int) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of each folder above the one open as fd, walked by `..` up to /."""
    out: set[tuple[int, int]] = set()
    cur = os.dup(fd)
    try:
        for _ in range(4096):
            up = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur)
            os.close(cur)
            cur = up
            if _ws_key(cur) in out:
                break
            out.add(_ws_key(cur))
    finally:
        os.close(cur)
    return out


def view_error(e: OSError, identity: AgentIdentity) -> Exception:
    """A SandboxError a person can act on, for a view that could not be made."""
    import errno

    from .base import SandboxError

    if e.errno == errno.ENOSYS:
        return SandboxError(
            f"cannot prepare the workspace view: {e}",
            "a root daemon needs Linux 5.12 or newer (open_tree, move_mount, mount_setattr); "
            "upgrade the kernel, or run the daemon as an ordinary user",
        )
    if identity.idmap and e.errno in (errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP):
        return SandboxError(
            f"cannot show the root-owned workspace to the unprivileged agent: {e}",
            "this file system may not support id-mapped mounts; give the workspace to a user "
            "(chown -R USER DIR: the agent then runs as that user), or run the daemon as an "
            "ordinary user",
        )
    return SandboxError(f"cannot prepare the workspace view: {e}", "pilothouse doctor")


def _parent_dir(root_fd: int, parent: str) -> int | None:
    """A real (not O_PATH) fd of a folder beneath root_fd, reached without links, for *at()
    calls that create or remove an entry in it; None when it cannot be reached so."""
    try:
        pfd = fsview.open_beneath(root_fd, parent) if parent else os.dup(root_fd)
    except OSError:
        return None
    try:
        return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    finally:
        os.close(pfd)


async def open_view(spec: SandboxSpec) -> tuple[AgentIdentity, WorkspaceView]:
    """Who the agent runs as, and its workspace view, for one spec (both backends)."""
    import asyncio

    # The descriptor runs.py opened when it checked the workspace (0 is a valid one).
    ws = spec.workspace_fd if spec.workspace_fd is not None else spec.workspace
    identity = agent_identity(ws, spec.requester)
    # Copied here, not in the thread: a start cut short closes runs.py's descriptor at once,
    # and its number, soon reused, would name another folder by the time the thread ran.
    fd = os.dup(spec.workspace_fd) if spec.workspace_fd is not None else None
    opening = asyncio.ensure_future(asyncio.to_thread(
        WorkspaceView.open, spec.workspace, spec.run_dir, identity, fd, take=True))
    try:
        view = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # The thread goes on and mounts the view: a start cut short closes it once made.
        opening.add_done_callback(lambda f: f.cancelled() or f.exception() is not None
                                  or f.result().close())
        raise
    except OSError as e:
        raise view_error(e, identity) from e
    return identity, view


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    return parent, name


@dataclass
class WorkspaceView:
    workspace: Path
    run_dir: Path
    identity: AgentIdentity
    protection: Protection
    ws_fd: int = -1  # the workspace, opened without links when it was checked; kept till close
    staged: Path | None = None  # root daemon: the folder both backends bind at /workspace
    handoff: Path | None = None  # root daemon: the run folder, reachable by the agent's uid
    opened_at: float = 0.0
    ci_at_start: frozenset[Entry] | None = None  # CI files and folders there (ci_look.py)

    @classmethod
    def open(cls, workspace: Path, run_dir: Path, identity: AgentIdentity,
             ws_fd: int | None = None, *, take: bool = False) -> WorkspaceView:  # fmt: skip
        """ws_fd: the descriptor runs.py opened when it checked the workspace (duplicated here,
        the caller keeping its own; with `take`, the view owns ws_fd itself, closed on every
        way out). Without one the path is opened now, refusing links."""
        if ws_fd is None:
            fd = fsview.open_dir_nofollow(workspace)
        else:
            fd = ws_fd if take else os.dup(ws_fd)
        # Counted live before the plan reads the workspace: a sibling run ending meanwhile then
        # leaves the mask mountpoints this plan may take for real files (close() says when
        # they go).
        with _BOOKS:
            _LIVE[_ws_key(fd)] = _LIVE.get(_ws_key(fd), 0) + 1
            _OPEN.add(fd)
        try:
            plan = plan_protection(fd)
        except BaseException:
            _leave(fd)
            raise
        if os.geteuid() != 0 and plan.links:
            # A person's daemon cannot mount over a link (bwrap and the engine follow it), and
            # the link sits in a folder the agent may write: it could replace the link with a
            # file of its own that host tools then read. Refused, saying which, rather than run.
            plan.close()
            _leave(fd)
            from .base import SandboxError

            raise SandboxError(
                "protected path(s) in the workspace are symbolic links: "
                + ", ".join(sorted(plan.links))
                + "; a daemon run as a person cannot cover a link, and the agent could replace it",
                "replace each link with the file or folder it points to (or run the daemon as "
                "root, which masks them)",
            )
        view = cls(workspace, run_dir, identity, plan, ws_fd=fd, opened_at=time.time())
        try:
            # (a CI file removed in the run is one there now and gone at its end)
            view.ci_at_start = ci_entries(fd, view.work_trees([]))
            walk = plan.walk or WalkResult()  # special_files adds to its pruned: one list
            special = special_files.special_files(fd, walk.special, walk.pruned)
            protect_files(plan, fd, special, mask="mask-file")
            plan.notes.extend(special_files.note(special))
            unlooked = special_files.unlooked(walk.pruned)
            protect_files(plan, fd, unlooked, mask="mask-dir")
            plan.notes.extend(special_files.unlooked_note(unlooked, walk.cut))
            if identity.idmap:  # root's files are the agent's inside (privileged_files.py)
                found = privileged_files.find_privileged(fd)
                if refusal := privileged_files.too_many_linked_out(found):
                    raise refusal
                protect_files(plan, fd, found.set_id + found.linked_out)
                plan.notes.extend(privileged_files.notes(found))
            with _BOOKS:
                view._make_mountpoints()
            if os.geteuid() == 0:
                view._stage()
                view._hand_off()
        except BaseException:
            view.close()
            raise
        return view

    @property
    def key(self) -> tuple[int, int]:
        return _ws_key(self.ws_fd)

    @property
    def notes(self) -> list[str]:
        out = []
        for rel, target in self.protection.links.items():
            if self.staged is not None:
                text = (f"{rel} is a symbolic link or lies under one: masked (the agent sees an "
                        "empty read-only file); the link was not followed")  # fmt: skip
            else:
                text = (f"{rel} is a symbolic link or lies under one: not followed and not "
                        "mounted over (it resolves inside the sandbox only)")  # fmt: skip
            if target is not None:
                text += f"; what it leads to, {target}, is read-only too"
            out.append(text)
        out.extend(self.protection.notes)
        if self.protection.walk is not None:
            out.extend(self.protection.walk.notes("at the start of the run"))
        return out

    def binds(self) -> list[Bind]:
        """What a backend binds itself (no staging): links are left alone."""
        return [b for b in self.protection.ordered() if b.rel not in self.protection.links]

    # --- mountpoints for masks of absent paths ---------------------------------------------------

    def _make_mountpoints(self) -> None:
        st = os.fstat(self.ws_fd)
        for b in self.protection.ordered():
            key = (st.st_dev, st.st_ino, b.rel)
            if b.fd is None and b.rel not in self.protection.links:
                self._make_one(self.ws_fd, b, key)

    @staticmethod
    def _make_one(root_fd: int, b: Bind, key: tuple[int, int, str]) -> None:
        parent, name = _split(b.rel)
        dfd = _parent_dir(root_fd, parent)
        if dfd is None:
            return  # the parent is masked itself (absent or a link)
        try:
            if b.kind == "mask-dir":
                os.mkdir(name, 0o755, dir_fd=dfd)
            else:  # what the mask holds, so the person's own git reads it meanwhile (review
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o444, dir_fd=dfd)
                try:  # s30: an empty .git/commondir broke git on the host while a run lived)
                    os.write(fd, b.content.encode())
                finally:
                    os.close(fd)
            _MADE.add(key)
        except FileExistsError:
            pass  # made by the person meanwhile: not ours
        finally:
            os.close(dfd)

    # --- the staged view (root daemon) ------------------------------------------------------------

    def _stage(self) -> None:
        from .base import mask_source

        target = self.run_dir / VIEW_DIR
        target.mkdir(mode=0o755, exist_ok=True)
        ns = None
        ws_fd = os.dup(self.ws_fd)
        run_fd = os.open(self.run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        masks: dict[tuple[str, str], int] = {}

        def mask_fd(kind: str, content: str) -> int:
            if (kind, content) not in masks:
                src = mask_source(self.run_dir, kind, content)
                masks[(kind, content)] = os.open(src, os.O_PATH | os.O_CLOEXEC)
            return masks[(kind, content)]

        try:
            if self.identity.idmap:
                ns = fsview.userns_for_idmap(self.identity.uid, self.identity.gid)
            fsview.clone_onto(ws_fd, run_fd, VIEW_DIR, read_only=False, recursive=True,
                              idmap_ns=ns)  # fmt: skip
            self.staged = target
            view_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for b in self.protection.ordered():
                    parent, name = _split(b.rel)
                    try:
                        pfd = fsview.open_beneath(view_fd, parent) if parent else os.dup(view_fd)
                    except OSError:
                        # Its folder is a link or masked: nothing of it shows inside, and
                        # protect.py protected where the link leads.
                        continue
                    try:
                        if b.fd is None:
                            # A link is covered by a file mask (a folder cannot cover a link).
                            kind = "mask-file" if b.rel in self.protection.links else b.kind
                            fsview.clone_onto(mask_fd(kind, b.content), pfd, name,
                                              read_only=True, recursive=False)  # fmt: skip
                        else:
                            fsview.clone_onto(b.fd, pfd, name, read_only=b.kind != "pin",
                                              recursive=b.kind == "pin", idmap_ns=ns)  # fmt: skip
                    finally:
                        os.close(pfd)
            finally:
                os.close(view_fd)
        finally:
            for fd in (ws_fd, run_fd, *masks.values()):  # ns is cached by fsview: kept
                os.close(fd)

    def _hand_off(self) -> None:
        import secrets

        HANDOFF_BASE.mkdir(mode=0o711, exist_ok=True)
        os.chmod(HANDOFF_BASE, 0o711)
        folder = HANDOFF_BASE / f"{self.run_dir.name}-{secrets.token_hex(8)}"
        (self.run_dir / HANDOFF_RECORD).write_text(folder.name)
        folder.mkdir(mode=0o700)
        # Root's, with search for the agent's uid alone (review h133): a folder the agent's uid
        # owned let that person, from a mount namespace of their own where the hand-off is not
        # mounted, rename `run` (the mount moves with it) and put a link in its place, which
        # the unmount at the run's end followed, as root, to any mount on the host.
        try:
            traverse_only_for(str(folder), self.identity.uid)
        except OSError:  # no ACLs here: the agent's own folder; unmount() never follows a link
            os.chown(folder, self.identity.uid, self.identity.gid)
        self.handoff = folder / "run"
        run_fd = os.open(self.run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        dest_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.handoff.mkdir(mode=0o755)
            # The run folder read-only with its submounts (the staged view stays writable).
            fsview.clone_onto(run_fd, dest_fd, "run", read_only=True, recursive=True,
                              top_only=True)  # fmt: skip
        finally:
            os.close(run_fd)
            os.close(dest_fd)

    def reachable(self, path: Path | str) -> Path:
        """Where the agent's uid reaches a path of the run folder (itself for a person's daemon)."""
        path = Path(path)
        if self.handoff is not None and path.is_relative_to(self.run_dir):
            return self.handoff / path.relative_to(self.run_dir)
        return path

    # --- after the run --------------------------------------------------------------------------

    def nested_repositories(self, budget: Budget | None = None) -> tuple[list[str], list[str]]:
        """(git folders or `.git` files below the top made or replaced during the run, notes on
        what the look could not see). Those present at the start were protected; a new one
        cannot be made read-only ahead of time, so it is reported."""
        budget = budget or Budget()
        if self.ws_fd < 0:
            return [], []
        walk = find_nested_git(self.ws_fd)
        protected = set(self.protection.walk.found) if self.protection.walk else set()
        new: list[str] = []
        for rel in walk.found:
            if rel in protected:
                continue  # there at the start: its config and hooks were read-only
            try:
                st = os.stat(rel, dir_fd=self.ws_fd, follow_symlinks=False)
            except OSError:
                continue
            # ctime: the agent can set a file's mtime back, never its ctime.
            if st.st_ctime >= self.opened_at:
                new.append(rel)
        new += [rel for rel, mark in self.protection.watched.items()
                if rel not in new and self._changed(rel, mark, budget)]
        return new, walk.notes("at the end of the run")

    def work_trees(self, new: list[str]) -> list[str]:
        """The workspace-relative tops of the work trees git on the host uses here: the
        workspace's ("") and each nested repository's, from the start and the end."""
        found = self.protection.walk.found if self.protection.walk is not None else []
        return ["", *(os.path.dirname(r) for r in (*found, *new) if os.path.basename(r) == ".git")]

    def git_folders(self, new: list[str]) -> list[str]:
        """The git folders of those work trees: `.git`, or where a `.git` file leads."""
        return [gd for top in self.work_trees(new) if (gd := git_folder(self.ws_fd, top)) is not None]

    def _changed(self, rel: str, mark: str, budget: Budget) -> bool:
        """A watched path (protect.py) made or changed during the run: for a git folder, its
        config or hooks (a hook rewritten in place too: watch.py); for a file, one that holds
        `mark` (any, when empty)."""
        if git_folder_changed(self.ws_fd, rel, self.opened_at, budget):
            return True
        for path in (rel, f"{rel}/config", f"{rel}/hooks", f"{rel}/commondir"):
            try:
                st = os.stat(path, dir_fd=self.ws_fd, follow_symlinks=False)
            except OSError:
                continue
            if st.st_ctime < self.opened_at:
                continue
            if not mark or not stat.S_ISREG(st.st_mode):
                return True
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self.ws_fd)
                with os.fdopen(fd, "rb") as fh:
                    return mark.encode() in fh.read(1 << 20)
            except OSError:
                return True
        return False

    # --- teardown ---------------------------------------------------------------------------

    def close(self) -> None:
        self.protection.close()
        if self.handoff is not None:
            fsview.unmount(self.handoff)
            with contextlib.suppress(OSError):
                self.handoff.rmdir()
                self.handoff.parent.rmdir()
                (self.run_dir / HANDOFF_RECORD).unlink()
            self.handoff = None
        if self.staged is not None:
            fsview.unmount(self.staged)
            with contextlib.suppress(OSError):
                self.staged.rmdir()
            self.staged = None
        if self.ws_fd >= 0:
            _leave(self.ws_fd)
            self.ws_fd = -1


def _ws_key(ws_fd: int) -> tuple[int, int]:
    st = os.fstat(ws_fd)
    return st.st_dev, st.st_ino


def _leave(ws_fd: int) -> None:
    """A view of the workspace is gone (closes ws_fd). The last one removes the mask
    mountpoints made in it: while any run is live there, one planned beside another may have
    taken a mountpoint for a real file and bound it (removing it detaches that mount, or fails
    a view still being made)."""
    with _BOOKS:
        key = _ws_key(ws_fd)
        _OPEN.discard(ws_fd)
        _LIVE[key] = _LIVE.get(key, 1) - 1
        if _LIVE[key] <= 0:
            _LIVE.pop(key, None)
            for made in sorted((m for m in _MADE if m[:2] == key), key=lambda m: -len(m[2])):
                _MADE.discard(made)  # children before their parents
                _remove_mountpoint(ws_fd, made[2])
        os.close(ws_fd)


def _remove_mountpoint(ws_fd: int, rel: str) -> None:
    """Remove a mask mountpoint we made while it holds what we put there (nothing, or the
    mask's content: review s30, `.git/commondir` was left after every run), through the
    workspace descriptor: a folder swapped for a link since cannot point the removal elsewhere."""
    parent, name = _split(rel)
    dfd = _parent_dir(ws_fd, parent)
    if dfd is None:
        return
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=dfd)  # only while empty: never the person's data
        elif stat.S_ISREG(st.st_mode) and (got := fsview.read_beneath(ws_fd, rel, 257)) and (
                got[0].decode(errors="replace") in ("", MASK_CONTENT.get(name, ""))):
            os.unlink(name, dir_fd=dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
