"""Which rows of a scrolled body have been on the screen.

A yes given from a view (the approval card, a confirmation) is about what the view shows, and
a body taller than its screen shows only part of it: a command's first screen can look whole
(`pytest -q # =====...`) while its next line is 50 rows down. Views that decide ask this first;
a yes with rows never shown scrolls to the first of them instead of deciding.

A row counts once the screen has been drawn with it (the body's widget reports the rows each
draw asks it for), not when a scroll moves to it: keys held down or typed ahead are handled
before the next draw, and a y after a scroll allowed rows that were never drawn. Nor when the
screen is drawn under a dialog (the help, a confirmation): dimmed or hidden, it is not seen.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import RenderableType
from textual.containers import ScrollableContainer
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Static

# Two rows at 60 columns (the approval card's status line holds two).
PAGED = "It goes on: y showed more, nothing was decided. y answers once all of it has been on the screen."
# A dialog's one row for it (its body and buttons take the rest of 24 rows; 56 columns at 60).
PAGED_SHORT = "It goes on: y showed more. y answers once all is shown."


class SeenRows:
    def __init__(self) -> None:
        self._key: Any = None
        self._rows: set[int] = set()
        self.since = math.inf  # when (monotonic) the body showing `key` was first drawn

    def drew(self, key: Any, rows: range) -> None:
        """The screen was drawn with these rows of the body showing `key` (what it shows, at
        its width): another key (another request, a rewrap) starts again from nothing seen."""
        if key != self._key:
            self._key, self._rows, self.since = key, set(), time.monotonic()
        self._rows.update(rows)

    def first_unseen(self, key: Any, height: int) -> int | None:
        """The first of the `height` rows of `key` never drawn, or None."""
        if key != self._key:
            return 0
        return next((row for row in range(height) if row not in self._rows), None)

    def page_on(self, body: ScrollableContainer, key: Any, height: int) -> bool:
        """True when every row has been on the screen; else scroll to the first that has not."""
        unseen = self.first_unseen(key, height)
        if unseen is None:
            return True
        body.scroll_to(y=unseen, animate=False)
        return False


class SeenStatic(Static):
    """A Static whose rows count as seen (by `seen`) as the screen is drawn with them."""

    def __init__(self, renderable: RenderableType, seen: SeenRows) -> None:
        super().__init__(renderable)
        self._seen = seen

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.screen.is_active:  # a screen under a dialog is drawn too, dimmed or hidden
            self._seen.drew(self.size.width, range(crop.y, crop.bottom))
        return super().render_lines(crop)
