"""Commands that run what their words do not show, beyond what unwrap.py knows of wrappers and
input: those that set up what bash (or a program it starts) runs later (environment a program
runs as a command, variables bash expands or runs, such as PS4 for each `set -x` line, aliases,
the command hash table, history that `fc` or `!` brings back), and shells that read a script
from a file already open (`bash /dev/fd/3 3<&0`, `--rcfile /dev/stdin`).

unwrap.py marks such a part as running what its words do not show, so no rule allows it.
"""

from __future__ import annotations

import posixpath
import re

# Environment a program (git, a pager's user, ssh) runs as a command or reads config from, bash's
# exported functions (env 'BASH_FUNC_ls%%=() {...}' bash -c ls runs that ls), BASH_ENV and ENV
# (a file a shell reads first), and bash's own tables of aliases and hashed commands
# (`BASH_CMDS[ls]=/usr/bin/env` makes `ls` run env, as `hash -p` does), and the options a new
# bash takes from its environment (`env SHELLOPTS=history:histexpand bash`, `BASHOPTS`).
_RUNS_NAMES = (r"GIT_SSH_COMMAND|GIT_SSH|GIT_PAGER|GIT_EDITOR|GIT_SEQUENCE_EDITOR|"
               r"GIT_EXTERNAL_DIFF|GIT_ASKPASS|SSH_ASKPASS|GIT_PROXY_COMMAND|"
               r"GIT_CONFIG_PARAMETERS|GIT_CONFIG_COUNT|GIT_CONFIG_KEY_\d+|"
               r"GIT_CONFIG_VALUE_\d+|GIT_CONFIG_GLOBAL|GIT_CONFIG_SYSTEM|GIT_CONFIG|"
               r"GIT_EXEC_PATH|GIT_TEMPLATE_DIR|PAGER|EDITOR|VISUAL|LESSOPEN|LESSCLOSE|"
               r"BASH_ENV|ENV|BASH_ALIASES|BASH_CMDS|SHELLOPTS|BASHOPTS")
# Given a value (`+=` appends to an unset one: a whole value too, `BASH_CMDS[ls]=` an entry).
_GIVES_VALUE = re.compile(rf"^(?:{_RUNS_NAMES}|BASH_FUNC_.+%%)(?:\[.*\])?\+?=", re.S)
# Named bare, as a builtin that gives a variable a value names it (`read -r PS4`): these and the
# prompt strings and PROMPT_COMMAND, whose value an assignment shows but `read` does not.
_NAMED = re.compile(rf"^(?:{_RUNS_NAMES}|PS[0-4]|PROMPT_COMMAND)(?:\[.*\])?$", re.S)
# Shells that take bash's -H (history expansion) on their command line.
_HISTORY_SHELLS = ("bash", "sh", "rbash")
# Builtins (and loops) that give the variables they name a value the words do not show.
_GIVES_NAMED = {"read", "mapfile", "readarray", "for", "select"}


def _printf_target(args: list[str]) -> list[str]:
    """The variable `printf -v NAME` (or `-vNAME`) writes; its format and arguments name none."""
    for k, arg in enumerate(args):
        if arg == "-v":
            return args[k + 1 : k + 2]
        if arg.startswith("-v"):
            return [arg[2:]]
        if not arg.startswith("-") or arg == "--":
            break
    return []


def _named_by_builtin(program: list[str]) -> bool:
    """`read -r PS4`, `mapfile -t PS4`, `printf -v PS4 ...`, `for PS4 in ...`: a variable bash
    runs or expands later, or that a program runs, given a value the reader never sees."""
    name, args = program[0], program[1:]
    if name == "printf":
        names = _printf_target(args)
    elif name in ("for", "select"):
        names = args[:1]
    elif name in _GIVES_NAMED:
        names = args
    else:
        return False
    return any(_NAMED.match(w) for w in names)


