"""Run output made safe for a person's terminal.

A run's output is written by the agent, so it is hostile: OSC 52 writes the clipboard, OSC 8
makes links, CSI moves the cursor and rewrites what is already on screen, DCS/APC reach the
terminal's own extensions. Colour (SGR, `ESC [ ... m`) is kept; every other control character
(C0 except tab and newline, DEL, C1) is shown in caret or \\x notation, so the sequence is
visible as text and the terminal never acts on it.
"""

from __future__ import annotations

import re

_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def _visible(code: int) -> str:
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}"


_TABLE = {c: _visible(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
          if c not in (0x09, 0x0A)}


def neutralise(text: str, *, colour: bool = True) -> str:
    """`text` with every control shown, not obeyed; colour kept (or dropped, for a pipe)."""
    if text.isprintable():
        return text
    out = []
    pos = 0
    for m in _SGR.finditer(text):
        out.append(text[pos:m.start()].translate(_TABLE))
        if colour:
            out.append(m.group())
        pos = m.end()
    out.append(text[pos:].translate(_TABLE))
    return "".join(out)
