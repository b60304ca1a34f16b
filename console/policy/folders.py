"""Which folder a relative path names: the working folder a line may have changed before the
command (`cd / && rm -rf *` is `rm -rf /*`), or a wrapper's (`env -C / rm -rf *`).

A part's folder (CommandPart.folder) is None for the run's own working folder, an absolute or
`~` path where the line `cd`ed to one written out, and UNKNOWN where it moved somewhere the
rules cannot know (`cd -`, `popd`, `cd "$x"`, a `..` above a folder not known, CDPATH). unwrap.py
follows it from part to part; execshape.may_stand_for resolves a relative word against it.
"""

from __future__ import annotations

import posixpath
import re

UNKNOWN = ""  # moved, to a folder the rules cannot know
_MOVES = {"cd", "pushd", "popd"}
# Wrapper options that run the command in another folder: env -C/--chdir, sudo -D/--chdir,
# unshare -w/--wd, nsenter -w/--wdns (a cluster holding one of the letters counts too).
_CHDIR_LONG = ("--chdir", "--wd", "--wdns")
_CHDIR_SHORT = re.compile(r"^-[A-Za-z]*[CDw]")


def _plain(word: str) -> bool:
    """Whether a word is a folder as written (no expansion the reader leaves to bash)."""
    return not any(c in word for c in "$`*?[{")


def _after_cd(folder: str | None, args: list[str], cdpath: bool) -> str | None:
    """The folder after `cd ARGS` (or pushd) from folder."""
    operands = [a for a in args if not (a.startswith("-") and a not in ("-", "--"))]
    operands = [a for a in operands if a != "--"]
    if not operands:
        return "~"  # cd alone: HOME
    target = operands[0]
    if target == "-" or target.startswith("+") or not _plain(target):
        return UNKNOWN  # the previous folder, a folder-stack entry, an expansion
    if target.startswith(("/", "~")):
        return _known(posixpath.normpath(target))
    if folder is None:
        # Below the run's own folder, unless it climbs (`cd ..` may be home or `/`) or CDPATH
        # was given a value in the line (`CDPATH=/; cd home` is /home).
        return None if ".." not in target.split("/") and not cdpath else UNKNOWN
    return UNKNOWN if folder == UNKNOWN else _known(posixpath.join(folder, target))


def _known(path: str) -> str:
    """A folder written out, or UNKNOWN where it climbs out of home (`~/..`: HOME's depth)."""
    folded = posixpath.normpath(path)
    return folded if folded.startswith(("/", "~")) else UNKNOWN


def moves(program: list[str]) -> bool:
    """Whether the program changes the working folder (cd, pushd, popd)."""
    return bool(program) and program[0] in _MOVES


def folder_after(folder: str | None, program: list[str], cdpath: bool) -> str | None:
    """The working folder for the parts after this one (the program its words run), where
    cdpath says whether the line gives CDPATH a value (it puts a relative folder anywhere)."""
    if not moves(program):
        return folder
    if program[0] == "popd":
        return UNKNOWN  # back to a folder the stack holds
    return _after_cd(folder, program[1:], cdpath)


def own_folder(folder: str | None, wrapper_words: list[str]) -> str | None:
    """The folder this part's program runs in: a wrapper's chdir option moves it."""
    for w in wrapper_words:
        if w.startswith(_CHDIR_LONG) or _CHDIR_SHORT.match(w):
            return UNKNOWN
    return folder


def resolve(folder: str | None, word: str) -> str | None:
    """A relative path word as a path from the folder it is read in: absolute or `~`-based when
    the folder is known, None when the word may name any folder (the folder is unknown, or the
    word climbs above the run's own folder with `..`), the word itself when it needs nothing."""
    if word.startswith(("/", "~")):
        return word
    if folder is None:
        return None if word == ".." or word.startswith("../") else word
    if folder == UNKNOWN:
        return None
    path = _known(posixpath.join(folder, word))
    return None if path == UNKNOWN else path
