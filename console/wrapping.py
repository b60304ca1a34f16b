"""Text wrapped to a column with every space where a line breaks shown (review h162).

rich wraps at spaces and drops (or leaves blank at the end of the line) the space it breaks
at, and folds a word longer than the column without a mark: `rm -rf DIR/ *`, with DIR/ as wide
as the column, was drawn as `rm -rf`, `DIR/`, `*` on three lines, exactly as `rm -rf DIR/*`
(DIR/* folded) was. `Wrapped` draws each space a break takes as `␣` at the end of its line, so
a break at a space and a fold inside a word never look the same. Used for a request's command
or destination on the console's card and in `pilothouse approvals`' table, and for each line of
a file's change on the card, where a line's later rows also start with CONTINUED: folded, an
added line's rest could start with `-` and read as a removed line (review h174).
"""

from __future__ import annotations

from typing import Any

from rich.containers import Lines
from rich.measure import Measurement
from rich.text import Text

BREAK_MARK = "␣"
# What starts each later row of a line drawn with `continued`: no escaped text (console.text.shown)
# starts with it (a `⟩` of its own is written ⟨U+27E9⟩), so no line of a diff can look like one.
CONTINUED = "⟩"


class Wrapped:
    """A one-line Text that, wrapped, ends each line broken at spaces with a `␣` per space (a
    line as wide as the column gets its mark on a line of its own). With `continued`, every row
    after the first starts with that mark (dim), so where a line goes on is never a new line."""

    def __init__(self, text: Text, continued: str = "") -> None:
        self.text = text
        self.continued = continued

    def __rich_measure__(self, console: Any, options: Any) -> Measurement:
        return Measurement.get(console, options, self.text)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        source = self.text.plain
        width = max(1, options.max_width - len(self.continued))  # room for the mark on each row
        lines = list(self.text.wrap(console, width, overflow="fold"))
        pos = 0
        out: list[Text] = []
        for i, line in enumerate(lines):
            if not source.startswith(line.plain, pos):  # not a plain split: draw it as rich did
                yield self.text
                return
            pos += len(line.plain)
            kept = len(line.plain) - len(line.plain.rstrip(" "))
            if i + 1 < len(lines):
                follows = lines[i + 1].plain
                run = len(source[pos:]) - len(source[pos:].lstrip(" "))
                dropped = max(0, run - (len(follows) - len(follows.lstrip(" "))))
                pos += dropped
                if kept + dropped:
                    line = line.copy()
                    if kept:
                        line.right_crop(kept)
                    line.append(BREAK_MARK * (kept + dropped), style="dim")
            # Never wider than the column: wrapped again, a space in it would be lost again.
            out.extend(line.divide(range(width, len(line.plain), width)))
        if self.continued:
            out[1:] = [Text.assemble((self.continued, "dim"), row) for row in out[1:]]
            width += len(self.continued)
        lines = Lines(out)  # justified as rich justifies a Text (the padding in its style)
        lines.justify(console, width, justify=self.text.justify or options.justify or "default",
                      overflow="fold")
        yield Text("\n").join(lines)
