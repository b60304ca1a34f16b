"""A unified diff coloured for a terminal. The lines are escaped first (console.text): a
diff's text comes from an agent or a config file, and controls and invisible
characters are named, never sent to the terminal."""

from __future__ import annotations

from rich.text import Text

from console.text import escaped_line
from widgets.format import style


def styled_diff(lines: list[str]) -> Text:
    """Diff lines that are already escaped, each coloured by its mark."""
    text = Text()
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        colour = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                  else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        text.append(line, style=style(colour) if colour else "")
    return text


def diff_text(lines: list[str]) -> Text:
    """Raw diff lines, escaped, then coloured."""
    return styled_diff([escaped_line(line) for line in lines])
