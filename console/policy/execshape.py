"""What a command's words mean to the program: its flags as a set, its positional words in order,
and the options known to execute another program or write a file.

Exec rules use this in two directions. Forbid and ask rules match by shape, so `rm -fr /`,
`rm -r -f /` and `rm --recursive --force /` are all `rm -rf /`, and `git push origin +main` is a
forced push. Allow rules and grants use the risky-option list: a rule for `rg` does not allow
`rg --pre ./evil.sh`, which runs a program, unless the rule names that option itself.

Both lists err towards matching: a flag's argument may be read as a positional word, a cluster of
short flags may contain a letter that is really an argument. That only makes a forbid or ask rule
match more often, or an allow rule less often.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from console.paths import INSIDE_HOME
from console.policy.chmodes import same_mode
from console.policy.folders import resolve
from console.policy.gitwords import skip_git_options
from console.policy.parts import (
    CommandPart,
    ParseError,
    command_words,
    redirection_words,
    write_targets,
)
from console.policy.riskyopts import (
    dashes_end_options,
    has_table,
    risky_options,
    written_operand,
)
from console.policy.unwrap import (
    CACHED,
    WORDS_CACHED,
    expand,
    forget_variants,
    strict_variants,
    unwrap_stages,
)
from console.policy.wrappers import NESTED_RUNNERS

# Long and short spellings of one flag, per program, folded to one name.
_ALIASES: dict[str, dict[str, str]] = {
    "rm": {"R": "r", "recursive": "r", "force": "f", "dir": "d"},
    "cp": {"R": "r", "recursive": "r", "force": "f"},
    "mv": {"force": "f"},
    "chmod": {"recursive": "R"},
    "chown": {"recursive": "R"},
    "chgrp": {"recursive": "R"},
    "git": {"force": "f"},
    "shred": {"remove": "u", "force": "f"},
}
# Programs whose first positional word is a subcommand: a rule's subcommand must be the
# command's subcommand (`git push` is not `git log -- push`).
_SUBCOMMANDS = {"git", "pip", "pip3", "npm", "pnpm", "yarn", "cargo", "docker", "podman",
                "kubectl", "go", "apt", "apt-get", "brew", "gh", "uv", "poetry", "systemctl"}
# Options that take one separate argument, per program, so it is not read as a positional.
_TAKES_ARG: dict[str, set[str]] = {
    "git": {"-m", "-C", "-c", "-o", "--push-option", "--repo", "--receive-pack", "--exec"},
    "chmod": {"--reference"}, "chown": {"--reference", "--from"},
}


def _unabbreviated(name: str, aliases: dict[str, str]) -> str:
    """GNU getopt takes any unambiguous prefix of a long option (`rm --recur --for /`): the
    flag it stands for among the program's known long options, else the name as written."""
    longs = {a: f for a, f in aliases.items() if len(a) > 1 and a.startswith(name)}
    return next(iter(longs.values())) if name and len(set(longs.values())) == 1 else name


@dataclass(frozen=True)
class Shape:
    program: str
    flags: frozenset[str]
    positionals: tuple[str, ...]


def _path(word: str) -> str:
    """`//`, `/.`, `/tmp/..` all name `/`: fold the spellings of one absolute path, of one below
    home (`~/`, `~/.` are `~`, and so is the home folder's own path: see _home_spelling), and
    of the working folder (`./`, `./.` and bash's `~+` are `.`). A `~/..` that climbs out of home
    is kept as written: which folder it names depends on HOME (see may_stand_for)."""
    if word == "~+" or word.startswith("~+/"):
        word = "." + word[2:]
    if word == "~" or word.startswith("~/"):
        folded = posixpath.normpath(word)
        return folded if folded == "~" or folded.startswith("~/") else word
    if word.startswith("/"):
        return _home_spelling(posixpath.normpath(re.sub("/+", "/", word)) or "/")
    if word == "." or word.startswith("./"):
        return posixpath.normpath(word)
    return word


