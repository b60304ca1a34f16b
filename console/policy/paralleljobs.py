"""The lines GNU parallel runs for the arguments given on its line (runners.nested_readings):
its command with each replacement string filled in, or the argument appended where it holds
none (`parallel -k {} ::: dd` runs dd, `parallel -k sh -c ::: dd` runs `sh -c dd`, `parallel -k
echo '$({})' ::: dd` runs `echo $(dd)`: checked, parallel 20221122). The command's words were
read with their arguments left after a `:::` (a reading of `{} ::: dd` runs `{}`): once a flag
was known to take no value, nothing read those arguments, and such lines were asked, not
refused (review h168).

An argument is shell-quoted where it fills a replacement string, as parallel does; a command
that is that string alone runs the argument as a line (`parallel {} ::: 'rm -rf ~'`). The
arguments of a `::::` file are not known. A replacement string is any `{...}` (`{}`, `{.}`,
`{2}`, `{= perl =}`, --plus's and --rpl's own) or the value of an option naming one (-I, -i,
--replace, --extensionreplace, ...); an argument fills it as it is and as those strings may
derive it (no extension, basename, dirname), so `{.}` with `dd.x` is dd; with --colsep, by column.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from console.policy.parallelopts import option_name, takes_next

_SOURCES = {":::", ":::+"}  # the words after one are arguments
_FILES = {"::::", "::::+"}  # the words after one name files of arguments
_PIECES = 8  # of an argument's columns and extensions read
_BRACED = re.compile(r"\{=.*?=\}|\{[^{}\s]*\}", re.S)
# parallel's options whose value names a replacement string of its own, by their names in the table
_NAMING = {"I", "replace|i", "extensionreplace|er", "basenamereplace|bnr", "dirnamereplace|dnr",
           "basenameextensionreplace|bner", "seqreplace", "slotreplace", "rpl"}


def jobs(words: list[str], starts: list[int], most: int) -> tuple[list[str], bool]:
    """The lines parallel runs from each of `starts` (its command's possible first words) with
    each argument given after a `:::` (or --arg-sep's own): at most `most` of them, and whether
    more were left."""
    options, sources, files, taken = _options(words)
    seps = [k for k, w in enumerate(words) if k and w in sources | files and k not in taken]
    if not seps:
        return [], False
    values: list[str] = []
    source, cols = "", [v for names, v in options if names == "col-sep|colsep|C" and v]
    for w in words[seps[0]:]:
        if len(values) > most:  # enough to say more were left
            break
        if w in sources | files:
            source = w
        elif source in sources:
            pieces = [w, *(p for c in cols for p in w.split(c)[:_PIECES])]
            values += [v for p in pieces for v in _derived(p) if v not in values]
    strings = [v.split()[0] for names, v in options if names in _NAMING and v.split()]
    # not from a word an option surely takes as its value (`-I XX echo XX ::: dd` runs echo)
    starts = [k for k in starts if k < seps[0] and not takes_next(words[k - 1], words[k])]
    found = [_filled(words[k : seps[0]], v, strings) for k in starts for v in values]
    return found[:most], len(found) > most


def _options(words: list[str]) -> tuple[list[tuple[str, str]], set[str], set[str], set[int]]:
    """The options given a value before the first separator, as (names, value), the words that
    separate arguments (`:::`, --arg-sep's) and files of them (`::::`, --arg-file-sep's), and
    where an option's value stands as a word of its own (`--arg-sep XX`: not a separator)."""
    found: list[tuple[str, str]] = []
    sources, files, taken = set(_SOURCES), set(_FILES), set()
    for k, w in enumerate(words[1:], start=1):
        if w in sources | files and k not in taken:
            break
        names, value = option_name(w) if w[:1] == "-" else (None, None)
        if names is None:
            continue
        if value is None:  # the next word, where the option surely takes it
            following = words[k + 1] if k + 1 < len(words) else ""
            value, taken = (following, taken | {k + 1}) if takes_next(w, following) else ("", taken)
        found.append((names, value))
        if names in ("arg-sep|argsep", "arg-file-sep|argfilesep") and value:
            (sources if names == "arg-sep|argsep" else files).update((value, value + "+"))
    return found, sources, files, taken


def _derived(value: str) -> list[str]:
    """The value, and what parallel's replacement strings may make of it: its base and dir
    names, less one extension or more (`{.}`, --plus's `{..}`)."""
    base = posixpath.basename(value)
    cut = [v[:i] for v in (value, base) for i in [m.start() for m in re.finditer(r"\.", v)][:_PIECES]]
    derived = (value, base, posixpath.dirname(value), *cut)
    return [v for v in dict.fromkeys(derived) if v]


def _filled(command: list[str], value: str, strings: list[str]) -> str:
    """The line parallel runs: its command's words joined for a shell, the value filling each
    replacement string (or appended where there is none)."""
    line = " ".join(command)
    if _BRACED.fullmatch(line) or line in strings:
        return value  # the command is the argument itself
    quoted = shlex.quote(value)
    filled = _BRACED.sub(lambda _: quoted, line)
    for s in strings:
        filled = filled.replace(s, quoted)
    return filled if filled != line else f"{line} {quoted}"
