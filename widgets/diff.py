"""A unified diff coloured for a terminal. The lines are escaped first (console.text): a
diff's text comes from an agent or a config file, and controls and invisible
characters are named, never sent to the terminal. Each line is wrapped on its own (Wrapped): a
space where it breaks is drawn, and its later rows start with CONTINUED, so a folded added
line's rest never reads as a removed, kept or new line (review h174)."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from console.text import escaped_line
from console.wrapping import CONTINUED, Wrapped
from widgets.format import style


def styled_diff(lines: list[str]) -> Group:
    """Diff lines that are already escaped, each coloured by its mark."""
    rows = []
    for line in lines:
        colour = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                  else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        rows.append(Wrapped(Text(line, style=style(colour) if colour else ""), continued=CONTINUED))
    return Group(*rows)


def diff_text(lines: list[str]) -> Group:
    """Raw diff lines, escaped, then coloured."""
    return styled_diff([escaped_line(line) for line in lines])