@functools.cache
def _homes() -> tuple[str, ...]:
    """The folders `~` may be: the sandbox's HOME, and this process's user's home (an
    unsandboxed run's HOME, console/sandbox/none.py). Never `/`: every path would be below it."""
    import pwd

    try:
        own = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        own = ""
    found = [INSIDE_HOME, posixpath.normpath(own) if own.startswith("/") else ""]
    return tuple(dict.fromkeys(h for h in found if h not in ("", "/")))


def _home_spelling(path: str) -> str:
    """An absolute path in a home folder, written from `~`: `rm -rf /home/agent` is `rm -rf ~`
    to a forbid rule (either home: a rule only matches more often)."""
    for home in _homes():
        if path == home or path.startswith(home + "/"):
            return "~" + path[len(home):]
    return path


def _tilde_unknown(word: str) -> bool:
    """Whether bash's tilde expansion makes the word a folder the rules cannot know: another
    user's home (`~root`), the previous or a stacked folder (`~-`, `~2`, `~+1`), or a climb out
    of home (`~/..`, whose target depends on which folder HOME is)."""
    head = word.split("/", 1)[0]
    if head[:1] != "~" or head == "~+":
        return False
    return head != "~" or not posixpath.normpath(word).startswith("~")


# A word chmod reads as a mode, not options: `-` then only mode letters, digits and operators
# (its getopt string lists them all: `-w,a+rwx`, `-0,a=rwx`, `-u,a=rwx`: review s31).
_CHMOD_MODE = re.compile(r"-[rwxXstugoa0-7,=+-]+")


def shape_of(words: Sequence[str]) -> Shape | None:
    """The shape of a command's words (wrappers already removed); None for no words."""
    if not words:
        return None
    program = words[0]
    aliases = _ALIASES.get(program, {})
    takes_arg = _TAKES_ARG.get(program, set())
    flags: set[str] = set()
    positionals: list[str] = []
    k, n, options_end = 1, len(words), False
    while k < n:
        w = words[k]
        if options_end or w == "-" or not w.startswith("-") or (
                program == "chmod" and w[1:2] != "-" and _CHMOD_MODE.fullmatch(w)):  # `-w,a+rwx`: a mode
            positionals.append(_path(w))
        elif w == "--":
            options_end = True
        elif w.startswith("--"):
            name = w[2:].split("=", 1)[0]
            flag = aliases.get(name, _unabbreviated(name, aliases))
            # A one-letter long option no alias names (`git reset --h`, a prefix of --hard) is
            # kept apart from the short flag of that letter (-h): `--h`, a prefix to _has_flag.
            flags.add(f"--{flag}" if len(flag) == 1 and flag == name else flag)
            if w in takes_arg:
                k += 1
        else:
            for letter in w[1:]:
                flags.add(aliases.get(letter, letter))
            if w in takes_arg:
                k += 1
        k += 1
    if program == "chmod" and any(_ref_option(f) for f in flags):
        # `--reference=F` copies F's mode: any mode, so a glob may stand for it (may_reach asks
        # a forbid or ask rule on a mode; review s32, helper 115: `forbid chmod -R 777`).
        positionals.insert(0, "*")
    if program == "git" and positionals and may_stand_for(positionals[0], "push"):
        # `git push origin +main` forces that ref: a forced push, whatever it is spelled as.
        if any(p.startswith("+") for p in positionals[1:]):
            flags.add("f")
        positionals = [p.lstrip("+") if i else p for i, p in enumerate(positionals)]
    return Shape(program, frozenset(flags), tuple(positionals))


# Each forbid and ask rule compares its shape with the same command's: the command's shapes
# are worked out once per command's words, not once per rule (keyed by the words: never stale).
def stage_shapes(words: tuple[str, ...]) -> tuple[Shape | None, ...]:
    """The shape of each command the words run, through their wrappers (kept for short
    commands only: unwrap.WORDS_CACHED)."""
    return (_cached_shapes if len(words) <= WORDS_CACHED else _last_long_shapes)(words)


def _shapes(words: tuple[str, ...]) -> tuple[Shape | None, ...]:
    return tuple(shape_of(stage) for stage in unwrap_stages(list(words)))


_cached_shapes = functools.lru_cache(maxsize=CACHED)(_shapes)
# A long command's shapes are kept for the rules that look at it next (one decision asks each
# forbid and ask rule in turn: `nice` eighteen times, then 2,000 words, worked its shapes out
# 444 times, ~0.4 s), and only a few of them, so a flood of long lines holds little memory.
_last_long_shapes = functools.lru_cache(maxsize=4)(_shapes)


