"""Bash's reserved words, and where bash reads one: a compound command's start (so `((` is
arithmetic there) and the words that open and close a compound command."""

from __future__ import annotations

# Words after which `((` starts an arithmetic command, as bash reads it.
BEFORE_ARITHMETIC = {"for", "if", "elif", "while", "until", "then", "do", "else", "!", "time",
                     "{"}
TIME_OPTIONS = {"-p", "--"}  # `time -p`, `time --`, `time -p --`


def compound_may_start(words: list[str]) -> bool:
    """Whether bash reads a compound command (so `((` is arithmetic) after these words: the
    keywords above, `time` with its options, `function NAME`, `coproc` and `coproc NAME`.
    Erring towards yes is safe: an arithmetic body is also read as commands."""
    k, n = 0, len(words)
    while k < n:
        w = words[k]
        if w in TIME_OPTIONS and k and words[k - 1] in ("time", "-p"):
            k += 1
        elif w == "function" and k + 1 < n:
            k += 2
        elif w == "coproc":
            k += 2 if k + 1 < n and words[k + 1] not in BEFORE_ARITHMETIC else 1
        elif w in BEFORE_ARITHMETIC:
            k += 1
        else:
            return False
    return True


# Reserved words that open and close a compound command. A pipe into one feeds every command
# in it (`| if true; then python3; fi`, `| { true; python3; }`), not only the first (review
# s31, helper 106: each was granted by its words and a later script ran unasked).
OPENERS = {"if", "while", "until", "for", "select", "case", "{"}
CLOSERS = {"fi", "done", "esac", "}"}


def reserved_word(words: list[str]) -> str:
    """The word in command position past `!` and `time` (with its options): where bash reads a
    reserved word."""
    k = 0
    while k < len(words) and (words[k] in ("!", "time") or (
            k and words[k] in TIME_OPTIONS and words[k - 1] in ("time", "-p"))):
        k += 1
    return words[k] if k < len(words) else ""
