"""Which rows of a scrolled body have been on the screen.

A yes given from a view (the approval card, a confirmation) is about what the view shows, and
a body taller than its screen shows only part of it: a command's first screen can look whole
(`pytest -q # =====...`) while its next line is 50 rows down. Views that decide ask this first;
a yes with rows never shown scrolls to the first of them instead of deciding.
"""

from __future__ import annotations

from typing import Any

from textual.containers import ScrollableContainer

PAGED = ("It goes on past the screen: nothing was decided, y showed the next part. Once all of "
         "it has been on the screen, y answers.")


class SeenRows:
    def __init__(self) -> None:
        self._key: Any = None
        self._rows: set[int] = set()

    def saw(self, body: ScrollableContainer, key: Any = None) -> None:
        """The rows on the screen now count as seen, for `key` (what the body shows) at the
        body's width: another key or width (rewrapped) starts again from nothing seen."""
        key = (key, body.size.width)
        if key != self._key:
            self._key, self._rows = key, set()
        top = round(body.scroll_y)
        self._rows.update(range(top, top + body.scrollable_content_region.height))

    def first_unseen(self, body: ScrollableContainer, key: Any = None) -> int | None:
        """The first row never on the screen (what is there now counts), or None."""
        self.saw(body, key)
        return next((row for row in range(body.virtual_size.height) if row not in self._rows),
                    None)

    def page_on(self, body: ScrollableContainer, key: Any = None) -> bool:
        """True when every row has been on the screen; else scroll to the first that has not."""
        unseen = self.first_unseen(body, key)
        if unseen is None:
            return True
        body.scroll_to(y=unseen, animate=False)
        return False
