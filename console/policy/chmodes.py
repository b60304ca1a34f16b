"""chmod's modes as the bits they leave, for forbid and ask rules on chmod (execshape.covers):
`forbid = ["chmod -R 777"]` reaches `chmod -R 0777`, `a+rwx`, `=777`, `1777` and the rest of
GNU chmod's spellings of the same bits.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["chmod_mode", "mode_bits", "same_mode"]

_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[0-7]+|[ugo]|[rwxXst]*))+)")
_ACTION = re.compile(r"([-+=])([0-7]+|[ugo]|[rwxXst]*)")
_WHO = {"u": 0o700, "g": 0o070, "o": 0o007}
_SPECIAL = {"u": 0o4000, "g": 0o2000, "o": 0o1000}  # setuid, setgid, sticky
_SHIFT = {"u": 6, "g": 3, "o": 0}
# X (execute where a folder, or already executable) counts as x: a folder gets it, and a rule
# on 777 is about the tree (review s30: `chmod -R a+rwX` left every folder 777).
_PERMS = {"r": 0o444, "w": 0o222, "x": 0o111, "X": 0o111}


def mode_bits(word: str, *, no_umask: bool = False) -> int | None:
    """chmod's mode as the bits it leaves (permissions, and setuid, setgid, sticky), where the
    mode alone decides every permission bit: octal (`0777`, `1777`), an operator with octal
    (`=777`, `+777`), and symbolic clauses GNU chmod reads (`a+rwx`, `u=rwx,go=rx`, `o+t`, a
    copy `g=u` of bits decided before it). A clause with no who leaves the bits it names to the
    umask: undecided, unless a later clause decides them (with `no_umask`, as under a umask
    of 0: the bits it names, for every class). None where a permission bit is left
    undecided (review s29, helper 97; s30, helpers 101 and 103: `=777`, `1777`,
    `u=rwx,g=u,o=u`, `a+rwx,o-t`, `+x,a=rwx`, `a+rwX` each left 777 past `chmod -R 777`)."""
    if re.fullmatch(r"[0-7]+", word):
        return int(word, 8) & 0o7777
    known = value = 0  # bits the mode decides, and what it sets them to
    for clause in word.split(","):
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            return None
        who = "ugo" if m[1] in ("", "a") or "a" in m[1] else "".join(sorted(set(m[1])))
        for op, arg in _ACTION.findall(m[2]):
            if arg in _WHO and (known >> _SHIFT[arg]) & 7 != 7:
                # A copy of bits the file decides: what it sets is undecided, and a later clause
                # may still decide it (`u-g,a=rwx` is 777: review s31, helper 106).
                targets = who if m[1] else "ugo"
                known &= ~sum(_WHO[w] | (_SPECIAL[w] if op == "=" else 0) for w in targets)
                continue
            if arg[:1].isdigit():  # an operator with octal: every who, no umask
                bits, mask = int(arg, 8) & 0o7777, 0o7777
            elif not m[1] and not no_umask:  # `+rwx`: the umask decides which bits; `=` all of them
                named = _letters(arg, "ugo", value, known)
                if named is None:
                    return None
                # what `+` may add is only undecided where it was not set; `-` where not clear
                stays = value if op == "+" else ~value if op == "-" else 0
                known &= ~(named & ~stays) if op != "=" else 0
                continue
            else:
                mask = sum(_WHO[w] | _SPECIAL[w] for w in who)
                bits = _letters(arg, who, value, known)
                if bits is None:
                    return None
            if op == "=":
                known, value = known | mask, (value & ~mask) | bits
            else:
                known, value = known | bits, value | bits if op == "+" else value & ~bits
    return value & known if known & 0o777 == 0o777 else None


def _letters(arg: str, who: str, value: int, known: int) -> int | None:
    """The bits `rwxst` (or a copy of u, g or o as decided so far) give `who`."""
    if arg in _WHO:  # a copy: that class's permission bits, where they are decided
        if (known >> _SHIFT[arg]) & 7 != 7:
            return None
        three = (value >> _SHIFT[arg]) & 7
        return sum(three << _SHIFT[w] for w in who)
    bits = 0
    for c in set(arg) & set(_PERMS):  # x and X are the same bits: or-ed, never added (s31)
        bits |= sum(_WHO[w] & _PERMS[c] for w in who)
    if "s" in arg:
        bits |= sum(_SPECIAL[w] for w in who if w in "ug")
    if "t" in arg and "o" in who:
        bits |= _SPECIAL["o"]
    return bits


_ADDS = re.compile(r"[ugoa]*\+[rwxXst]+")  # a rule's mode that only adds bits


def _may_set(word: str) -> int:
    """The bits a mode may turn on, whatever the file's mode and the umask were (a copy of a
    class's bits: any of them); none for a word that is no mode (a file's name: chmod would
    refuse it as a mode)."""
    if re.fullmatch(r"[0-7]+", word):
        return int(word, 8) & 0o7777
    bits = 0
    for clause in word.split(","):
        m = _CLAUSE.fullmatch(clause)
        if m is None:
            return 0
        who = "ugo" if m[1] in ("", "a") or "a" in m[1] else m[1]
        for op, arg in _ACTION.findall(m[2]):
            if op == "-":
                continue
            if arg[:1].isdigit():
                bits |= int(arg, 8) & 0o7777
            elif arg in _WHO:
                bits |= sum(_WHO[w] for w in who)
            else:
                bits |= _letters(arg, who, 0, 0o7777) or 0
    return bits


def chmod_mode(word: str) -> str:
    """A mode as the octal bits it leaves where mode_bits decides them, else as written."""
    bits = mode_bits(word)
    return word if bits is None else format(bits, "o")


def same_mode(same: Callable[[str, str], bool], word: str, rule_word: str) -> bool:
    """The command's mode is the rule's: the same words, or the same permission bits and at
    least the rule's setuid, setgid and sticky bits (`chmod 777` reaches `chmod 1777`)."""
    if same(word, rule_word):
        return True
    if _ADDS.fullmatch(rule_word):  # `+x`, `u+s`: any mode that may set one of those bits
        return bool(_may_set(word) & _may_set(rule_word))
    rule = mode_bits(rule_word)
    # Read also as under a umask of 0, which the agent may have set (`umask 0; chmod -R +rwx`
    # is 777: review s31, helper 106): a clause with no who then gives every class its bits.
    return rule is not None and any(
        mine is not None and mine & 0o777 == rule & 0o777 and rule & 0o7000 & ~mine == 0
        for mine in (mode_bits(word), mode_bits(word, no_umask=True)))