def forget_worked_out() -> None:
    """Drop what earlier decisions worked out from commands' words (a benchmark measures a
    decision that starts from nothing; nothing else needs it: the results never go stale)."""
    _cached_shapes.cache_clear()
    _last_long_shapes.cache_clear()
    forget_variants()


def _has_flag(flag: str, flags: frozenset[str]) -> bool:
    """The flag, or a long option's abbreviation of it (`git reset --ha` is --hard: git and GNU
    getopt take any unambiguous prefix; an ambiguous one is refused by the program, so reading
    it as the rule's flag only makes the rule match more often)."""
    return flag in flags or (len(flag) > 1 and any(
        len(f) > 1 and flag.startswith(f.removeprefix("--")) for f in flags))


_GLOB = re.compile(r"[*?[]")  # a character that makes a word a glob


def covers(rule: Shape, command: Shape, same: Callable[[str, str], bool] = str.__eq__) -> bool:
    """Does a forbid or ask rule's shape reach this command? Same program, every flag of the rule
    present in any order or spelling, the rule's positional words in order among the command's
    (each compared as same(command's word, rule's word) says)."""
    # A globbed option word (`--f*`, `-?`) may expand to a file named like any option.
    globbed_flag = same is not str.__eq__ and any(_GLOB.search(f) for f in command.flags)
    if not _same_program(rule.program, command.program) or not (globbed_flag or all(
            _has_flag(f, command.flags) for f in rule.flags)):
        return False
    want, have = list(rule.positionals), list(command.positionals)
    if command.program == "chmod":  # a mode also as the bits it leaves: only ever matching more
        same = functools.partial(same_mode, same)
    if command.program in _SUBCOMMANDS and want:
        if not have or not same(have[0], want[0]):
            return False
        want, have = want[1:], have[1:]
    it = iter(have)
    return all(any(same(h, w) for h in it) for w in want)


def _ref_option(flag: str) -> bool:
    """chmod's --reference in an unambiguous abbreviation (`--ref`; `--re` is also --recursive)."""
    return len(flag) >= 3 and "reference".startswith(flag)


# Programs sold under several names: a rule on the first reaches each (`mkfs.ext4` is mkfs's
# own front end for ext4, mke2fs what it runs).
_ALSO_NAMED = {"mkfs": ("mke2fs", "mkdosfs", "mkexfatfs", "mkntfs"), "fsck": ("e2fsck",)}


def _same_program(rule_program: str, program: str) -> bool:
    return program == rule_program or rule_program in _ALSO_NAMED and (
        program.startswith(rule_program + ".") or program in _ALSO_NAMED[rule_program])


def may_stand_for(word: str, rule_word: str, folder: str | None = None) -> bool:
    """Whether bash may turn the command's word into the rule's: the same word, or a glob that
    may match it (`pu*` is `push` where a file has that name) or, for a path, any glob among
    its entries: it may match every one of them (`/*` or `/[!x]*` empties `/` as `rm -rf /`
    would, `*` is `.`'s entries, `/*/*` empties every folder in `/`). A relative path is read
    in the folder the line moved to (`cd / && rm -rf *`): one the rules cannot know, or a climb
    out of the run's own (`../*`), may be any folder (folders.py)."""
    if word == rule_word:
        return True
    if rule_word.startswith(("/", "~", ".")) and not word.startswith("-"):
        resolved = resolve(folder, word)
        if resolved is None:
            return True  # some folder: maybe the rule's own
        if resolved != word and rule_word[:1] != ".":  # `.` is whatever folder it runs in
            return may_stand_for(_path(resolved), rule_word)
    if _tilde_unknown(word):
        return rule_word.startswith(("/", "~", "."))  # some folder: maybe the rule's own
    if not _GLOB.search(word):
        return False
    if rule_word[:1] == "~" and word[:1] == "/":  # a glob over home's own path: `/home/*`
        return any(may_stand_for(word, home + rule_word[1:]) for home in _homes())
    if (rule_word[:1] == "~") != (word[:1] == "~"):
        return False  # what a glob makes is never tilde-expanded: only `~/*` stands for `~`'s
    if _path_glob(rule_word, word):
        return True
    if not rule_word.startswith(("/", "~", ".")):
        return False
    inside = rule_word.rstrip("/").split("/")  # `/` is [""], `~/src` is ["~", "src"]
    names = word.rstrip("/").split("/")
    if rule_word.rstrip("/") == "." and not word.startswith(("/", "~", "./")):
        names = [".", *names]
    return len(names) > len(inside) and all(
        fnmatch.fnmatchcase(n, g) for n, g in zip(inside, names, strict=False)) and all(
        _GLOB.search(g) for g in names[len(inside):])


