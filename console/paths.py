"""Where Pilothouse keeps its state.

Everything (database, HMAC key, sockets, run folders, logs) lives under one root when
PILOTHOUSE_HOME is set, which is what the tests and several parallel installs rely on.
Without it, the user's XDG places (as platformdirs gives them; worked out here, see
_user_paths).

Kept as text and handed out as pathlib.Path on first use: a CLI start that only needs the
socket (`ps --json`) asks for `text("operator_sock")` and never imports pathlib, which with
re, fnmatch and urllib.parse behind it costs about 5 ms of it (issue 17).
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from pathlib import Path

APP = "pilothouse"
# The HOME of every sandbox (bwrap and Docker): an empty folder per run, where `carry` files go.
INSIDE_HOME = "/home/agent"

# Each place named once: a folder given to Paths, or a file in one of them.
FOLDERS = ("data_dir", "runtime_dir", "runs_dir", "log_dir", "config_file")
FILES = {
    "db_file": ("data_dir", "pilothouse.db"),
    "key_file": ("data_dir", "audit.key"),
    "operator_sock": ("runtime_dir", "operator.sock"),
    "lock_file": ("runtime_dir", "daemon.lock"),
    "pid_file": ("runtime_dir", "daemon.pid"),
    "daemon_log": ("log_dir", "daemon.log"),
}


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


class Paths:
    """Where state lives: data_dir (database and HMAC key), runtime_dir (operator.sock, the
    daemon's lock and pid; 0700, 0750 in team mode), runs_dir (a folder per run: agent.sock,
    gate.sock), log_dir, config_file (the user's config file, which may not exist)."""

    __slots__ = ("_text",)

    def __init__(self, data_dir: str | os.PathLike[str], runtime_dir: str | os.PathLike[str],
                 runs_dir: str | os.PathLike[str], log_dir: str | os.PathLike[str],
                 config_file: str | os.PathLike[str]) -> None:
        given = (data_dir, runtime_dir, runs_dir, log_dir, config_file)
        self._text = {name: os.fspath(value) for name, value in zip(FOLDERS, given, strict=True)}

    def text(self, name: str) -> str:
        """A place (a FOLDERS or FILES name) as text, without pathlib."""
        if name in FILES:
            folder, file = FILES[name]
            return os.path.join(self._text[folder], file)
        return self._text[name]

    def with_config_file(self, config_file: str | os.PathLike[str]) -> Paths:
        return Paths(**{**self._text, "config_file": config_file})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Paths) and other._text == self._text

    def __hash__(self) -> int:
        return hash(tuple(self._text.values()))

    def __repr__(self) -> str:
        return "Paths(" + ", ".join(f"{k}={v!r}" for k, v in self._text.items()) + ")"

    @property
    def data_dir(self) -> Path:
        return _path(self._text["data_dir"])

    @property
    def runtime_dir(self) -> Path:
        return _path(self._text["runtime_dir"])

    @property
    def runs_dir(self) -> Path:
        return _path(self._text["runs_dir"])

    @property
    def log_dir(self) -> Path:
        return _path(self._text["log_dir"])

    @property
    def config_file(self) -> Path:
        return _path(self._text["config_file"])

    @property
    def db_file(self) -> Path:
        return _path(self.text("db_file"))

    @property
    def key_file(self) -> Path:
        return _path(self.text("key_file"))

    @property
    def operator_sock(self) -> Path:
        return _path(self.text("operator_sock"))

    @property
    def lock_file(self) -> Path:
        return _path(self.text("lock_file"))

    @property
    def pid_file(self) -> Path:
        return _path(self.text("pid_file"))

    @property
    def daemon_log(self) -> Path:
        return _path(self.text("daemon_log"))

    def run_dir(self, run_id: str) -> Path:
        """The run's folder. ValueError for an id that is not one plain name: ids come back
        from the history, and a forged row (`../data`) must never name a folder elsewhere."""
        if not run_id or "/" in run_id or "\0" in run_id or run_id in (".", ".."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.runs_dir / run_id

    def ensure(self, runtime_mode: int = 0o700) -> None:
        """Create the folders with private permissions (the runtime folder guards operator.sock)."""
        text = self._text
        for name in ("data_dir", "runs_dir", "log_dir", "runtime_dir"):
            _make_above(text[name])
        for name in ("data_dir", "runs_dir", "log_dir"):
            os.makedirs(text[name], mode=0o700, exist_ok=True)
        os.makedirs(text["runtime_dir"], mode=runtime_mode, exist_ok=True)
        os.chmod(text["runtime_dir"], runtime_mode)
        os.chmod(text["data_dir"], 0o700)

    def open_to_others(self) -> str | None:
        """Why another user could change where the daemon keeps its state (open_to_others),
        for the first of its folders where they could; None when none."""
        from console.home_trust import open_to_others

        for name in ("runtime_dir", "data_dir", "runs_dir", "log_dir"):
            if (why := open_to_others(self._text[name])) is not None:
                return why
        return None


def _make_above(path: str) -> None:
    """The folders above `path` that are missing, none writable by the group or others:
    os.makedirs makes them 0777 less the umask, and under umask 000 a PILOTHOUSE_HOME it made
    let any user move the runtime folder aside and answer for the daemon (review h164)."""
    missing = []
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder) and folder != os.path.dirname(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o755)  # less the umask: 0700 under 077, never more than 0755
        except FileExistsError:
            pass


