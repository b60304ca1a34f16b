"""A bash glob as a regular expression, for the names a globbed program word may name (unwrap.py).
fnmatch reads `[^x]` as `^` or `x` and `[[:alpha:]]` as a set of `[:alph` followed by `]`, where
bash reads a negation and a character class: `/usr/bin/n[^x]ce rm -rf ~` and `/usr/bin/[[:lower:]]ice
rm -rf ~` run nice, and were not seen to name it (review h161). Extglobs are not read here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "lower": "a-z", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f", "space": r"\s", "blank": r" \t", "word": r"\w",
    "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), "graph": r"\x21-\x7e",
    "print": r"\x20-\x7e", "cntrl": r"\x00-\x1f\x7f",
}
_ANY = r"\s\S"  # a class, equivalence class or collating symbol not known: any character


def _bracket(glob: str, i: int) -> tuple[str, int] | None:
    """The regex set for the bracket expression at glob[i] (`[`), and the index past it; None
    when it is not closed (then `[` is itself)."""
    j, parts = i + 1, []
    negate = j < len(glob) and glob[j] in "!^"
    j += 1 if negate else 0
    first = True
    while j < len(glob):
        c = glob[j]
        if c == "]" and not first:
            return "[" + ("^" if negate else "") + "".join(parts) + "]", j + 1
        first = False
        if c == "[" and glob[j + 1 : j + 2] in (":", "=", "."):
            end = glob.find(glob[j + 1] + "]", j + 2)
            if end < 0:
                return None
            name = glob[j + 2 : end]
            parts.append(_CLASSES.get(name, _ANY) if glob[j + 1] == ":" else _ANY)
            j = end + 2
            continue
        if c == "\\" and j + 1 < len(glob):
            j += 1
            c = glob[j]
        if c == "-" and parts and j + 1 < len(glob) and glob[j + 1] != "]":
            parts.append("-")
        else:
            parts.append(re.escape(c))
        j += 1
    return None


def matcher(glob: str) -> Callable[[str], object]:
    """What `glob` matches, read as bash reads a pattern (`*`, `?`, `[...]`, `\\x`)."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (found := _bracket(glob, i)) is not None:
            out.append(found[0])
            i = found[1]
            continue
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("(?s:" + "".join(out) + r")\Z").match