def _path_glob(path: str, glob: str) -> bool:
    """Whether the glob may match the path as bash matches one: name by name (a `*` never
    spans a `/`), with any of its names' characters."""
    names, globs = path.split("/"), glob.split("/")
    return len(names) == len(globs) and all(
        fnmatch.fnmatchcase(n, g) for n, g in zip(names, globs, strict=True))


# python's options before `-m`: those taking the next word as their value, and plain flags;
# `coverage run`'s, before its own `-m`.
_PYTHON_VALUED = {"-X", "-W", "--check-hash-based-pycs"}
_COVERAGE_VALUED = {"--rcfile", "--data-file", "--concurrency", "--context", "--include",
                    "--omit", "--source"}
_PYTHON = re.compile(r"^(?:python|pypy)(\d+(\.\d+)?)?$")


def _as_module(words: list[str]) -> list[str]:
    """`python3 -m pytest ARGS` and `coverage run -m pytest ARGS` as `pytest ARGS` (the module
    is the program whose options count), through each other; other words as they are."""
    while words:
        if _PYTHON.match(words[0]):
            k, valued = 1, _PYTHON_VALUED
        elif words[:2] == ["coverage", "run"]:
            k, valued = 2, _COVERAGE_VALUED
        else:
            return words
        while k < len(words) and words[k].startswith("-") and words[k] != "-m":
            k += 2 if words[k] in valued else 1
        if not (k + 1 < len(words) and words[k] == "-m"):
            return words
        words = words[k + 1:]
    return words


def _options_past(words: Sequence[str], own: int) -> list[str]:
    """risky_options for the words past a rule's `own` first ones, read as words[0]'s."""
    sub = skip_git_options(list(words))[1:2] if words[:1] == ["git"] else []
    return risky_options(words[0] if words else "", words[own:], sub[0] if sub else "",
                         before=words[own - 1] if 0 < own <= len(words) else "")


# --- rules and grant patterns, read once ------------------------------------------------------


