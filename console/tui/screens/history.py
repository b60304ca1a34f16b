"""The recorded history: full-text search, filters, pages from SQLite (history op, before_id),
kept up to date while the newest page is shown, and an export of everything the filters match
(the export op, not just the page) to JSONL or CSV."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import stat
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Select, Static

from console.client.sync import ClientError
from console.config.units import parse_duration
from console.paths import LinkOnTheWay, open_folder_of
from console.text import controls_shown
from console.tui.saving import stamped
from console.tui.screens.base import PilotModal, PilotScreen, ScrollsBody, scroll_keys
from console.tui.screens.dialogs import ConfirmScreen, PromptScreen
from console.tui.state import Change
from widgets.format import decision_of, style
from widgets.tables import HistoryTable

PAGE = 100
KINDS = [("any kind", ""), ("approvals", "approval."), ("network", "net."), ("runs", "run."),
         ("policy", "policy."), ("operator", "operator."), ("grants", "grant."),
         ("daemon", "daemon."), ("tokens", "tokens")]
DECISIONS = [("any decision", ""), ("allow", "allow"), ("deny", "deny"), ("ask", "ask")]
LIVE_DELAY_S = 1.0  # after something happened, the newest page is read again this much later
EXPORT_FIELDS = ("id", "ts", "time", "run_id", "kind", "actor", "text", "data")


def parse_when(text: str, now: float) -> float | None:
    """An age ("2h", "30m", "7d": that long ago) or a local date/time ("2025-01-31 14:00")."""
    text = text.strip()
    if not text:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    raise ValueError(f'"{text}" is neither an age (2h, 30m, 7d) nor a date (2025-01-31 14:00)')


class HistoryScreen(PilotScreen):
    BINDINGS = [
        Binding("slash", "search", "Search", id="history_search"),
        Binding("right_square_bracket", "older", "Older", id="history_older"),
        Binding("left_square_bracket", "newer", "Newer", id="history_newer"),
        Binding("e", "export", "Export", id="history_export"),
        Binding("r,ctrl+r", "reload", "Refresh", id="history_reload"),
        Binding("escape", "back", "Back", id="back"),
    ]

    def __init__(self, *, run: str = "", search: str = "") -> None:
        super().__init__()
        self._initial = (run, search)
        self._cursors: list[int | None] = [None]  # before_id of each page seen
        self._next_before: int | None = None
        self._live_pending = False
        self.rows: list[dict[str, Any]] = []

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="history-filters"):
            yield Input(compact=True, placeholder="search the history (full text), enter to search",
                        id="h-search", value=self._initial[1])
            with Horizontal(id="h-row"):
                yield Input(compact=True, placeholder="run id", id="h-run", value=self._initial[0])
                yield Select(KINDS, value="", allow_blank=False, id="h-kind", compact=True)
                yield Select(DECISIONS, value="", allow_blank=False, id="h-decision", compact=True)
            with Horizontal(id="h-when"):
                yield Input(compact=True, placeholder="since (2h, 2025-01-31)", id="h-since")
                yield Input(compact=True, placeholder="until (same)", id="h-until")
        yield Static("", id="history-empty", classes="empty")
        yield HistoryTable(id="history")
        yield Static(id="history-status")

    def on_ready(self) -> None:
        self.sub_title = "history"
        self.query_one(HistoryTable).focus()
        self.load()

    def on_change(self, change: Change) -> None:
        """Something happened (a decision, a run, a connection): on the newest page, read it
        again shortly, so new events appear without a key."""
        recorded = change.topic in ("approvals", "resolved", "net") or (
            change.topic == "runs" and change.event is not None)  # not a poll's new figures
        if recorded and len(self._cursors) == 1 and not self._live_pending:
            self._live_pending = True
            self.set_timer(LIVE_DELAY_S, self._live_reload)

    def _live_reload(self) -> None:
        self._live_pending = False
        if self.is_attached and len(self._cursors) == 1 and not isinstance(self.focused, Input):
            self.load()

    # --- loading -------------------------------------------------------------------------------

    def _filters(self) -> dict[str, Any]:
        now = self.ph.now()
        args: dict[str, Any] = {}
        search = self.query_one("#h-search", Input).value.strip()
        if search:
            args["search"] = search
        kind = self.query_one("#h-kind", Select).value
        if isinstance(kind, str) and kind:
            args["kind"] = kind
        run = self.query_one("#h-run", Input).value.strip()
        if run:
            args["run"] = run
        since = parse_when(self.query_one("#h-since", Input).value, now)
        until = parse_when(self.query_one("#h-until", Input).value, now)
        if since is not None:
            args["since"] = since
        if until is not None:
            args["until"] = until
        return args

    @property
    def decision(self) -> str:
        value = self.query_one("#h-decision", Select).value
        return value if isinstance(value, str) else ""

    def load(self, before_id: int | None = None) -> None:
        self._fetch(before_id)

    @work(group="history", exclusive=True)
    async def _fetch(self, before_id: int | None) -> None:
        try:
            args = self._filters()
        except ValueError as exc:
            self.ph.report(str(exc))
            return
        decision = self.decision
        # The decision is matched here: events record it as decision, action or allow.
        limit = PAGE * 5 if decision else PAGE
        status = self.query_one("#history-status", Static)
        status.update(Text("loading...", style="dim"), layout=False)
        try:
            page = await self.ph.source.call("history", limit=limit, before_id=before_id,
                                             paged=True, **args)
        except ClientError as exc:
            self.ph.report(exc)
            status.update(Text(f"could not load: {exc.message}", style=style("bold red")), layout=False)
            return
        rows = page["rows"]  # fewer than asked when they are large: `more` says if that is all
        self._next_before = rows[-1]["id"] if page["more"] else None
        if decision:
            rows = [r for r in rows if decision_of(r) == decision]
        self.rows = rows
        table = self.query_one(HistoryTable)
        selected = table.selected_key()
        table.clear_rows()
        for row in rows:
            table.put_event(row)
        if selected is not None:
            table.select_key(selected)
        empty = self.query_one("#history-empty", Static)
        empty.display = not rows
        empty.update(Text("No events match. Change the search or the filters "
                          "(esc back, / search).", style="dim"))
        self._status()

    def _status(self) -> None:
        page = len(self._cursors)
        k = self.ph.key_for
        text = Text()
        text.append(f"page {page} · {len(self.rows)} event(s)", style="bold")
        if self.rows:
            text.append(f" · ids {self.rows[-1]['id']}..{self.rows[0]['id']}")
        keys = [f"{k('history_search', '/')}: search"]
        if self._next_before is not None:
            keys.append(f"{k('history_older', ']')}: older")
        if page > 1:
            keys.append(f"{k('history_newer', '[')}: newer")
        keys.append(f"{k('history_export', 'e')}: export all that match")
        text.append("   " + "  ".join(keys), style="dim")
        self.query_one("#history-status", Static).update(text, layout=False)

    # --- keys ----------------------------------------------------------------------------------

    def _restart(self) -> None:
        self._cursors = [None]
        self.load()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._restart()
        self.query_one(HistoryTable).focus()

    @on(Select.Changed)
    def _selected(self, event: Select.Changed) -> None:
        if self.is_attached and self.query_one(HistoryTable).is_mounted:
            self._restart()

    def action_search(self) -> None:
        self.query_one("#h-search", Input).focus()

    def action_reload(self) -> None:
        self.load(self._cursors[-1])

    def action_older(self) -> None:
        if self._next_before is None:
            self.notify("This is the oldest page.")
            return
        self._cursors.append(self._next_before)
        self.load(self._next_before)

    def action_newer(self) -> None:
        if len(self._cursors) == 1:
            self.notify("This is the newest page.")
            return
        self._cursors.pop()
        self.load(self._cursors[-1])

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(HistoryTable).focus()
            return
        super().action_back()

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        row = next((r for r in self.rows if str(r.get("id")) == event.row_key.value), None)
        if row is not None:
            self.app.push_screen(EventScreen(row))

    def action_export(self) -> None:
        if not self.rows:
            self.notify("Nothing matches to export.", severity="warning")
            return
        self._export()

    @work(group="history-export", exclusive=True)
    async def _export(self) -> None:
        try:
            args = self._filters()
        except ValueError as exc:
            self.ph.report(str(exc))
            return
        decision = self.decision
        path = await self.app.push_screen_wait(
            PromptScreen("Export the history",
                         "Every event the search and filters match (not only this page); "
                         "a name ending in .csv writes CSV, else JSON lines:",
                         str(stamped("pilothouse-history", "jsonl", self.ph.now()))))
        if not path:
            return
        # Not resolved, and a link refused (review h142, as the CLI's -o): an agent may leave
        # `events.jsonl -> ~/.ssh/authorized_keys` in its workspace for a person to write
        # through, or `out -> ~/.ssh` for `out/events.jsonl` (h144: console.paths).
        target = Path(path).expanduser().absolute()
        refused = links_on_the_way(target)
        if refused:
            self.ph.report(f"cannot write {target}: {refused} is a link\n"
                           "give the path the link leads to, with no link on the way (a link "
                           "in a workspace may be the agent's, leading to a file of yours)")
            return
        if target.exists():
            ok = await self.app.push_screen_wait(
                ConfirmScreen("Replace the file?", Text(f"{target} exists. Replace it?"), yes="Replace"))
            if not ok:
                return
        rows: list[dict[str, Any]] = []
        try:
            async for event in self.ph.source.stream("export", **args):
                if event.get("kind") == "export.rows":
                    rows.extend(r for r in event.get("rows") or []
                                if not decision or decision_of(r) == decision)
        except ClientError as exc:
            self.ph.report(exc, title="Export failed")
            return
        try:
            count = await asyncio.to_thread(write_export, target, rows)
        except OSError as exc:
            self.ph.report(f"could not write {target}: {exc.strerror or exc}\n"
                           "pick a folder you can write to")
            return
        self.notify(f"{count} event(s) written to {target}", title="Exported")


def write_export(path: Path, rows: list[dict[str, Any]]) -> int:
    """JSON lines, or CSV when the name ends in .csv (data as JSON in one column); written
    beside the target and moved into place, so a failed export leaves no half file."""
    folder, name = open_folder_of(str(path))  # no agent's link on the way (console.paths)
    tmp = f"{name}.tmp{int(time.time() * 1000)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o666, dir_fd=folder)  # EXCL: never through a link there
    except BaseException:
        os.close(folder)
        raise
    with open(fd, "w", encoding="utf-8", newline="") as f, _closing(folder):
        if path.suffix.lower() == ".csv":
            out = csv.DictWriter(f, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
            out.writeheader()
            for row in rows:  # an agent's controls shown, never obeyed when the file is read
                out.writerow({**row, "time": human_time(row.get("ts")),  # (review s31, helper 105)
                              "text": controls_shown(str(row.get("text") or "")),
                              "data": json.dumps(row.get("data"))})
        else:
            for row in rows:  # ASCII: a bidi override or C1 control stays a \u escape
                f.write(json.dumps(row) + "\n")
        f.flush()
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    return len(rows)


def links_on_the_way(target: Path) -> str:
    """The link an agent could have made that writing `target` would go through (as a
    folder on the way, or as the file itself: the export replaces it), or ""."""
    try:
        folder, name = open_folder_of(str(target))
    except LinkOnTheWay as exc:
        return exc.link
    except OSError:
        return ""  # said when it is written
    try:
        return str(target) if stat.S_ISLNK(os.stat(name, dir_fd=folder,
                                                   follow_symlinks=False).st_mode) else ""
    except OSError:
        return ""
    finally:
        os.close(folder)


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[None]:
    try:
        yield
    finally:
        os.close(fd)


def human_time(ts: Any) -> str:
    """A stored time as a person reads it: local date and time, and the zone."""
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


class EventScreen(ScrollsBody, PilotModal):
    """One recorded event, as stored (JSON)."""

    BINDINGS = [Binding("escape,q,enter", "cancel", "Close", id="event_close"), *scroll_keys("event")]

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog wide"):
            yield Label(Text(f"Event {self.row.get('id')} · {self.row.get('kind')} · "
                             f"{human_time(self.row.get('ts'))}"), id="dialog-title")  # never markup
            with VerticalScroll(id="dialog-body"):
                # ensure_ascii: anything odd a sandbox wrote shows as an escape, never raw
                yield Static(Syntax(json.dumps(self.row, indent=2, ensure_ascii=True), "json",
                                    theme="ansi_dark", word_wrap=True))
