"""A bash glob as a regular expression, for the names a globbed program word may name (unwrap.py).
fnmatch reads `[^x]` as `^` or `x` and `[[:alpha:]]` as a set of `[:alph` followed by `]`, where
bash reads a negation and a character class: `/usr/bin/n[^x]ce rm -rf ~` and `/usr/bin/[[:lower:]]ice
rm -rf ~` run nice, and were not seen to name it (review h161). Bash's brackets are written in
fnmatch's spelling and fnmatch.translate does the rest (its stars do not backtrack: `****...x`
on a line stays fast). Extglobs are not read here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

# ASCII ranges in fnmatch's spelling; none starts with `!` or holds `]` (they would end the set).
_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "lower": "a-z", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f", "space": " \t\n\r\x0b\x0c", "blank": " \t", "word": "a-zA-Z0-9_",
    "punct": "\"-/:-@[-`{-~!", "graph": "\"-~!", "print": " -~", "cntrl": "\x00-\x1f\x7f",
}


def _bracket(glob: str, i: int) -> tuple[str, int] | None:
    """The bracket expression at glob[i] (`[`) in fnmatch's spelling (`?` where it holds a
    class not known), and the index past it; None when it is not closed (`[` is itself)."""
    j, parts, known, unclosed = i + 1, [], True, set()
    negate = j < len(glob) and glob[j] in "!^"
    j += 1 if negate else 0
    first = True
    while j < len(glob):
        c = glob[j]
        if c == "]" and not first:
            body = "".join(parts)
            if not known or not body:
                return "?", j + 1
            return "[" + ("!" if negate else "") + body + "]", j + 1
        if c == "[" and glob[j + 1 : j + 2] in (":", "=", "."):
            end = -1 if glob[j + 1] in unclosed else glob.find(glob[j + 1] + "]", j + 2)
            if end < 0:  # not closed: a `[` of the set's own, which fnmatch cannot hold
                unclosed.add(glob[j + 1])  # (not looked for again: `[[:[:[:...`)
                j, first, known = j + 1, False, False
                continue
            name = glob[j + 2 : end]
            if glob[j + 1] == ":" and name in _CLASSES:
                parts.append(_CLASSES[name])
            else:
                known = False
            j, first = end + 2, False
            continue
        if c == "\\" and j + 1 < len(glob):
            j += 1
            c = glob[j]
        if c in "[]" or c == "!" and not parts:  # fnmatch would end, nest or negate the set
            known = False
        else:
            parts.append(c)
        j, first = j + 1, False
    return None


def matcher(glob: str) -> Callable[[str], object]:
    """What `glob` matches, read as bash reads a pattern (`*`, `?`, `[...]`, `\\x`)."""
    out, i, last = [], 0, glob.rfind("]")
    while i < len(glob):
        c = glob[i]  # a `[` with no `]` after it is itself (not looked for again: `[[[[...`)
        if c == "[" and i + 1 < last and (found := _bracket(glob, i)) is not None:
            out.append(found[0])
            i = found[1]
            continue
        if c == "\\" and i + 1 < len(glob):
            i += 1
            c = glob[i]
            out.append("[" + c + "]" if c in "*?[" else c)
        elif c == "[":  # itself, spelled so fnmatch.translate does not look for its `]` again:
            out.append("[[]")  # it did for each (`/usr/bin/[[[[...` of 7 KB took 2.8 s: h161)
        else:
            out.append(c)
        i += 1
    return re.compile(fnmatch.translate("".join(out))).match
