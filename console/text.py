"""What a person sees of an approval: the exact command or destination, escaped so nothing in it
can hide, with the agent's own words only beside it and marked as the agent's.

One function for every place a request appears: the CLI list, the console's inbox row, banner and
card, the bell/OSC notification and notify_command. Text from a sandbox is untrusted: control
characters, bidi overrides and invisible characters are written as visible names (`⟨ESC⟩`,
`⟨U+202E⟩`), runs of blanks as their count (`⟨300 spaces⟩`, so padding cannot push a tail out
of sight), and a cut says how much it cut. `⟨` and `⟩` themselves are escaped, so the marks
cannot be forged.

Run output goes through `neutralise` instead: colour (SGR) is kept, every other control is shown
in caret or \\x notation, so OSC 52, OSC 8, cursor moves and DCS are visible text, never obeyed.
"""

from __future__ import annotations

import time
import unicodedata

TYPE_CHECKING = False  # typing's, without importing typing: `run --wait` and `ps` load this module
if TYPE_CHECKING:
    from typing import Any

_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LF", "\r": "CR", "\x1b": "ESC", "\x7f": "DEL"}
_BLANK_RUN = r" {3,}"
AGENT_WORDS_MAX = 60


def _pattern(source: str) -> Any:
    """source compiled (re keeps what it compiled). re is imported here, on first need: text
    that is all printable, most lines of most runs, never needs it, and `import re` is about
    4 ms of a CLI start (`run --wait`, issue 17)."""
    import re

    return re.compile(source)


# Default_Ignorable_Code_Point characters (and blanks) that are letters or marks, not format
# characters: fonts draw them as nothing or as a space (Hangul fillers, the combining grapheme
# joiner, variation selectors), so `curl\u3164x.invalid` would read as `curl x.invalid`.
_INVISIBLE_LETTERS = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                      (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
                      (0xE0100, 0xE01EF))


def _invisible_letter(ch: str) -> bool:
    code = ord(ch)
    return code >= 0x034F and any(lo <= code <= hi for lo, hi in _INVISIBLE_LETTERS)


def hides(ch: str) -> bool:
    """A character a person cannot see as itself: Cc control, Cf format (bidi, zero-width,
    tags), Co/Cn private/unassigned, Cs surrogates, Zl/Zp separators, Zs spaces other than the
    plain one (they look like a space and are not one), and letters or marks drawn as nothing."""
    cat = unicodedata.category(ch)
    return (cat[0] == "C" or cat in ("Zl", "Zp") or (cat == "Zs" and ch != " ")
            or not ch.isprintable() or _invisible_letter(ch))


def reorders(ch: str) -> bool:
    """What run output must not pass through as is beyond the C0/C1 controls: format
    characters (bidi overrides reorder the line, zero-width ones hide), line separators, and
    letters drawn as nothing. (Spaces of other widths stay: text in many scripts has them.)"""
    return unicodedata.category(ch) in ("Cf", "Zl", "Zp", "Cs") or _invisible_letter(ch)


def _escape_char(ch: str) -> str:
    if ch in _NAMES:
        return f"⟨{_NAMES[ch]}⟩"
    if ch in "⟨⟩" or hides(ch):
        return f"⟨U+{ord(ch):04X}⟩"
    return ch


def cut(text: str, limit: int | None) -> str:
    """Text already shown, cut to `limit` characters with a mark saying how many were cut
    (never inside an escape)."""
    if limit is None or len(text) <= limit:
        return text
    keep = limit
    while keep > 0:
        opened = text.rfind("⟨", 0, keep)
        if opened > text.rfind("⟩", 0, keep):
            keep = opened  # not half an escape: `⟨U+20` would read as something else
        mark = f"…⟨{len(text) - keep} more⟩"
        if keep + len(mark) <= limit:
            return text[:keep] + mark
        keep -= 1
    return "…"[:limit]


def shown(text: Any, limit: int | None = None) -> str:
    """Untrusted text as one line a person can trust: every character visible, blank runs
    counted, a cut marked with how much was cut."""
    raw = "" if text is None else str(text)
    escaped = "".join(_escape_char(ch) for ch in raw)
    collapsed = _pattern(_BLANK_RUN).sub(lambda m: f" ⟨{len(m.group())} spaces⟩ ", escaped)
    return cut(collapsed, limit)


def printable(text: Any, limit: int | None = None) -> str:
    """One line, no control characters (terminal escapes from a sandbox stop here): a newline
    shows as ⏎, any other unprintable character as �; cut to `limit` with an ellipsis."""
    raw = "" if text is None else str(text)
    out = "".join(ch if ch.isprintable() else ("⏎" if ch == "\n" else "�") for ch in raw)
    if limit is not None and len(out) > limit:
        return out[: max(0, limit - 1)] + "…"
    return out


def request_line(req: dict[str, Any], limit: int | None = None) -> str:
    """A request as one line: what will run (and where) or where it connects (and the address),
    then the agent's own words, marked as the agent's. The agent's words are cut first."""
    kind = req.get("kind")
    detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
    subject = str(req.get("subject") or "")
    where = ""
    if kind == "network" and detail.get("addresses"):
        where = " → " + ", ".join(str(a) for a in detail["addresses"])
    elif detail.get("cwd"):
        where = f" in {detail['cwd']}"
    title = str(req.get("title") or "")
    words = f'  (agent says: "{shown(title, AGENT_WORDS_MAX)}")' if title and title != subject else ""
    main = shown(subject) + shown(where)
    if limit is None:
        return main + words
    if len(main) >= limit:
        return cut(main, limit)
    return main + cut(words, limit - len(main)) if len(main) + len(words) > limit else main + words


# Run output: colour kept, every other control shown.
_SGR = r"\x1b\[[0-9;:]*m"


def _visible(code: int) -> str:
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}"


_TABLE = {c: _visible(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
          if c not in (0x09, 0x0A)}


def neutralise(text: str, *, colour: bool = True) -> str:
    """`text` with every control shown, not obeyed; colour kept (or dropped, for a pipe).
    Bidi overrides and characters drawn as nothing are shown as \\uXXXX too."""
    if text.isprintable() and (text.isascii() or not any(map(_invisible_letter, text))):
        return text
    out = []
    pos = 0
    for m in _pattern(_SGR).finditer(text):
        out.append(_shown_controls(text[pos:m.start()]))
        if colour:
            out.append(m.group())
        pos = m.end()
    out.append(_shown_controls(text[pos:]))
    return "".join(out)


def _shown_controls(part: str) -> str:
    part = part.translate(_TABLE)
    if part.isascii():
        return part
    return "".join(f"\\u{ord(ch):04x}" if ch > "\x9f" and reorders(ch) else ch for ch in part)


# Times and sizes as a person reads them: the CLI's tables and the console's widgets alike.


def duration(seconds: float | None) -> str:
    """Compact: 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "-"
    secs = max(0, int(seconds))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def age(ts: float | None) -> str:
    """How long ago an epoch time was, as duration() writes it."""
    return duration(time.time() - ts) if ts else "-"


def size(num: float | int | None) -> str:
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit in ("B", "K") or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.0f}T"


def clock(ts: float | None, *, date: bool = False) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(ts))
