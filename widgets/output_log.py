"""An agent's output: a bounded Log with follow/pause and a filter.

Lines arrive already batched (one message per 50 ms from the daemon): `append` takes the whole
batch and writes it in one call. Memory is bounded twice over: the Log keeps at most
`max_lines`, and so does the buffer the filter and the pause redraw from.

Pausing freezes the view: new lines go to the buffer only, and are appended when following
resumes. Only a new filter clears and redraws.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import Log

from widgets.format import style


class OutputLog(Log):
    def __init__(self, *, max_lines: int = 5000, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id, classes=classes)
        self._buffer: deque[str] = deque(maxlen=max_lines)
        self._filter = ""
        self._following = True
        self.total = 0  # lines received
        self.unseen = 0  # lines received while paused

    @property
    def following(self) -> bool:
        return self._following

    @property
    def filter_text(self) -> str:
        return self._filter

    def append(self, lines: list[str]) -> None:
        self.total += len(lines)
        self._buffer.extend(lines)
        if not self._following:
            self.unseen += len(lines)
            return
        shown = self._matching(lines) if self._filter else lines
        if shown:
            self.write_lines(shown)

    def reset(self) -> None:
        """Forget everything (the output is about to be read again from the start)."""
        self._buffer.clear()
        self.total = self.unseen = 0
        self.clear()

    def set_following(self, follow: bool) -> None:
        if follow == self._following:
            return
        self._following = follow
        self.auto_scroll = follow
        if follow:
            held = list(self._buffer)[-self.unseen:] if self.unseen else []
            self.unseen = 0
            # Append what arrived meanwhile rather than clear and redraw: the Log keeps its
            # line count (max_lines), so its virtual size and the screen's layout stay put.
            shown = self._matching(held) if self._filter else held
            if shown:
                self.write_lines(shown, scroll_end=True)
            else:
                self.scroll_end(animate=False)

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        self._redraw()

    def _matching(self, lines: list[str] | deque[str]) -> list[str]:
        f = self._filter
        return [line for line in lines if f in line.lower()]

    def _redraw(self) -> None:
        self.clear()
        lines = self._matching(self._buffer) if self._filter else list(self._buffer)
        if lines:
            self.write_lines(lines, scroll_end=True)

    def status(self) -> Text:
        """FOLLOWING or PAUSED (in words), what is filtered, and how much was received."""
        text = Text()
        if self._following:
            text.append(" ▶ FOLLOWING ", style=style("bold reverse green"))
        else:
            text.append(" ⏸ PAUSED ", style=style("bold reverse yellow"))
            text.append(f" {self.unseen:,} new line(s) held")
        if self._filter:
            text.append("  filter: ")
            text.append(self._filter, style="bold")
        text.append(f"  {self.total:,} line(s) received, last {len(self._buffer):,} kept")
        return text
