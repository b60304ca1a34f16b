"""Commands that run what their words do not show, beyond what unwrap.py knows of wrappers and
input: those that set up what bash (or a program it starts) runs later (environment a program
runs as a command, variables bash expands or runs, such as PS4 for each `set -x` line, aliases,
the command hash table, history that `fc` or `!` brings back), shells that read a script
from a file already open (`bash /dev/fd/3 3<&0`, `--rcfile /dev/stdin`), and a variable of the
environment a builtin gives a value, which every program run after it in the line sees
(`export GIT_DIR=D; git status`, `printf -v PATH %s D; ls`: sets_environment).

unwrap.py marks such a part as running what its words do not show, so no rule allows it.
"""

from __future__ import annotations

import posixpath
import re

from console.policy.parts import ASSIGNMENT, CommandPart
from console.policy.reserved import reserved_word

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


# --- environment a builtin gives the programs that run after it (review s33, helper 123) -----

_DECLARES = {"declare", "typeset", "local", "readonly", "export"}
# POSIX's special builtins: sh keeps a prefix assignment to one (`HOME=x :`) for the rest of the line.
_SPECIAL = {":", ".", "source", "eval", "exec", "exit", "export", "readonly", "return", "set",
            "shift", "trap", "unset", "times", "break", "continue"}
_READ_VALUED = "adinNptu"  # read's getopt string a:d:ei:n:N:p:rst:u: (-a names an array)
# A name an arithmetic expression gives a value: `x=`, `x[i]+=`, `x<<=`, `x++`, `--x`.
_ARITH_SETS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[[^]]*\]\s*)?(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)"
                         r"|\+\+|--)|(?:\+\+|--)\s*([A-Za-z_][A-Za-z0-9_]*)")


def _given_names(program: list[str]) -> tuple[list[str], bool]:
    """The variables a builtin (or a loop, or arithmetic) gives a value, takes one from or
    removes, by name, and whether it exports them: `printf -v NAME`, `read [-a] NAME`,
    `mapfile NAME`, `for NAME in`, `getopts S NAME`, `wait -p NAME`, `unset NAME`, `let`,
    `((...))`, and `declare`, `typeset`, `local`, `readonly`, `export` with their `-x`."""
    name, args = program[0], program[1:]
    if name == "printf":
        return _printf_target(args), False
    if name == "read":
        options, operands = _read_options(args, _READ_VALUED)
        return operands + [v for o, v in options if o == "-a"], False
    if name in ("mapfile", "readarray"):
        return _read_options(args, _MAPFILE_VALUED)[1][:1], False
    if name in ("for", "select"):
        return args[:1], False
    if name == "getopts":
        return args[1:2], False
    if name == "wait":
        return [v for o, v in _read_options(args, "p")[0] if o == "-p"], False
    if name == "unset":
        options, operands = _read_options(args, "")
        return ([] if ("-f", "") in options and ("-v", "") not in options else operands), False
    if name == "let" or name.startswith("(("):
        return [m.group(1) or m.group(2) for w in args or [name] for m in _ARITH_SETS.finditer(w)], False
    if name not in _DECLARES:
        return [], False
    options, operands = _read_options(args, "", "-+")
    letters = {o[1] for o, _ in options}
    exported = name == "export" or "x" in letters
    if "p" in letters or (letters & {"f", "F"} and not exported):
        return [], False  # a listing, or functions only
    return [w.split("=", 1)[0].removesuffix("+") for w in operands], exported


def _in_environment(name: str, exported: bool) -> bool:
    """Whether a variable given a value reaches the environment of the programs started after
    it: one its command exports, or one that may already be exported: a name with a capital
    letter (HOME, PATH, GIT_DIR, LD_PRELOAD: bash exports what it inherited, and an exported
    variable's new value goes to every later program) or a proxy's (`https_proxy`)."""
    base = name.split("[", 1)[0]
    return bool(base) and (exported or base != base.lower() or base.lower().endswith("_proxy"))


