"""Whether the daemon may take its config file. The file decides what every run may do (its
sandbox, command, image, rules, who approves), so a file another user can write, or replace
through a folder on its way, hands that user the daemon's own powers: root's, for a root
daemon, or the docker group's (review h141). Checked as OpenSSH's StrictModes checks
authorized_keys: the file and every folder above it owned by the daemon's user or root, none
writable by its group or by others; a folder with the sticky bit (/tmp) is allowed, since
nobody else may rename or remove what is ours in it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from console.config.schema import ConfigError


def check_config_file(path: Path, uid: int | None = None) -> None:
    """Raise ConfigError when someone other than `uid` (the daemon's) or root could change what
    `path` holds. A missing file passes: a file made later is checked when it is read."""
    uid = os.geteuid() if uid is None else uid
    try:
        real = Path(os.path.realpath(path))
        st = os.stat(real)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot check who may change it: {exc}") from None
    why = _unsafe(real, st, uid, folder=False)
    for folder in [real.parent, *real.parent.parents]:
        if why:
            break
        try:
            why = _unsafe(folder, os.stat(folder), uid, folder=True)
        except OSError as exc:
            why = f"cannot check who may change {folder}: {exc}"
    if why:
        raise ConfigError(str(path), None, f"not taken: {why}. Whoever can change this file "
                          "decides what every run may do; make it yours alone (chmod go-w, "
                          "chown) or point PILOTHOUSE_CONFIG at a file only you can write")


def _unsafe(path: Path, st: os.stat_result, uid: int, *, folder: bool) -> str | None:
    if st.st_uid not in (uid, 0):
        return f"{path} is owned by uid {st.st_uid}, not by this daemon's user (uid {uid}) or root"
    if st.st_mode & 0o022 and not (folder and st.st_mode & stat.S_ISVTX):
        who = "its group and others" if st.st_mode & 0o022 == 0o022 else (
            "its group" if st.st_mode & 0o020 else "others")
        return f"{path} can be written by {who} (mode {st.st_mode & 0o7777:04o})"
    return None