@dataclass(frozen=True)
class CommandPattern:
    """One exec rule or grant pattern, read once by the same parser that reads commands."""

    part: CommandPart

    @cached_property
    def words(self) -> tuple[str, ...]:
        return tuple(self.part.words)

    @cached_property
    def program_words(self) -> tuple[str, ...]:
        return tuple(command_words(self.part))

    @cached_property
    def writes(self) -> frozenset[str]:
        return frozenset(write_targets(self.part))

    @cached_property
    def shape(self) -> Shape | None:
        return shape_of(unwrap_stages(list(self.program_words))[0])

    def reaches(self, part: CommandPart) -> bool:
        """For forbid and ask rules and deny grants: the literal words as a prefix (as written
        or through wrappers), or the same program with the same flags in any order or spelling."""
        n = len(self.words)
        if any(n <= len(v) and tuple(v[:n]) == self.words for v in strict_variants(part)):
            return True
        mine = self.shape
        if mine is None:
            return False
        return any(theirs is not None and covers(mine, theirs)
                   for theirs in stage_shapes(tuple(command_words(part))))

    def may_reach(self, part: CommandPart) -> bool:
        """For forbid and ask rules: whether a glob in the command may expand to this rule's
        words (see may_stand_for). Not known to be the rule's command, so never allowed."""
        mine = self.shape
        same = functools.partial(may_stand_for, folder=part.folder)
        return mine is not None and any(
            theirs is not None and covers(mine, theirs, same)
            for theirs in stage_shapes(tuple(command_words(part))))

    def allows(self, part: CommandPart) -> bool:
        """For allow rules and wide grants: the literal words as a prefix, and nothing past them
        that writes a file or runs a program unless the pattern names it."""
        return self.prefix_of(part) and self.beyond(part) is None

    def prefix_of(self, part: CommandPart) -> bool:
        own, words = self.program_words, command_words(part)
        return len(own) <= len(words) and tuple(words[: len(own)]) == own

    def beyond(self, part: CommandPart) -> str | None:
        """What a command does past this pattern's words that an allow may not carry: files its
        redirections write, options that run a program or write a file. None when nothing."""
        words = command_words(part)
        writes = sorted(set(write_targets(part)) - self.writes)
        risky = _options_past(words, len(self.program_words))
        out = written_operand(words)
        if out is not None and out[0] >= len(self.program_words) and words[out[0]] not in self.writes:
            writes = sorted({*writes, words[out[0]]})
        # The program's own tables by its name, when the words start with a path, a wrapper or
        # an assignment (`timeout 30 find`, `/usr/bin/sort`, `LC_ALL=C sort`; review s33), or
        # a runner runs it (`npm x -- find`: all its words, the rule does not name it).
        inner = _as_module(unwrap_stages(words, git_options=True)[-1])
        if inner and inner[0] != words[0]:
            mine = _as_module(unwrap_stages(list(self.program_words), git_options=True)[-1])
            own = len(mine) if inner[:len(mine)] == mine else 0
            if own or has_table(inner[0]):  # else only the options read wide for any program
                risky += [w for w in _options_past(inner, own) if w not in risky]
            out = written_operand(inner)
            if out is not None and out[0] >= own and out[1] not in self.writes:
                writes = sorted({*writes, out[1]})
        said = ([f"writes {', '.join(w or '(no target)' for w in writes)}"] if writes else []) + (
            [f"has {', '.join(risky)}"] if risky else [])
        if self._glob_past(part):
            said.append("a glob that may expand to a file named like an option, such as "
                        "--pre=sh; write ./* instead of *")
        return "; ".join(said) or None

    def _glob_past(self, part: CommandPart) -> bool:
        """Whether a word past this pattern's own, before a `--`, may glob into an option."""
        if not part.globs:
            return False
        kept = [i for i in range(len(part.words)) if i not in redirection_words(part)]
        before = ""
        for i in kept[len(self.program_words):]:
            word = part.words[i]
            if word == "--" and dashes_end_options(before):  # `sort -T -- *`: the -T's value
                return False
            if i in part.globs:
                return True
            before = word
        return False

    def is_exactly(self, part: CommandPart) -> bool:
        return part.words == self.part.words and part.redirects == self.part.redirects


def compile_pattern(text: str) -> CommandPattern:
    """The one reading of an exec rule or exec grant pattern; ValueError says what is wrong."""
    if not text.strip():  # not "no ;, &&, ..." (h192: `policy shadow ""`)
        raise ValueError("a rule is one command: this one is empty")
    try:
        parts = expand(text)
    except ParseError as exc:
        raise ValueError(f"cannot read it as shell words ({exc})") from None
    # A program whose command is read as a nested one (gosu, perf, ...: runners.nested_readings)
    # may be named with its words: what it runs is still looked at by forbid and ask rules.
    if not parts or parts[0].opaque or parts[0].nested or len(parts) > 1 and not (
            runs_nested(parts[0]) and all(p.nested for p in parts[1:])):
        raise ValueError("a rule is one plain command: no ;, &&, ||, |, $(...), backticks or $'...'")
    if not command_words(parts[0]):
        raise ValueError("a rule needs a command, not only a redirection")
    return CommandPattern(parts[0])


def runs_nested(part: CommandPart) -> bool:
    """Whether the part runs, or is wrapped in, a program whose command is read as nested."""
    return any(stage[:1] and stage[0] in NESTED_RUNNERS for stage in unwrap_stages(command_words(part)))


def rule_words(text: str) -> tuple[str, ...]:
    """The words of one exec rule or exec grant pattern; ValueError says what is wrong."""
    return compile_pattern(text).words
