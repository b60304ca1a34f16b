"""A DataTable updated by key: rows are added once and then changed cell by cell.

Events arrive many times a second; rebuilding a table on each would flicker and cost. Each row
remembers what it shows, and only cells whose text or style changed are updated. A text filter
hides rows that do not match (the only time the table is rebuilt is when the filter changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None


def _sig(cell: Cell) -> tuple[str, str]:
    if isinstance(cell, Text):
        return cell.plain, str(cell.style) + "|".join(str(s.style) for s in cell.spans)
    return cell, ""


class KeyedTable(DataTable[Cell]):
    """Subclasses set COLUMNS; rows are put by key with a list of cells and a search text."""

    COLUMNS: Sequence[Column] = ()

    def __init__(self, *, max_rows: int | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.max_rows = max_rows
        self._rows: dict[str, tuple[list[Cell], str]] = {}  # key -> (cells, search text)
        self._shown: dict[str, tuple[tuple[str, str], ...]] = {}
        self._filter = ""

    def on_mount(self) -> None:
        for col in self.COLUMNS:
            self.add_column(col.label, key=col.key, width=col.width)
        for key, (cells, search) in self._rows.items():
            if self._matches(search):
                self._add(key, cells)

    # --- data ----------------------------------------------------------------------------------

    def put(self, key: str, cells: list[Cell], search: str = "") -> None:
        self._rows[key] = (cells, search)
        if not self.is_mounted:
            return
        visible = self._matches(search)
        if key in self._shown:
            if not visible:
                self._remove(key)
                return
            old = self._shown[key]
            new = tuple(_sig(c) for c in cells)
            if old == new:
                return
            for col, cell, before, after in zip(self.COLUMNS, cells, old, new, strict=True):
                if before != after:
                    self.update_cell(key, col.key, cell)
            self._shown[key] = new
        elif visible:
            self._add(key, cells)
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
            self.move_cursor(row=self.get_row_index(key))

    def cell_text(self, key: str, column: str) -> str:
        """What a cell shows (for tests and for people reading the code)."""
        cells, _ = self._rows[key]
        idx = [c.key for c in self.COLUMNS].index(column)
        cell = cells[idx]
        return cell.plain if isinstance(cell, Text) else cell

    # --- filter --------------------------------------------------------------------------------

    @property
    def filter_text(self) -> str:
        return self._filter

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        if not self.is_mounted:
            return
        self.clear()
        self._shown.clear()
        for key, (cells, search) in self._rows.items():
            if self._matches(search):
                self._add(key, cells)

    def _matches(self, search: str) -> bool:
        return not self._filter or self._filter in search.lower()

    # --- internals -----------------------------------------------------------------------------

    def _add(self, key: str, cells: list[Cell]) -> None:
        self.add_row(*cells, key=key)
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
