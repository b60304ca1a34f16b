"""Plain words read without argparse: known flags, `--option VALUE` or `--option=VALUE` with
a value not starting with "-", positional arguments in order, each value taken by its
parameter's type.

Why: argparse (with re, enum, gettext and locale behind it) and building a parser are about
10 ms of a CLI start (issue 17): `ps --json`, `run --wait -w DIR PROFILE` and `approve ID`
are plain words. Anything else, or where argparse would do more than this (a refused value,
a missing argument, a string default it converts, positionals it would share out another
way), gives None and argparse parses the words and says what is wrong.
tests/core/test_cli_parsing.py holds the values equal to argparse's for every command on
generated words.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from console.cli.parsing import Param

NOT_GIVEN = object()  # an argument not given before `--` (the words after it may give it)
_REFUSED = object()  # a value its parameter's type refused: argparse says why


def _value_as(param: Param, word: str) -> Any:
    """A word as argparse would store it for param, or _REFUSED where argparse would refuse."""
    from console.cli.value_types import Choice

    kind = param.type
    if kind is None:
        return word
    if isinstance(kind, Choice):  # argparse checks the word against the choices
        return word if word in kind.values else _REFUSED
    try:
        return kind(word)
    except Exception:  # noqa: BLE001 - argparse parses it again and says what is wrong
        return _REFUSED


def read_plainly(params: list[Param], argv: list[str], *,
                 tail_given: bool = False) -> dict[str, Any] | None:
    """argparse's values (parse_intermixed_args) for these words, or None (see the module)."""
    values: dict[str, Any] = {}
    options: dict[str, Param] = {}
    positionals: list[tuple[Param, str | None]] = []
    for param in params:
        if not param.flags:
            nargs = ("*" if param.nargs in ("*", "+") else "?") if tail_given else param.nargs
            if positionals and positionals[-1][1] is not None and not tail_given:
                return None  # before `--` they are all optional, and argparse fills them in order;
                # otherwise only the last may take more or fewer than one
            positionals.append((param, nargs))
            continue
        if param.nargs is not None:
            return None
        options.update(dict.fromkeys(param.flags, param))
        if param.is_flag:
            values[param.dest] = False  # store_true's default
        elif isinstance(param.default, str) and param.type is not None:
            return None  # argparse would convert it
        else:
            values[param.dest] = param.default
    words: list[str] = []
    given: set[str] = set()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        name, eq, attached = word.partition("=")
        param = options.get(name if eq and name.startswith("--") else word)
        if param is None or (param.is_flag and eq):
            return None
        if param.is_flag:
            values[param.dest] = True
        else:
            if eq:
                value = attached
            elif i < len(argv) and not argv[i].startswith("-"):
                value, i = argv[i], i + 1
            else:
                return None
            values[param.dest] = _value_as(param, value)
            if values[param.dest] is _REFUSED:
                return None
        given.add(param.dest)
    if any(p.required and p.dest not in given for p in options.values()):
        return None
    for param, nargs in positionals:
        if nargs is None:
            if not words:
                return None
            values[param.dest] = _value_as(param, words.pop(0))
        elif nargs == "?":
            if words:
                values[param.dest] = _value_as(param, words.pop(0))
            elif tail_given:
                values[param.dest] = NOT_GIVEN
            elif isinstance(param.default, str) and param.type is not None:
                return None  # argparse would convert it
            else:
                values[param.dest] = param.default
        else:  # "*" or "+": the last positional
            if nargs == "+" and not words:
                return None
            if not words and not tail_given:
                if param.default is not None or param.type is not None:
                    return None
                values[param.dest] = []
            elif not words:
                values[param.dest] = NOT_GIVEN
            else:
                values[param.dest] = [_value_as(param, word) for word in words]
                words = []
        if values[param.dest] is _REFUSED or (
                isinstance(values[param.dest], list) and _REFUSED in values[param.dest]):
            return None
    return None if words else values


def dash_value_said(message: str, words: Sequence[str]) -> str:
    """argparse reads a value that starts with a dash (`--search -rf`, `--since -5m`) as an
    option, and said the option "expected one argument", which the person had given: say why,
    and the spelling it takes (h192)."""
    head, _, said = message.partition(": ")
    if said != "expected one argument" or not head.startswith("argument "):
        return message
    flags = head.removeprefix("argument ").split("/")
    for word, after in zip(words, words[1:], strict=False):
        if word in flags and after.startswith("-"):
            return (f"{message}: {after!r} starts with a dash, so it was read as an option; "
                    f"give it as {word}={after}")
    return message
