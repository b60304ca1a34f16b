"""~/.codex in a sandbox: a read-only folder, with Codex's own state in writable folders below it.

Codex 0.171 layers `$CODEX_HOME/NAME.config.toml` over the read-only ~/.codex/config.toml when
its command line says `-p NAME`, `--profile NAME` or `--profile=NAME` (after `exec` or before
it). ~/.codex was a tmpfs the agent could write, so such a file left by an earlier step of the
run (an approved command, an apply_patch) set, say, `shell_environment_policy.set.BASH_ENV` for
the next `codex exec -p NAME`, and bash sourced that script around every command the rules
allow, nobody asked (review h163/h170). NAME is any plain name, and a Codex the agent starts
itself takes the agent's command line: no list of pinned names could cover them. So nothing
can be made at the top of ~/.codex in a sandbox, by the agent or by Codex: what Codex writes
goes to the folders below (each a fresh tmpfs), its databases and log by the pinned
config's `sqlite_home` and `log_dir`. A person's own profile file comes in with `carry`.
(`-c profile=NAME` stops 0.171 with an error, a legacy selector; a NAME with a `/` is refused.)
"""

from __future__ import annotations

from pathlib import Path

from console.paths import INSIDE_HOME

CODEX_DIR = ".codex"
# Where Codex 0.171 writes in its home, seen after `codex exec` runs (tests/agents): sessions
# (`codex exec resume` reads them), its locks, the system skills it installs, and the folders
# of its memories and archived sessions. Not `tmp`: there Codex makes the folder of its
# `apply_patch` alias and puts it first on the PATH of every command it runs, so an `ls` an
# approved command left in it ran in place of every later `ls` the rules allow (review h207).
# With `tmp` in the read-only folder, Codex warns that it could not update PATH and goes on
# (the model's patches go through its apply_patch tool, asked by the hook, as before).
# `sqlite` and `log` are named by the pinned config (CODEX_STATE_KEYS). Nothing is carried
# below them (agents.pinned_under).
CODEX_STATE_DIRS = ("sessions", "archived_sessions", "thread-writer-locks", "skills",
                    "memories", "sqlite", "log", "files")
# Files Codex keeps at the top and opens by name (O_CREAT; it does not start without them):
# each is a link there into `files`, where Codex makes it. (Its `.sandbox_migration` marker is
# written through a temporary file and a rename, which fail in the read-only folder: Codex
# goes on without it.)
CODEX_STATE_FILES = ("installation_id",)
# Keys of the pinned config.toml that move Codex's top-level files into those folders: its
# SQLite databases (each with -wal and -shm files beside it) and its log.
CODEX_STATE_KEYS = (f'sqlite_home = "{INSIDE_HOME}/{CODEX_DIR}/sqlite"\n'
                    f'log_dir = "{INSIDE_HOME}/{CODEX_DIR}/log"\n')


def codex_state_folders(inside_home: str = INSIDE_HOME) -> list[str]:
    """The writable folders below the read-only ~/.codex: a fresh tmpfs each in a sandbox."""
    return [f"{inside_home}/{CODEX_DIR}/{name}" for name in CODEX_STATE_DIRS]


def codex_state_links(inside_home: str = INSIDE_HOME) -> list[str]:
    """The links at the top of ~/.codex into its `files` folder (nothing is carried there)."""
    return [f"{inside_home}/{CODEX_DIR}/{name}" for name in CODEX_STATE_FILES]


def make_codex_home(home: Path) -> None:
    """The mount points of the state folders, in the run folder's home/.codex (bound read-only:
    a mount needs its point to exist there already)."""
    for name in CODEX_STATE_DIRS:
        (home / CODEX_DIR / name).mkdir(mode=0o755, parents=True, exist_ok=True)
    for name in CODEX_STATE_FILES:
        link = home / CODEX_DIR / name
        if not link.is_symlink():
            link.symlink_to(f"files/{name}")


def mount_point(home: Path, inside: str, inside_home: str = INSIDE_HOME) -> None:
    """An empty file at a carried file's place below ~/.codex in the run folder's home (a
    person's own NAME.config.toml, say): the read-only folder cannot get a new one at start."""
    prefix = f"{inside_home}/{CODEX_DIR}/"
    if not inside.startswith(prefix):
        return
    target = home / CODEX_DIR / inside[len(prefix):]
    if target.resolve().is_relative_to((home / CODEX_DIR).resolve()) and not target.exists():
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.touch(mode=0o644)
