"""A shell's own words: its options, where its operands start, and the command string of its
`-c` (and of `su --command`, `flock -c`, `script -c`): what unwrap.py reads as the command a
shell runs."""

from __future__ import annotations

import re
import shlex

_POSITIONAL_PARAMS = re.compile(r"\$(\{)?[@*0-9]")
# Shell options that take a value (`bash -c -o errexit STRING`), with - or +.
_SHELL_VALUE_OPTIONS = {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}
_COMMAND_LONG = ("--command", "--session-command")


def command_option(words: list[str]) -> list[str] | None:
    """The commands of `sh -c [options] [--] STRING [NAME ARGS...]`, `su --command=STRING`
    (or any abbreviation, or --session-command) and the like: the first operand after a -c
    (alone or in a cluster); when that string runs its positional parameters ("$@", $0, $1),
    its NAME and ARGS as a command too. None without a -c."""
    for k, w in enumerate(words[1:], start=1):
        name, eq, value = w.partition("=")
        if name.startswith("--") and len(name) > 2 and any(o.startswith(name) for o in _COMMAND_LONG):
            if eq:
                return [value]
            return [words[k + 1]] if k + 1 < len(words) else [""]
        if not (w.startswith("-") and not w.startswith("--") and "c" in w[1:]):
            continue
        j = past_shell_options(words, k + 1)[0]
        if j >= len(words):
            return [""]
        found, after = [words[j]], words[j + 1 :]
        if _POSITIONAL_PARAMS.search(words[j]) and after:
            found += [shlex.join(after), shlex.join(after[1:])] if len(after) > 1 else [shlex.join(after)]
        return found
    return None


def past_shell_options(words: list[str], j: int) -> tuple[int, bool]:
    """From words[j], past a shell's options (`-o errexit`, `+x`, `--`): the index of its first
    operand, and whether -s (read the script from standard input) was among them."""
    dash_s = False
    while j < len(words):
        x = words[j]
        if x == "--":
            return j + 1, dash_s
        if x in _SHELL_VALUE_OPTIONS:
            j += 2
        elif x.startswith(("-", "+")) and len(x) > 1:
            dash_s = dash_s or (x.startswith("-") and not x.startswith("--") and "s" in x[1:])
            j += 1
        else:
            break
    return j, dash_s
