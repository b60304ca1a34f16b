"""The words `env -S STRING` runs, read as GNU env reads them (checked against the real env in
tests/policy/test_exec_attacks_s30.py): for unwrap.py, which steps through env as a wrapper.
"""

from __future__ import annotations

import re

__all__ = ["UNKNOWN_WORD", "env_split"]

UNKNOWN_WORD = "${?}"  # stands for a word only known when the command runs (env -S ${VAR})


def env_split(text: str) -> list[str]:
    """The words `env -S TEXT` runs, read with GNU env's own rules: blanks separate words, a
    word starting `#` ends the string (a comment), `\\_` separates words (a space inside double
    quotes), `\\c` ends the string (outside quotes), single quotes keep all but `\\\\` and `\\'`,
    `${VAR}` is a value from the environment (UNKNOWN_WORD, which the caller sees as a word the
    rules cannot read). A string env refuses is [UNKNOWN_WORD] too (review s30: read with shlex,
    `-S "#x" touch` ran touch while the rules saw the program `#x`)."""
    words = _env_words(text)
    return [UNKNOWN_WORD] if words is None else words


_ENV_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "v": "\v"}


def _env_words(text: str) -> list[str] | None:
    words: list[str] = []
    word: list[str] | None = None  # the word being read; None between words
    quote, unknown, i, n = "", False, 0, len(text)
    while i < n:
        c = text[i]
        if quote == "'":
            if c == "\\" and text[i + 1 : i + 2] in ("\\", "'"):
                word.append(text[i + 1])  # type: ignore[union-attr]
                i += 2
                continue
            if c == "'":
                quote = ""
            else:
                word.append(c)  # type: ignore[union-attr]
            i += 1
            continue
        if c == "\\":
            e = text[i + 1 : i + 2]
            if e == "c" and not quote:
                break  # the rest of the string is ignored
            if e == "_":
                if quote:
                    word.append(" ")  # type: ignore[union-attr]
                elif word is not None:
                    words.append(UNKNOWN_WORD if unknown else "".join(word))
                    word, unknown = None, False
            elif e in _ENV_ESCAPES or e in ("\\", '"', "'", "$", "#"):
                word = [] if word is None else word
                word.append(_ENV_ESCAPES.get(e, e))
            else:
                return None  # env refuses an unknown escape
            i += 2
            continue
        if c == "$":
            m = re.match(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", text[i:])
            if m is None:
                return None  # env takes ${NAME} only
            word, unknown = [] if word is None else word, True
            i += m.end()
            continue
        if quote == '"':
            if c == '"':
                quote = ""
            else:
                word.append(c)  # type: ignore[union-attr]
        elif c in " \t\n\r\f\v":
            if word is not None:
                words.append(UNKNOWN_WORD if unknown else "".join(word))
                word, unknown = None, False
        elif c == "#" and word is None:
            break  # a comment, to the end of the string
        elif c in "'\"":
            word, quote = [] if word is None else word, c
        else:
            word = [] if word is None else word
            word.append(c)
        i += 1
    if quote:
        return None  # an unterminated quote
    if word is not None:
        words.append(UNKNOWN_WORD if unknown else "".join(word))
    return words
