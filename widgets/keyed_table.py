"""A DataTable updated by key: rows are added once and then changed cell by cell.

Events arrive many times a second; rebuilding a table on each would flicker and cost. Each row
remembers what it shows, and only cells whose text or style changed are updated. A text filter
hides rows that do not match (the table is rebuilt only when the filter, the hidden rows, the
order or the width changes).

Columns fit the width they are given, like k9s: each has a priority and a least width; when the
least widths do not all fit, the column of lowest priority goes first (an ID has the highest,
and the first column stays in place when scrolling sideways); what is left over widens the
columns up to their preferred width, and then the `flex` column (a command, a request, a text)
takes the rest, so a wider terminal shows more of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.events import Click, Resize
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable

Cell = str | Text
SCROLLBAR = 1  # columns kept for the vertical scrollbar (app.tcss makes it this thin)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None  # preferred width (None: the label's)
    priority: int = 50  # higher stays longer when the width runs short
    min: int | None = None  # least width (None: the preferred width)
    flex: bool = False  # takes the width left over


ESSENTIAL = 80  # columns at or above this priority show even if squeezed to their least width


def fit_columns(columns: Sequence[Column], room: int, padding: int = 1) -> dict[str, int]:
    """Which columns show at `room` cells and how wide each is (key -> width), in order.

    Most important first, each at its preferred width (a flex column at its least): a column
    that does not fit is left out, unless it is essential, which then takes what is left down
    to its least width. What remains widens the columns to their preferred widths, then goes
    to the flex column."""
    pad = 2 * padding

    def least(col: Column) -> int:
        return max(1, col.min if col.min is not None else (col.width or len(col.label)))

    def preferred(col: Column) -> int:
        return least(col) if col.flex else max(least(col), col.width or len(col.label))

    widths: dict[str, int] = {}
    used = 0
    ranked = sorted(enumerate(columns), key=lambda ic: (-ic[1].priority, ic[0]))
    for _, col in ranked:
        free = room - used - pad
        if preferred(col) <= free:
            widths[col.key] = preferred(col)
        elif (col.priority >= ESSENTIAL and least(col) <= free) or not widths:
            widths[col.key] = max(1, min(preferred(col), free))
        else:
            continue
        used += widths[col.key] + pad
    left = max(0, room - used)
    for _, col in ranked:  # up to the preferred width, most important first
        if col.key in widths and not col.flex and left:
            grow = min(left, max(0, (col.width or len(col.label)) - widths[col.key]))
            widths[col.key] += grow
            left -= grow
    flex = [c for c in columns if c.key in widths and c.flex]
    target = flex[0] if flex else next(c for c in reversed(columns) if c.key in widths)
    widths[target.key] += left
    return {c.key: widths[c.key] for c in columns if c.key in widths}


def _sig(cell: Cell) -> tuple[str, str]:
    if isinstance(cell, Text):
        return cell.plain, str(cell.style) + "|".join(str(s.style) for s in cell.spans)
    return cell, ""


class KeyedTable(DataTable[Cell]):
    """Subclasses set COLUMNS; rows are put by key with a list of cells and a search text."""

    COLUMNS: Sequence[Column] = ()
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table_down"),
        Binding("k", "cursor_up", "Up", show=False, id="table_up"),
        Binding("g", "first_row", "First row", show=False, id="table_first"),
        Binding("G", "last_row", "Last row", show=False, id="table_last"),
    ]

    def __init__(self, *, max_rows: int | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False,
                         fixed_columns=1)
        self.max_rows = max_rows
        self._rows: dict[str, tuple[list[Cell], str]] = {}  # key -> (cells, search text)
        self._shown: dict[str, tuple[tuple[str, str], ...]] = {}
        self._filter = ""
        self._widths: dict[str, int] = {}
        self._order: Callable[[str], Any] | None = None
        self._reverse = False
        self._chosen = False  # a row was chosen (keys, mouse, code): keep it when rows move
        self._fitted_to = -1  # the width the columns were last fitted to

    def on_mount(self) -> None:
        self._rebuild(columns=True)

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width)

    def render_lines(self, crop: Region) -> list[Strip]:
        # The width it is drawn at is the truth: a Resize handled while the table had no place
        # on the screen (hidden, not yet laid out) left its columns at another width, the
        # flex column's end and its `…` past the border (fresh check s46c). Refit after this
        # frame, never during it.
        if self.size.width and self.size.width != self._fitted_to:
            self._fitted_to = self.size.width
            self.call_later(self._fit, self.size.width)
        return super().render_lines(crop)

    def _fit(self, width: int) -> None:
        room = width - SCROLLBAR
        if room > 0 and fit_columns(self.COLUMNS, room, self.cell_padding) != self._widths:
            self._rebuild(columns=True)

    # --- data ----------------------------------------------------------------------------------

    def put(self, key: str, cells: list[Cell], search: str = "") -> None:
        old_row = self._rows.get(key)
        self._rows[key] = (cells, search)
        if not self.is_mounted:
            return
        visible = self._matches(key, search)
        if key in self._shown:
            if not visible:
                self._remove(key)
                return
            old = self._shown[key]
            new = tuple(_sig(c) for c in cells)
            if old == new:
                return
            for col, cell, before, after in zip(self.COLUMNS, cells, old, new, strict=True):
                if before != after and col.key in self._widths:
                    self.update_cell(key, col.key, cell)
            self._shown[key] = new
            if self._order is not None and old_row is not None:
                self._keep_order()
        elif visible:
            self._add(key, cells)
            self._keep_order()
        self._trim()

    def drop(self, key: str) -> None:
        self._rows.pop(key, None)
        if key in self._shown:
            self._remove(key)

    def clear_rows(self) -> None:
        """Forget every row (a new page of a listing, not an event)."""
        self._rows.clear()
        self._shown.clear()
        if self.is_mounted:
            self.clear()

    def keys(self) -> list[str]:
        return list(self._rows)

    def shown_keys(self) -> list[str]:
        return list(self._shown)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def selected_key(self) -> str | None:
        if not self._shown or self.cursor_row < 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # an empty or changing table: nothing selected
            return None
        return row_key.value

    def select_key(self, key: str) -> None:
        if key in self._shown:
            self._chosen = True
            self.move_cursor(row=self.get_row_index(key))

    def _keep(self, key: str | None) -> None:
        if key is not None and key in self._shown:
            self.move_cursor(row=self.get_row_index(key))

    def cell_text(self, key: str, column: str) -> str:
        """What a cell shows (for tests and for people reading the code)."""
        cells, _ = self._rows[key]
        idx = [c.key for c in self.COLUMNS].index(column)
        cell = cells[idx]
        return cell.plain if isinstance(cell, Text) else cell

    def shown_columns(self) -> list[str]:
        return list(self._widths)

    # --- order, filter, hidden rows --------------------------------------------------------------

    def order_by(self, sort_key: Callable[[str], Any] | None, *, reverse: bool = False) -> None:
        """Keep the rows in this order (a key function of the row key); None: as they came."""
        self._order = sort_key
        self._reverse = reverse
        if self.is_mounted:
            self._keep_order()

    def _keep_order(self) -> None:
        if self._order is None:
            return
        shown = list(self._shown)
        wanted = sorted(shown, key=self._order, reverse=self._reverse)
        if wanted != shown:
            self._rebuild()

    @property
    def filter_text(self) -> str:
        return self._filter

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        if self.is_mounted:
            self._rebuild()

    def row_hidden(self, key: str) -> bool:
        """Rows a subclass hides whatever the filter (ended runs, when asked)."""
        return False

    def refilter(self) -> None:
        """Show again exactly the rows that match and are not hidden."""
        if self.is_mounted:
            self._rebuild()

    def _matches(self, key: str, search: str) -> bool:
        if self.row_hidden(key):
            return False
        return not self._filter or self._filter in search.lower()

    # --- keys ----------------------------------------------------------------------------------

    def action_first_row(self) -> None:
        self._chosen = True
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self._chosen = True
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def action_cursor_up(self) -> None:
        self._chosen = True
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._chosen = True
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._chosen = True
        super().action_page_up()

    def action_page_down(self) -> None:
        self._chosen = True
        super().action_page_down()

    async def _on_click(self, event: Click) -> None:
        self._chosen = True
        await super()._on_click(event)

    # --- internals -----------------------------------------------------------------------------

    def _rebuild(self, *, columns: bool = False) -> None:
        """Add the rows again (in order, filtered), keeping a chosen row selected; a cursor
        nobody moved stays on the first row (where new live runs appear) rather than follow
        its row down and scroll the top out of view."""
        selected = self.selected_key() if self._chosen else None
        self.clear(columns=columns)
        self._shown.clear()
        if columns:
            room = (self.size.width - SCROLLBAR) if self.size.width else 0
            if room > 0:
                self._widths = fit_columns(self.COLUMNS, room, self.cell_padding)
            else:  # not laid out yet: every column at its preferred width until the first resize
                self._widths = {c.key: c.width or len(c.label) for c in self.COLUMNS}
            self._fitted_to = self.size.width if room > 0 else -1
            for col in self.COLUMNS:
                if col.key in self._widths:
                    self.add_column(col.label, key=col.key, width=self._widths[col.key])
        keys = [k for k, (_, search) in self._rows.items() if self._matches(k, search)]
        if self._order is not None:
            keys.sort(key=self._order, reverse=self._reverse)
        for key in keys:
            self._add(key, self._rows[key][0])
        self._keep(selected)

    def _visible_cells(self, cells: list[Cell]) -> list[Cell]:
        return [cell for col, cell in zip(self.COLUMNS, cells, strict=True) if col.key in self._widths]

    def _add(self, key: str, cells: list[Cell]) -> None:
        self.add_row(*self._visible_cells(cells), key=key)
        self._shown[key] = tuple(_sig(c) for c in cells)

    def _remove(self, key: str) -> None:
        self.remove_row(key)
        del self._shown[key]

    def _trim(self) -> None:
        if self.max_rows is None:
            return
        while len(self._rows) > self.max_rows:
            oldest = next(iter(self._rows))
            self.drop(oldest)
