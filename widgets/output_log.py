"""An agent's output: a bounded Log with follow/pause and a filter that counts its matches.

Lines arrive already batched (the run screen hands over what a timer collected): `append`
takes the whole batch and writes it in one call. Memory is bounded twice over: the Log keeps at
most `max_lines`, and so does the buffer the filter and the pause redraw from. Lines dropped
before they got here (a flood faster than the screen draws) are shown where they were, as one
line `⟨12,345 lines dropped⟩` (kept under a filter too), and counted in the status line.

Following means the view stays on the newest line. Scrolling up (keys, page up, the mouse
wheel) pauses: the view holds still, new lines are held and counted, and End, G, space or f
follow again from the newest line. Textual's Log only keeps up with new lines while its view
is exactly at the end, which a scroll animation or a late layout can break for good; so here
a batch that finds the view off the end while following scrolls to the end itself.

Every line passes through console.text.neutralise first: escape sequences in a run's
output (OSC 52 clipboard writes, cursor moves) are shown as text (^[), never sent on.

The filter shows only the lines that contain it, highlights it, and counts the matches; n and
N step through them (which pauses, so the match stays where it is).
"""

from __future__ import annotations

import re
from collections import deque

from rich.cells import cell_len
from rich.highlighter import Highlighter
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import Log

from console.text import neutralise
from widgets.format import style

# Held lines written per frame when following resumes.
CATCH_UP_LINES = 500


class MatchHighlighter(Highlighter):
    """Marks every occurrence of the filter text (case-insensitive), in reverse video so it
    reads without colour too."""

    def __init__(self) -> None:
        self.pattern: re.Pattern[str] | None = None

    def highlight(self, text: Text) -> None:
        if self.pattern is not None:
            text.highlight_regex(self.pattern, style="bold reverse")


def _width(line: str) -> int:
    if "\t" in line:
        line = line.expandtabs()
    return len(line) if line.isascii() else cell_len(line)


class Dropped(str):
    """The line standing for lines that never reached the Log (a filter keeps it)."""

    @classmethod
    def of(cls, count: int) -> Dropped:
        return cls(f"⟨{count:,} lines dropped⟩")


