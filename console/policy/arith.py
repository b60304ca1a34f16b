"""Where bash evaluates a variable's value as arithmetic, so that a subscript in that value runs
its `$(...)`: `x='a[$(cmd)]'; ((x))` runs cmd. The value may come from anywhere the reader does
not see whole (printf's escapes, `+=`, input read by `read`), so a command that evaluates a
name this way is one whose meaning the rules cannot see: the reader marks it opaque.
"""

from __future__ import annotations

import re

# A number, in any base bash reads (42, 0x1f, 16#ff, 64#_@): a literal, never a name.
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_@#]*")
_READS = re.compile(r"[A-Za-z_$`]")  # a name, `$x`, `${x}`, a substitution
_SUBSCRIPTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\[(.*)\]", re.S)  # NAME[SUBSCRIPT]...
# Builtins whose words name variables (a subscript in a name is arithmetic), and those of them
# whose -i (integer) or -n (nameref) makes every later value given that name arithmetic.
_TAKES_NAMES = {"read", "declare", "typeset", "local", "readonly", "test", "getopts", "wait",
                "mapfile", "readarray", "printf", "unset"}
_DECLARES = {"declare", "typeset", "local", "readonly"}
# bash's own integer variables (`declare -i` in a new bash lists them): like a name given -i,
# every value they are given is arithmetic. A word that names one bare (`read OPTIND`, `for
# RANDOM in`, `printf -v RANDOM`) or assigns it (`OPTIND=x`, `export SRANDOM+=x`).
_BASH_INTEGER = re.compile(r"^(-v)?(RANDOM|SRANDOM|OPTIND|HISTCMD)(\[.*\])?(\+?=|$)", re.S)


def reads_a_value(expression: str) -> bool:
    """Whether an arithmetic expression reads a variable (a name, `$x`): bash evaluates that
    variable's value as arithmetic too."""
    return bool(_READS.search(_NUMBER.sub("0", expression)))


def _printf_target(args: list[str]) -> list[str]:
    """The variable `printf -v NAME` writes (its format and arguments name none)."""
    if args[:1] == ["-v"]:
        return args[1:2]
    return [args[0][2:]] if args and args[0].startswith("-v") else []


def evaluates_a_value(program: list[str]) -> bool:
    """Whether a builtin's words make bash evaluate a variable's value as arithmetic: `let x`,
    a subscript that reads one (`printf -v 'a[x]'`, `read 'a[x]'`, `test -v 'a[x]'`), or the
    integer attribute or a nameref: every value a later plain assignment or `read` gives that
    name is then evaluated (`declare -i n; n=x`, `declare -n r='a[x]'; r=1`), where the reader
    never looks."""
    if not program:
        return False
    name, args = program[0], program[1:]
    if name == "let":
        return any(reads_a_value(a) for a in args)
    if name not in _TAKES_NAMES:
        return False
    if name == "printf":
        args = _printf_target(args)
    attributes = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    if name in _DECLARES and ("i" in attributes or "n" in attributes):
        return True  # `declare -i n; n=x` and `declare -n r='a[x]'; r=1` evaluate x later
    for arg in args:
        subscript = _SUBSCRIPTED.match(arg)
        if subscript and reads_a_value(subscript.group(1)):
            return True
    return False


def names_bash_integer(words: list[str]) -> bool:
    """Whether a command's words give one of bash's own integer variables a value (they may:
    a value given them is evaluated as arithmetic, as evaluates_a_value says)."""
    return any(_BASH_INTEGER.match(w) for w in words)
