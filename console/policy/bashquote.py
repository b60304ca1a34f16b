r"""What bash makes of its ANSI-C quoting, `$'...'`: the word after its escapes are decoded.

sh reads `$'...'` as `$` and a quoted string; bash decodes it (`$'\x72m'` is rm, and a NUL
ends the word: `$'rm\0zz'` is rm). The reader checks each reading (unwrap.py).
"""

from __future__ import annotations

import re

_ANSI_C = re.compile(r"\$'((?:[^'\\]|\\.)*)'", re.S)
_ANSI_C_ESCAPE = re.compile(
    r"\\(?:([abeEfnrtv\\'\"?])|([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})"
    r"|U([0-9A-Fa-f]{1,8})|c(.)|(.))", re.S)
_SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


def _ansi_c_value(body: str) -> str:
    r"""What bash makes of $'BODY': its escapes decoded, cut at a NUL as bash cuts it
    (`$'\x72m'` is rm, `$'rm\0x'` is rm)."""
    def one(m: re.Match[str]) -> str:
        simple, octal, hex2, u4, u8, ctl, other = m.groups()
        if simple is not None:
            return _SIMPLE[simple]
        if octal is not None:
            return chr(int(octal, 8) & 0xFF)
        if hex2 or u4 or u8:
            code = int(hex2 or u4 or u8, 16)
            return chr(code) if code <= 0x10FFFF else ""
        if ctl is not None:
            return "" if ctl in "@`" else chr(ord(ctl.upper() if ctl != "?" else ctl) & 0x1F)
        return "\\" + other
    value = _ANSI_C_ESCAPE.sub(one, body)
    return value.split("\x00", 1)[0]


def ansi_c_decoded(line: str) -> str:
    r"""The line with each $'...' written as the plain quoted word bash makes of it: a forbid
    rule sees `$'\x72m' -rf /` as rm (review h151)."""
    return _ANSI_C.sub(lambda m: "'" + _ansi_c_value(m.group(1)).replace("'", "'\"'\"'") + "'", line)