class UnusableSetting(Exception):
    """A variable of the environment that cannot be used as it is: what, and what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _absolute_setting(name: str) -> str | None:
    """The variable's path with `~` expanded. A relative one is refused: each command would
    find its own home in the folder it runs in, and start a daemon of its own there."""
    value = os.environ.get(name)
    if not value:
        return None
    path = os.path.expanduser(value)
    if not path.startswith("/"):
        what = "a Pilothouse" if name == "PILOTHOUSE_HOME" else "a config file"
        raise UnusableSetting(f"{name}={value!r} is a relative path, so each folder would have "
                              f"{what} of its own", f"give {name} an absolute path, such as "
                              f"{os.path.join(os.getcwd(), path)!r}")
    return path


def resolve(home: str | os.PathLike[str] | None = None) -> Paths:
    """Paths for this process: explicit home, then PILOTHOUSE_HOME, then the XDG places."""
    root = home if home is not None else _absolute_setting("PILOTHOUSE_HOME")
    config = _absolute_setting("PILOTHOUSE_CONFIG")
    if root:
        # What Path(root).expanduser().resolve() gives (pathlib's resolve is realpath).
        given = os.path.expanduser(os.fspath(root))
        base = os.path.realpath(given)
        if base != os.path.normpath(given):
            _no_link_others_may_swap(given, base)
        return Paths(
            data_dir=os.path.join(base, "data"),
            runtime_dir=os.path.join(base, "run"),
            runs_dir=os.path.join(base, "runs"),
            log_dir=os.path.join(base, "log"),
            config_file=config or os.path.join(base, "config.toml"),
        )
    return _user_paths(config)


def _no_link_others_may_swap(given: str, base: str) -> None:
    """UnusableSetting where the way to PILOTHOUSE_HOME goes through a link another user could
    re-point: the home is kept as where the link led when the command started (review h169)."""
    from console.home_trust import links_open_to_others

    try:
        why = links_open_to_others(given)
    except OSError:  # a folder this user cannot look in: using the home says what is wrong
        return
    if why is not None:
        raise UnusableSetting(
            f"not using PILOTHOUSE_HOME={given!r}: {why}, and so lead another user's way",
            f"set PILOTHOUSE_HOME to the folder it leads to now, {base!r}, once you have "
            "checked it is yours (or the team's daemon's); or make the link and the folders "
            "it is in writable by no one else")


def _user_paths(config: str | None) -> Paths:
    """The XDG places platformdirs gives (tests/core/test_paths.py holds them equal), worked
    out here: importing platformdirs (pathlib, tempfile, random, shutil) took about 20 ms of
    every CLI start without PILOTHOUSE_HOME, longer than Python's own start (issue 17)."""
    state = os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), APP)
    # The socket folder goes in XDG_RUNTIME_DIR only where that is ours alone; without it (root,
    # cron, some SSH set-ups), or when it is not, in the user's own state folder: never a
    # shared /tmp path, which platformdirs would fall back to.
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    runtime = os.path.join(runtime, APP) if _private_dir(runtime) else os.path.join(state, "run")
    return Paths(
        data_dir=os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), APP),
        runtime_dir=runtime,
        runs_dir=os.path.join(state, "runs"),
        log_dir=os.path.join(state, "log"),
        config_file=config or os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), APP, "config.toml"),
    )


def _xdg(variable: str, under_home: str) -> str:
    """An XDG base folder: the variable when it holds an absolute path (the specification
    says to ignore a relative one), else its default under the home folder."""
    value = os.environ.get(variable, "")
    return value if os.path.isabs(value) else os.path.join(_home(), under_home)