class OutputLog(Log):
    BINDINGS = [
        Binding("k,up", "pause_scroll('scroll_up')", "Scroll up", show=False, id="log_up"),
        Binding("pageup", "pause_scroll('page_up')", "Page up", show=False, id="log_page_up"),
        Binding("home,g", "pause_scroll('scroll_home')", "Oldest line", show=False, id="log_home"),
        Binding("end,G", "follow_end", "Follow (newest line)", show=False, id="log_end"),
        Binding("j,down", "scroll_down", "Scroll down", show=False, id="log_down"),
    ]

    def __init__(self, *, max_lines: int = 5000, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=False, id=id, classes=classes)
        self.highlighter = MatchHighlighter()
        self._buffer: deque[str] = deque(maxlen=max_lines)
        self._filter = ""
        self._following = True
        self.total = 0  # lines received (dropped ones included)
        self.dropped = 0  # lines that never reached the Log (a flood)
        self.unseen = 0  # lines received while paused
        self.catching_up: deque[str] = deque()  # held lines still to write after a resume
        self.match_index = -1  # which match n/N last went to (-1: none yet)

    @property
    def following(self) -> bool:
        return self._following

    @property
    def filter_text(self) -> str:
        return self._filter

    # --- lines in --------------------------------------------------------------------------------

    def append(self, lines: list[str], dropped: int = 0) -> None:
        """Write `lines`, after a marker for `dropped` lines that came before them but were
        dropped on the way."""
        # A run's output is the agent's: every control is shown (^[, ^G), never obeyed (OSC 52,
        # cursor moves). This Log draws plain lines, so colour (SGR) is dropped too.
        lines = [neutralise(line, colour=False) for line in lines]
        self.total += len(lines) + dropped
        if dropped:
            self.dropped += dropped
            lines.insert(0, Dropped.of(dropped))
        self._buffer.extend(lines)
        if not self._following:
            self.unseen += len(lines)
            return
        if self.catching_up:  # behind the held lines still being written, in order
            self.catching_up.extend(lines)
            return
        shown = self._matching(lines) if self._filter else lines
        if shown:
            at_end = self.is_vertical_scroll_end
            self.write_lines(shown, scroll_end=True)  # the Log scrolls only if it was at the end
            if not at_end:  # it was not (an animation, a late layout): catch up now
                self.scroll_end(animate=False, immediate=True, x_axis=False)

    def _update_size(self, updates: int, lines: list[str]) -> None:
        # Log measures new lines in a thread worker per write: a thread start and a fight for
        # the GIL on every batch. Lines here are already neutralised (no controls), and mostly
        # ASCII, where the length is the width: measured in place, far cheaper.
        if lines:
            self._update_maximum_width(updates, max(map(_width, lines)))

    def reset(self) -> None:
        """Forget everything (the output is about to be read again from the start)."""
        self._buffer.clear()
        self.catching_up.clear()
        self.total = self.unseen = self.dropped = 0
        self.match_index = -1
        self.clear()

    def _to_end(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        # The virtual size may grow after this refresh (a layout pass): go to the end again then.
        self.call_after_refresh(self._settle)

    def _settle(self) -> None:
        if self._following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # --- follow / pause ------------------------------------------------------------------------

    def set_following(self, follow: bool) -> None:
        if follow == self._following:
            if follow:
                self._to_end()
            return
        self._following = follow
        if follow:
            held = list(self._buffer)[-self.unseen:] if self.unseen else []
            if self.unseen > len(held):  # more came while paused than the buffer keeps
                # The marker takes the oldest held line's place: in front of a full buffer
                # it would be the first line the Log itself lets go.
                lost = self.unseen - len(held) + 1
                self.dropped += lost
                held[0] = Dropped.of(lost)
            self.unseen = 0
            self.match_index = -1
            # Append what arrived meanwhile rather than clear and redraw: the Log keeps its
            # line count (max_lines), so its virtual size and the screen's layout stay put.
            # Written a chunk per frame: thousands of held lines in one call would hold the
            # key's own answer (FOLLOWING) back by a frame of tens of milliseconds.
            self.catching_up.extend(held)
            self._catch_up()
        else:
            # Lines not yet written are held again, with the ones that come while paused.
            self.unseen += len(self.catching_up)
            self.catching_up.clear()
        self.post_message(self.Changed(self))

    def _catch_up(self) -> None:
        if not self._following:
            return
        chunk = [self.catching_up.popleft()
                 for _ in range(min(CATCH_UP_LINES, len(self.catching_up)))]
        shown = self._matching(chunk) if self._filter else chunk
        if shown:
            self.write_lines(shown, scroll_end=False)
        self._to_end()
        if self.catching_up:
            self.call_after_refresh(self._catch_up)

    class Changed(events.Message):
        """Following or paused changed by a key or the mouse (the screen redraws its status)."""

        def __init__(self, log: OutputLog) -> None:
            super().__init__()
            self.log = log

    def action_pause_scroll(self, how: str) -> None:
        self.set_following(False)
        getattr(self, f"action_{how}")()

    def action_follow_end(self) -> None:
        self.set_following(True)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.set_following(False)
        super()._on_mouse_scroll_up(event)

    # --- filter and matches --------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        self.highlighter.pattern = re.compile(re.escape(text), re.IGNORECASE) if text else None
        self.highlight = bool(text)  # only while filtering: highlighting costs on every line drawn
        self.match_index = -1
        self._redraw()

    def _matching(self, lines: list[str] | deque[str]) -> list[str]:
        f = self._filter
        return [line for line in lines if f in line.lower() or isinstance(line, Dropped)]

    def _redraw(self) -> None:
        self.catching_up.clear()  # the whole buffer is written below
        self.unseen = 0  # held lines included: a resume must not write them again
        self.clear()
        self._render_line_cache.clear()
        lines = self._matching(self._buffer) if self._filter else list(self._buffer)
        if lines:
            self.write_lines(lines, scroll_end=False)
        if self._following:
            self._to_end()

    @property
    def match_count(self) -> int:
        """Lines shown that contain the filter (all of them, as only those are shown)."""
        return len(self.lines) if self._filter else 0

    def step_match(self, step: int) -> None:
        """Go to the next (1) or previous (-1) matching line and hold the view there."""
        count = self.match_count
        if not count:
            return
        self.set_following(False)
        if self.match_index < 0:
            self.match_index = 0 if step > 0 else count - 1
        else:
            self.match_index = (self.match_index + step) % count
        self.scroll_to(y=max(0, self.match_index - self.size.height // 2), animate=False,
                       immediate=True)

    # --- status ----------------------------------------------------------------------------------

    def status(self) -> Text:
        """FOLLOWING or PAUSED (in words), what is filtered, and how much was received."""
        text = Text()
        if self._following:
            text.append(" ▶ FOLLOWING ", style=style("bold reverse green"))
        else:
            text.append(" ⏸ PAUSED ", style=style("bold reverse yellow"))
            text.append(f" {self.unseen:,} new line(s) held")
        if self._filter:
            text.append("  filter ")
            text.append(self._filter, style="bold")
            count = self.match_count
            where = f"{self.match_index + 1}/{count}" if self.match_index >= 0 else f"{count}"
            text.append(f": {where} match(es)")
        text.append(f"  {self.total:,} line(s) received")
        if self.dropped:
            text.append(f", {self.dropped:,} dropped (too fast to show)")
        return text