def sets_environment(words: list[str], program: list[str]) -> str | None:
    """The variable a part gives a value (or removes) that the programs run after it in the
    line see in their environment, or None: a builtin's (see _given_names), and an assignment
    that outlives its part (`HOME=x` alone, or before a special builtin). One decision with the
    prefix assignment, which an allow rule only carries where it names it (`GIT_DIR=D git
    status`): `export GIT_DIR=D; git status` gives git the same environment. `set -a` (and `-o
    allexport`) exports every variable given a value after it."""
    names, exported = _given_names(program) if program else ([], False)
    if not program or program[0] in _SPECIAL:
        names += [w.split("=", 1)[0].removesuffix("+")
                  for w in words[: len(words) - len(program)] if ASSIGNMENT.match(w)]
    if program[:1] == ["set"]:
        options = _read_options(program[1:], "o")[0]
        if ("-a", "") in options or ("-o", "allexport") in options:
            return "every variable (set -a)"
        if ("-k", "") in options or ("-o", "keyword") in options:  # NAME=V anywhere is an export
            return "every NAME=VALUE word of a later command (set -k)"
    return next((n for n in names if _in_environment(n, exported)), None)


_FD_NAME = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fd_name_given(operators: list[str]) -> str | None:
    """`{NAME}>F`: bash gives NAME the new descriptor's number, in the shell itself when the
    command is a builtin (`pwd {PATH}>/dev/null; git status` ran ./11/git: review s33)."""
    return next((m.group(1) for op in operators if (m := _FD_NAME.match(op))
                 and _in_environment(m.group(1), False)), None)


def after_environment(parts: list[CommandPart], given: list[str | None]) -> None:
    """Marks unseen each part that may run after a part given a variable of the environment
    (given[k] for parts[k]): the parts after it, and where the line loops or defines a
    function (an earlier part may run again after it) every other part."""
    setters = [(j, n) for j, n in enumerate(given) if n][:2]  # the first two are enough
    if not setters:
        return
    again = any(p.functions or reserved_word(p.words) in _LOOPS for p in parts)
    for k, part in enumerate(parts):
        name = next((n for j, n in setters if j < k or (again and j != k)), None)
        if name is not None:
            part.unseen = True
            part.why_unseen = part.why_unseen or (
                f"an earlier command in the line gives {name} a value, which this program's "
                f"environment holds as a prefix `{name.split(' ')[0]}=...` would")


_LOOPS = ("while", "until", "for", "select")


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


def _read_options(args: list[str], valued: str, signs: str = "-") -> tuple[list[tuple[str, str]], list[str]]:
    """A builtin's options read as its getopt does (`-tC 'cmd'` too; `+x` where signs has
    `+`), `valued` the letters that take a value: ((sign + letter, value), ...) and the
    operands after them (past a `--`)."""
    found, k = [], 0
    while k < len(args) and args[k][:1] in tuple(signs):  # a lone `-` too, as before
        w, k = args[k], k + 1
        if w == "--":
            break
        for pos, letter in enumerate(w[1:], start=2):
            value = ""
            if letter in valued:
                value = w[pos:]
                if not value and k < len(args):
                    value, k = args[k], k + 1
            found.append((w[0] + letter, value))
            if letter in valued:
                break
    return found, args[k:]


def _c_values(words: list[str], valued: str) -> list[str]:
    """The values of a builtin's -C options (a command it runs), where `valued` holds the
    letters that take a value."""
    return [value for option, value in _read_options(words[1:], valued)[0] if option == "-C"]


def mapfile_callbacks(words: list[str]) -> list[str]:
    """The -C callbacks of `mapfile`/`readarray` (run for every line read)."""
    return _c_values(words, _MAPFILE_VALUED)


def completion_commands(words: list[str]) -> list[str]:
    """The -C commands of `compgen`/`complete` (run for the completions)."""
    return _c_values(words, _COMPLETION_VALUED)