def _defines_alias(program: list[str]) -> bool:
    """`alias NAME=VALUE`: VALUE is the start of every later command that begins with NAME (a
    keyword, `eval`, `ls |`), which the reader never puts together. Listing one is fine."""
    return program[0] == "alias" and any("=" in w for w in program[1:])  # `alias -- -x=eval` too


def _brings_back_history(program: list[str]) -> bool:
    """`fc` other than its listing (`fc -l`) runs a command from the history list, changed by
    `old=new` or an editor; `set -H` and `shopt -o histexpand` turn on history expansion, which
    rewrites later lines (`!:1-$`, `^old^new`) before bash reads them."""
    name, args = program[0], program[1:]
    options = [a for a in args if a.startswith("-") and a != "--"]
    if name == "fc":
        return not any("l" in a[1:] for a in options)
    if name in ("set", *_HISTORY_SHELLS):  # `bash -H -o history <<< ...` expands its script
        # An interactive shell (`bash -i <<< ...`) has history expansion on from the start.
        letters = "Hi" if name != "set" else "H"
        return "histexpand" in args or any(
            c in a[1:] for a in options if a[:2] != "--" for c in letters)
    if name == "shopt":
        return "histexpand" in args and not any("u" in a[1:] for a in options)
    return False


def sets_up_later_runs(words: list[str], program: list[str]) -> bool:
    """Whether a command (its words, and the program they run after wrappers) sets up a command
    the rules never see: see the module docstring."""
    if any(_GIVES_VALUE.match(w) for w in words):
        return True
    if not program:
        return False
    return _named_by_builtin(program) or _defines_alias(program) or _brings_back_history(program)


# A file name that is an open file of the shell's (its standard input under any spelling:
# `//dev/stdin`, `/dev/./stdin`, `/proc/thread-self/fd/0`, `/dev/fd/3` with `3<&0`), anything
# under /dev or /proc, and the names those are by from their folder (`cd /dev; bash stdin`).
_OPEN_FILE = re.compile(r"^(?:-|/dev/.*|/proc/.*|(?:.*/)?stdin|(?:.*/)?fd/[0-9]+|[0-9]+)$", re.S)
# Files an interactive shell (`bash -ic`) reads first, as BASH_ENV names one for any shell.
_STARTUP_OPTIONS = ("--rcfile", "--init-file")


def names_open_file(name: str) -> bool:
    """Whether a shell's script file (or `.`'s) may be a file the line itself fills: its input."""
    folded = name if name == "-" else posixpath.normpath(re.sub("/+", "/", name))
    return bool(_OPEN_FILE.match(folded))


def reads_a_startup_file(shell: list[str]) -> bool:
    """`bash --rcfile FILE -ic CMD`: FILE runs first, and the rules never see it."""
    return any(w.split("=", 1)[0] in _STARTUP_OPTIONS for w in shell[1:])


_MAPFILE_VALUED = "duncOCs"  # mapfile's getopt string d:u:n:O:tC:c:s: (t takes nothing)
_COMPLETION_VALUED = "oAGWFCXPS"  # compgen's and complete's options that take a value


def _c_values(words: list[str], valued: str) -> list[str]:
    """The values of a builtin's -C options (a command it runs), its options read as getopt
    does (`-tC 'cmd'` too), where `valued` holds the letters that take a value."""
    found, k = [], 1
    while k < len(words) and words[k].startswith("-") and words[k] != "--":
        w, k = words[k], k + 1
        for pos, letter in enumerate(w[1:], start=2):
            if letter in valued:
                value = w[pos:]
                if not value and k < len(words):
                    value, k = words[k], k + 1
                if letter == "C":
                    found.append(value)
                break
    return found


def mapfile_callbacks(words: list[str]) -> list[str]:
    """The -C callbacks of `mapfile`/`readarray` (run for every line read)."""
    return _c_values(words, _MAPFILE_VALUED)


def completion_commands(words: list[str]) -> list[str]:
    """The -C commands of `compgen`/`complete` (run for the completions)."""
    return _c_values(words, _COMPLETION_VALUED)
