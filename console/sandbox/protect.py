"""Which workspace paths stay read-only inside a sandbox, and how they are found without links.

Each family is a way a hostile agent (or its repository) could reach code that runs on the host
later, or switch Pilothouse's controls off:

- Pilothouse's own: `.pilothouse.toml`.
- git's indirections, in every git folder of the workspace (`.git`, a `gitdir:` target inside
  it, each submodule under `.git/modules`): config, config.worktree, commondir, hooks/, info/,
  worktrees/, modules/ (existing submodules stay usable), remotes/, branches/, the alternates,
  submodule checkouts' `.git` files (a listed submodule not checked out: its folder), and what
  config includes or names as a program, script or hook folder (CODE_KEYS). What git needs to
  commit, branch and fetch (objects, refs, logs, index, HEAD, packed-refs, locks) stays
  writable; at the top an empty read-only folder stands at HEAD, so the top itself never
  becomes a git folder once `.git` is broken or absent.
- Agents', editors' and other host tools' project config: `.claude/`, `.codex/`, `.mcp.json`,
  `.vscode/`, `.idea/`, `.envrc`, `.cursor/`, `.gemini/` (and below the top: find_nested_git),
  aider's YAML files and HOST_TOOL_CONFIG (console/policy/protected_names.py) when present.
- Around them: the config a hook runner in a protected hooks folder reads (pre-commit,
  lefthook), husky 9's `.husky/`, and every folder above a protected path, pinned so that it
  cannot be renamed away with the protected path inside.

`plan_protection` opens every path with openat2 (no symbolic links on the way, never outside
the workspace) and returns what to bind where; a path that is a link, or lies under one, is
masked (an empty read-only file or folder), and the run's notes say so. Absent paths are
masked too, so the agent cannot create them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from console.policy.protected_names import (
    AGENT_CONFIG_DIRS,
    AGENT_CONFIG_FILES,
    NESTED_AGENT_CONFIG,
    OWN,
)

from . import nested
from .aliases import ALL_ENTRIES_MAX, DIR_ENTRIES_MAX, LookBudget
from .claude_project import bind_project_settings, filter_project_settings
from .fsview import open_beneath
from .gitconfig import (
    CODE_KEYS,
    GIT_HOOK_NAMES,
    INCLUDE_KEY,
    LEFTHOOK_CONFIGS,
    NamedPaths,
    config_entries,
    hook_config_files,
    named_path,
    named_paths,
    read_whole,
)
from .gitindex import not_checked_out
from .links import inside_workspace, link_target, link_targets, workspace_root
from .nested import MADE_ANYWHERE, WalkResult, find_nested_git
from .plan_limits import PROTECTED_MAX, too_many
from .watch import Budget

# Nested git folders protected one by one (each is about fourteen binds); past that, the rest
# are watched: a change to their config or hooks is reported at the run's end.
NESTED_GIT_MAX = 64
INCLUDE_DEPTH = 10  # git's own MAX_INCLUDE_DEPTH
# Inside a git folder: what can redirect git or make it run code. Folders are masked as
# folders when absent.
GIT_DIRS = ("hooks", "info", "worktrees", "remotes", "branches")  # the last two: old remotes
GIT_FILES = ("config", "config.worktree", "commondir")
GIT_MODULES = "modules"
# A masked file some tool reads when present must still parse: git fails on an empty
# commondir ("." names the git folder itself, as if absent); Claude Code reads .mcp.json.
MASK_CONTENT = {"commondir": ".\n", ".mcp.json": "{}\n"}


@dataclass
class Bind:
    rel: str  # path inside the workspace
    kind: str  # "ro" | "pin" (rw bind onto itself) | "mask-file" | "mask-dir"
    fd: int | None = None  # O_PATH fd of the real path (None for masks)
    content: str = ""  # what a file mask holds (empty but where a tool must parse it)


@dataclass
class Protection:
    binds: list[Bind] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Protected paths that were symbolic links (or under one), with where the link leads inside
    # the workspace (read-only too: host tools follow the link) or None when it leads outside.
    links: dict[str, str | None] = field(default_factory=dict)
    # The walk for nested repositories: what it could not see (for the run's notes).
    walk: WalkResult | None = None
    # Paths not bound but looked at when the run ends, each with the text that makes a change
    # to it worth reporting ("" for any change): absent config a hook runner would read, the
    # nested git folders past NESTED_GIT_MAX, aider's .env.
    watched: dict[str, str] = field(default_factory=dict)
    aliased: set[str] = field(default_factory=set)  # watched: other names not all bound
    # The look for symbolic links in read-only folders: its `cut` folders are looked at again
    # when the run ends (watch.changed_behind_links).
    link_look: LookBudget = field(default_factory=LookBudget)
    config_looks: NamedPaths = field(default_factory=NamedPaths)  # configs' and hooks'
    module_look: Budget = field(default_factory=Budget)  # for submodules in modules folders
    gitlinks: int = 0  # submodules not checked out among the paths (for the refusal's words)
    _seen: set[str] = field(default_factory=set)

    def close(self) -> None:
        for b in self.binds:
            if b.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(b.fd)
                b.fd = None

    def ordered(self) -> list[Bind]:
        """Parents before children, so a child's bind lands on top of its parent's."""
        return sorted(self.binds, key=lambda b: b.rel.count("/"))

    def _add(self, rel: str, kind: str, fd: int | None = None) -> None:
        if rel in self._seen:
            if fd is not None:
                os.close(fd)
            return
        self._seen.add(rel)
        content = MASK_CONTENT.get(rel.rsplit("/", 1)[-1], "") if kind == "mask-file" else ""
        self.binds.append(Bind(rel, kind, fd, content))
        # Refused once past the bound, not when made: each path holds a descriptor (review
        # s30: a config including 20,000 files took the daemon's last ones, the store's too).
        if len(self.binds) > PROTECTED_MAX and (refusal := too_many(
                [b.rel for b in self.binds], self.gitlinks)):
            raise refusal


def _open(root_fd: int, rel: str) -> tuple[int | None, str]:
    """(fd, "ok") | (None, "absent") | (None, "link")."""
    try:
        return open_beneath(root_fd, rel), "ok"
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None, "absent"
        if e.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            return None, "link"
        raise


def _protect(p: Protection, root_fd: int, rel: str, want_dir: bool, pin: bool = False,
             depth: int = 0, absent_as_dir: bool = False) -> int | None:  # fmt: skip
    """Bind rel read-only (or pinned) or mask it; returns the fd when it is a real folder
    (None when rel is already planned: its fd belongs to that bind)."""
    if rel in p._seen:
        return None
    fd, state = _open(root_fd, rel)
    if state == "link":
        # The link itself is masked inside the sandbox; its target inside the workspace is
        # protected too, because tools on the host follow the link to it.
        target = link_target(root_fd, rel)
        p.links[rel] = target
        p._add(rel, "mask-dir" if want_dir else "mask-file")
        if target is not None and depth < 8:
            _protect(p, root_fd, target, want_dir, depth=depth + 1)
        return None
    if state == "absent":
        # Mask the first missing folder on the way, so the agent cannot create the path.
        parts = rel.split("/")
        for i in range(1, len(parts)):
            head = "/".join(parts[:i])
            head_fd, head_state = _open(root_fd, head)
            if head_fd is not None:
                os.close(head_fd)
                continue
            if head_state == "absent":
                p._add(head, "mask-dir")
                return None
            break  # a link on the way: _open of rel said absent only if it resolved
        p._add(rel, "mask-dir" if want_dir or absent_as_dir else "mask-file")
        return None
    assert fd is not None
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    p._add(rel, "pin" if (pin and is_dir) else "ro", fd)
    if is_dir and not pin and depth < 8:
        _protect_link_targets(p, root_fd, rel, fd, depth)
    return fd if is_dir else None


def _is_file(root_fd: int, rel: str) -> bool:
    """A regular file at rel, or a link there (masked, where it leads protected, by _protect)."""
    fd, state = _open(root_fd, rel)
    if fd is None:
        return state == "link"
    is_file = stat.S_ISREG(os.fstat(fd).st_mode)
    os.close(fd)
    return is_file


def _protect_link_targets(p: Protection, root_fd: int, rel: str, fd: int, depth: int) -> None:
    """Where a read-only folder's links lead inside the workspace is read-only too (links.py),
    and each link on the way is masked (review s30: `tools/hook -> hook.sh` on the way from
    `.git/hooks/pre-commit` was the agent's to replace)."""
    for target, is_dir, via in link_targets(root_fd, fd, rel, p.link_look):
        for link in via:
            _protect(p, root_fd, link, want_dir=is_dir, depth=depth + 1)
        _protect(p, root_fd, target, want_dir=is_dir, depth=depth + 1)


def _config_path(p: Protection, root_fd: int, base_rel: str, target: str) -> str | None:
    """Where a path a config names leads, as the kernel resolves it for git: `x/../hooks` with
    `x` a link is the hooks folder beside where `x` leads, not `hooks`. Each link on the way is
    protected (masked, its target read-only) so the agent cannot point it elsewhere."""
    rel = inside_workspace(base_rel, target, root_fd)
    parts = target.replace("\\", "/").split("/")
    if rel is None or ".." not in parts[1:]:
        return rel
    root = workspace_root(root_fd)
    head = os.path.join(root, base_rel) if not os.path.isabs(target) else ""
    for part in parts:
        head = os.path.join(head, part) if head else part
        if os.path.islink(head):
            link_rel = os.path.relpath(head, root)
            if not link_rel.startswith(".."):
                _protect(p, root_fd, link_rel, want_dir=True)
    return link_target(root_fd, os.path.join(base_rel, target))


def _protect_config_targets(p: Protection, root_fd: int, gd: str, text: str,
                            base: str | None = None, depth: int = 0) -> None:
    """Protect what a git folder's config includes or runs, where that lies in the workspace:
    each included file (relative to the file that includes it, or absolute), and what the
    included files name in turn."""
    top = os.path.dirname(gd)  # the work tree's top: where git runs hooks and helpers
    for key, value in config_entries(text):
        if INCLUDE_KEY.match(key) or CODE_KEYS.match(key):
            p.config_looks.take(f"{gd}/config")
        if INCLUDE_KEY.match(key):
            rel = _config_path(p, root_fd, gd if base is None else base, value.strip()
                               ) if value.strip() else None
            if rel is not None and rel not in p._seen:
                _protect(p, root_fd, rel, want_dir=False)
                if depth < INCLUDE_DEPTH:
                    _protect_config_targets(p, root_fd, gd, read_whole(root_fd, rel) or "",
                                            os.path.dirname(rel) or ".", depth + 1)
            continue
        if not CODE_KEYS.match(key):
            continue
        if key in ("core.worktree", "core.hookspath"):  # a path, not a command
            named = named_path(value)
            rel = named and _config_path(p, root_fd, gd if key == "core.worktree" else (top or "."), named)
            if not rel:
                continue
            if key == "core.worktree":
                _protect(p, root_fd, f"{rel}/.git", want_dir=False)
            else:
                _hooks(p, root_fd, rel, top)
                if os.path.basename(rel) == "_" and "/" in rel:
                    # husky 9: its hooks in `.husky/_` run the project's hook one folder up.
                    _protect(p, root_fd, os.path.dirname(rel), want_dir=True)
            continue
        for named, kind in named_paths(value):  # a command: each file it may name
            rel = _config_path(p, root_fd, top or ".", named)
            if rel is None or (kind == "file" and not _is_file(root_fd, rel)):
                continue
            if kind == "watch":  # a build tool's file: the agent's to edit, reported if it did
                p.watched.setdefault(rel, "")
                continue
            there = _is_file(root_fd, rel)  # before a placeholder for it changes its folder
            _protect(p, root_fd, rel, want_dir=False)
            if there and os.path.dirname(rel):  # what it may load beside it (json.py, a module)
                p.watched.setdefault(os.path.dirname(rel) + "/", "")


def _hooks(p: Protection, root_fd: int, rel: str, top: str) -> None:
    """A hooks folder read-only, and what a hook runner installed there takes its commands from
    (pre-commit's `--config=FILE`, lefthook's config files and script folders)."""
    fd = _protect(p, root_fd, rel, want_dir=True)
    if fd is None:
        return
    try:
        names = set(os.listdir(f"/proc/self/fd/{fd}"))
    except OSError:
        return
    looked = [n for n in GIT_HOOK_NAMES if n in names] + sorted(names - set(GIT_HOOK_NAMES))[:64]
    for name in looked:
        script = read_whole(root_fd, f"{rel}/{name}", 1 << 20) or ""
        for target in hook_config_files(script):
            p.config_looks.take(f"{rel}/{name}")
            path = inside_workspace(top or ".", target, root_fd)
            if path is not None:
                _protect(p, root_fd, path, want_dir=False)
        if "lefthook" in script:
            for conf in LEFTHOOK_CONFIGS:
                path = os.path.join(top, conf) if top else conf
                found, _state = _open(root_fd, path)
                if found is None:
                    p.watched.setdefault(path, "")  # absent: reported when made
                else:
                    os.close(found)
                    _protect(p, root_fd, path, want_dir=conf.endswith(("lefthook", "-local")))


def _git_folder(p: Protection, root_fd: int, gd: str, depth: int = 0) -> None:
    """Protect one git folder (gd, workspace-relative) and, recursively, its submodules."""
    gd_fd = _protect(p, root_fd, gd, want_dir=True, pin=True)
    if gd_fd is None:
        return
    for name in GIT_FILES:
        _protect(p, root_fd, f"{gd}/{name}", want_dir=False)
    for name in GIT_DIRS:
        if name == "hooks":
            _hooks(p, root_fd, f"{gd}/hooks", os.path.dirname(gd))
        else:
            _protect(p, root_fd, f"{gd}/{name}", want_dir=True)
    # Object alternates redirect where git reads objects from. objects/info is made when absent
    # (git's own layout; kept), so the alternates mask has a real folder to sit in.
    objects_fd, _state = _open(root_fd, f"{gd}/objects")
    if objects_fd is not None:
        with contextlib.suppress(FileExistsError, OSError):
            dfd = os.open(f"/proc/self/fd/{objects_fd}", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.mkdir("info", 0o755, dir_fd=dfd)
                st = os.fstat(gd_fd)
                os.chown("info", st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
        os.close(objects_fd)
        _protect(p, root_fd, f"{gd}/objects/info/alternates", want_dir=False)
    common = (read_whole(root_fd, f"{gd}/commondir") or "").strip()
    if common and common != "." and depth < 4:  # a linked worktree's objects, refs and config
        target = inside_workspace(gd, common, root_fd)
        if target is not None:
            _git_folder(p, root_fd, target, depth + 1)
    for name in GIT_FILES[:2]:  # config and config.worktree
        _protect_config_targets(p, root_fd, gd, read_whole(root_fd, f"{gd}/{name}") or "")
    # Submodules: the modules folder read-only (no new ones), each existing one usable.
    modules_fd = _protect(p, root_fd, f"{gd}/{GIT_MODULES}", want_dir=True)
    if modules_fd is None or depth > 4:
        return
    cut_before = p.module_look.cut
    for module in nested.module_git_folders(modules_fd, p.module_look):  # past its bound: read-only
        _git_folder(p, root_fd, f"{gd}/{GIT_MODULES}/{module}", depth + 1)
    if p.module_look.cut and not cut_before:
        p.notes.append(f"the look for submodules stopped early in {gd}/{GIT_MODULES} (too many "
                       "entries, or too deep): those past it, and in later ones, stay read-only")


def _gitdir_file(p: Protection, root_fd: int, rel: str) -> None:
    """A `.git` file read-only, and the git folder its `gitdir:` line names (relative to the
    file's folder, or absolute, as `git init --separate-git-dir` writes it) protected as one."""
    _protect(p, root_fd, rel, want_dir=False)
    text = read_whole(root_fd, rel) or ""
    if text.startswith("gitdir:"):
        target = inside_workspace(os.path.dirname(rel) or ".", text[len("gitdir:"):].strip(), root_fd)
        if target is not None:
            _git_folder(p, root_fd, target)


def protect_files(p: Protection, root_fd: int, rels: list[str], mask: str = "") -> None:
    """Bind each read-only (privileged_files.py), or cover it with `mask` (special_files.py)."""
    for rel in rels:
        if mask:
            p._add(rel, mask)
        else:
            _protect(p, root_fd, rel, want_dir=False)


def _pin_parents(p: Protection, root_fd: int) -> None:
    """Every folder above a protected path pinned (bound onto itself): a mount point cannot be
    renamed, so `mv tools tools.orig; mkdir tools` cannot put the agent's script where a
    protected one was (renaming a folder takes the mounts inside it along)."""
    for bind in list(p.binds):
        parts = bind.rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            if head not in p._seen:
                _protect(p, root_fd, head, want_dir=True, pin=True)


def _protect_aliases(p: Protection, root_fd: int) -> None:
    """Other names (hard links) of protected files read-only too; past ALIAS_MAX of them, or
    where the look was cut short, the protected file is watched (a change is reported)."""
    from .aliases import ALIAS_MAX, find_aliases, linked_files

    wanted, cut = linked_files(p.binds)
    if cut:
        p.notes.append(f"{len(cut)} protected folder(s), first {cut[0]}, were not looked through "
                       f"whole for other names (hard links) elsewhere in the workspace (past "
                       f"{DIR_ENTRIES_MAX} entries each or {ALL_ENTRIES_MAX} in all): a change "
                       "to their files is reported at the run's end")
    if not wanted:
        return
    res = find_aliases(root_fd, wanted, nested.NESTED_MAX_ENTRIES, nested.NESTED_MAX_SECONDS)
    if res.unreadable:
        p.notes.append(f"the look for other names (hard links) of protected files could not open "
                       f"{len(res.unreadable)} folder(s), first {res.unreadable[0][:200]!r}: a "
                       "change to those files is reported at the run's end")
    for i, (alias, name) in enumerate(sorted(res.found.items())):
        if i < ALIAS_MAX:
            _protect(p, root_fd, alias, want_dir=False)
            p.notes.append(f"{alias} is another name (a hard link) of {name}: read-only too")
        else:
            res.unseen.add(name)
    for name in sorted(res.unseen):
        p.watched.setdefault(name, "")
        p.aliased.add(name)


def plan_protection(workspace: Path | int) -> Protection:
    """Open and plan every protected path of a workspace (its path, or an O_PATH descriptor
    this function does not close; see the module docstring)."""
    p = Protection()
    if isinstance(workspace, int):
        root_fd = os.dup(workspace)
    else:
        root_fd = os.open(workspace, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel in OWN + AGENT_CONFIG_FILES:
            # Absent, an empty read-only folder stands there: it blocks the file as well as an
            # empty file would, and git shows no empty folder, so `git status` and an agent's
            # `git add -A` inside see nothing new (an empty file would be committed).
            _protect(p, root_fd, rel, want_dir=False, absent_as_dir=True)
        for rel in AGENT_CONFIG_DIRS:
            _protect(p, root_fd, rel, want_dir=True)
        bind_project_settings(p, root_fd, _protect)  # replaced by kept copies below
        fd, state = _open(root_fd, ".git")
        if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            _gitdir_file(p, root_fd, ".git")
        else:
            if fd is not None:
                os.close(fd)
            # Absent: masked, so the agent cannot make one whose config the host would read.
            _git_folder(p, root_fd, ".git")
        # Without a valid .git (none, or one the agent broke: a junk .git/HEAD, refs renamed),
        # git takes the top itself for a git folder once it holds HEAD, objects/ and refs/ (a
        # config there naming core.fsmonitor ran at the person's `git status`: review s32,
        # helpers 114 and 118): an empty read-only folder stands at HEAD.
        _protect(p, root_fd, "HEAD", want_dir=False, absent_as_dir=True)
        # Repositories nested anywhere below (vendored, or made by an earlier run), and agents'
        # project config below the top: host tools read them as soon as a person's prompt
        # enters the folder.
        p.walk = find_nested_git(root_fd)
        gits = 0
        for rel in p.walk.found:
            nested_fd, state = _open(root_fd, rel)
            is_dir = nested_fd is not None and stat.S_ISDIR(os.fstat(nested_fd).st_mode)
            if nested_fd is not None:
                os.close(nested_fd)
            if state == "link" or os.path.basename(rel) in (*NESTED_AGENT_CONFIG, *MADE_ANYWHERE):
                if state == "link":  # masked, where it leads protected (a folder or a file)
                    is_dir = os.path.isdir(f"/proc/self/fd/{root_fd}/{rel}")
                _protect(p, root_fd, rel, want_dir=is_dir)
            elif nested_fd is None:
                continue
            elif (gits := gits + 1) > NESTED_GIT_MAX:
                p.watched[rel] = ""  # past the bound: its config and hooks looked at the end
            elif is_dir:
                _git_folder(p, root_fd, rel)
            else:
                _gitdir_file(p, root_fd, rel)
        if gits > NESTED_GIT_MAX:
            p.notes.append(f"{gits} nested git repositories: the first {NESTED_GIT_MAX} are "
                           "protected, and a change to the others' config or hooks is reported "
                           "at the run's end")
        # Host tools load the .env at the top as they start: docker compose (COMPOSE_FILE, and
        # every variable its file uses), direnv's dotenv (into the person's shell), aider (its
        # AIDER_ options). Agents edit it for the application, so it stays writable: any
        # change is reported.
        p.watched.setdefault(".env", "")
        gitmodules = read_whole(root_fd, ".gitmodules") or ""
        for m in re.finditer(r"^\s*path\s*=\s*(.+?)\s*$", gitmodules, re.M):
            rel = inside_workspace(".", m.group(1).strip('"'))
            if rel is not None:
                sub_fd, state = _open(root_fd, f"{rel}/.git")
                if sub_fd is not None:
                    os.close(sub_fd)
                    _protect(p, root_fd, f"{rel}/.git", want_dir=False)
        gitlinks = not_checked_out(root_fd, p.walk.found, p.notes)  # no .git is made there
        p.gitlinks = len(gitlinks)
        for rel in gitlinks:
            _protect(p, root_fd, rel, want_dir=True)
        _protect_aliases(p, root_fd)
        filter_project_settings(p, root_fd)  # after the aliases look: it needs their fds
        _pin_parents(p, root_fd)  # last: above every protected path, submodules' included
        if refusal := too_many([b.rel for b in p.binds], len(gitlinks)):
            raise refusal
        if cut := p.link_look.cut:
            p.notes.append(f"the look for symbolic links in read-only folders stopped early in "
                           f"{len(cut)} folder(s), first {cut[0]} (past {DIR_ENTRIES_MAX} entries "
                           f"each or {ALL_ENTRIES_MAX} in all): where their other links lead is "
                           "not read-only; a change there is reported at the run's end")
    except BaseException:
        p.close()
        raise
    finally:
        os.close(root_fd)
    return p