def _home() -> str:
    """HOME when absolute; else (unset, or relative) the account's home, as platformdirs."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return home.rstrip("/") or "/"
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def _private_dir(path: str) -> bool:
    """An absolute path to a folder (not a link to one) of this user's, closed to others (0700)."""
    if not os.path.isabs(path):
        return False
    try:
        info = os.lstat(path.rstrip("/") or "/")
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and stat.S_IMODE(info.st_mode) == 0o700)


# Files a person writes on an agent's behalf (review h144). Where a file a person asks for on an agent's behalf is written (`-o FILE` of the CLI's
# exports, the History screen's export): through no link an agent could have made.
#
# Refusing a link as the file itself is not enough: `-o out/events.csv` where the agent left
# `out -> ~/.ssh` (or, for root, `-> /etc/cron.d`) wrote the person's file into the folder the
# agent chose, and `/proc/self/cwd/...` or `/dev/shm/...` skipped every check. So the folders on
# the way are opened one by one (openat, never following a link, no check-then-use race), and a
# link among them is followed only where only root could have made it: owned by root, in a
# folder of root's that nobody else may write (`/var/run`, `/tmp` on macOS, `/home -> var/home`,
# `/proc/self`). No agent runs as root on the host (docs/threat-model.md), but the agent does
# run as the person, so a link of the person's own is refused too: the person gives the path
# it leads to. What a descriptor the person's shell opened stands for (`/dev/stdout`,
# `/dev/fd/N`, `/proc/self/fd/N`) is written as before: the person made that redirection.


def _own_descriptor(plain: str) -> bool:
    """A descriptor of the writing process (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`):
    the file behind it is the person's own redirection. Without re (a CLI start's cost)."""
    def number(word: str) -> bool:
        return word.isascii() and word.isdigit()

    parts = plain.split("/")
    return (plain in ("/dev/stdout", "/dev/stderr")
            or (len(parts) == 4 and parts[1:3] == ["dev", "fd"] and number(parts[3]))
            or (len(parts) == 5 and parts[1] == "proc" and parts[3] == "fd" and number(parts[4])
                and (parts[2] in ("self", "thread-self") or number(parts[2]))))


_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_FOLDER = _PATH | os.O_DIRECTORY | os.O_CLOEXEC


class LinkOnTheWay(OSError):
    """A link the path goes through that an agent could have made."""

    def __init__(self, path: str, link: str) -> None:
        super().__init__(errno.ELOOP, f"{link} is a link", path)
        self.link = link


def _roots_link(parent: int, name: str) -> bool:
    """A link only root could have made or swapped: root's, in a folder of root's that no
    one else may write (or sticky, where only its owner may rename or remove it)."""
    link = os.stat(name, dir_fd=parent, follow_symlinks=False)
    folder = os.fstat(parent)
    return (stat.S_ISLNK(link.st_mode) and link.st_uid == 0 and folder.st_uid == 0
            and (not folder.st_mode & 0o022 or bool(folder.st_mode & stat.S_ISVTX)))


def open_folder_of(path: str) -> tuple[int, str]:
    """(a descriptor of the folder `path` names its file in, the file's name), walked from
    `/` (or the current folder, the person's choice) without following a link an agent could
    have made: LinkOnTheWay names it. The caller closes the descriptor."""
    *folders, name = path.split("/")
    fd = os.open("/" if path.startswith("/") else ".", _FOLDER)
    walked = "" if path.startswith("/") else "."
    try:
        for part in folders:
            if part in ("", "."):
                continue
            walked = f"{walked.rstrip('/')}/{part}" if walked else f"/{part}"
            try:
                step = os.open(part, _FOLDER | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or not stat.S_ISLNK(
                        os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise
                if not _roots_link(fd, part):
                    raise LinkOnTheWay(path, walked.removeprefix("./")) from None
                step = os.open(part, _FOLDER, dir_fd=fd)
            os.close(fd)
            fd = step
        return fd, name
    except BaseException:
        os.close(fd)
        raise


def open_output_fd(path: str, flags: int, mode: int = 0o666) -> int:
    """os.open(path, flags | O_NOFOLLOW, mode), with no link an agent could have made on the
    way (LinkOnTheWay, or OSError ELOOP for the file itself); a descriptor of the process
    itself (`/dev/stdout`, `/proc/self/fd/1`) is opened as it stands."""
    plain = os.path.normpath(os.path.abspath(path))
    if _own_descriptor(plain):
        return os.open(plain, flags | os.O_CLOEXEC, mode)
    folder, name = open_folder_of(path)
    try:
        return os.open(name or ".", flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
    finally:
        os.close(folder)
