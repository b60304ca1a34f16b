"""The dashboard's tables: runs, the approvals inbox, the network feed. Plain dicts in.

Each `put_*` takes one record as the daemon sends it (a run from runs.list or run.state, a
request from approvals.list or approval.requested, a net.decision / net.closed event) and
updates one keyed row.
"""

from __future__ import annotations

import itertools
import math
import shlex
import time
from collections.abc import Callable
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip

from console.text import destination, request_line
from widgets.format import (
    LIVE_STATES,
    backend_text,
    clock,
    decision_of,
    decision_text,
    duration,
    live_first,
    printable,
    provenance_text,
    run_state_text,
    safe,
    size,
    style,
)
from widgets.keyed_table import Column, KeyedTable


def run_uptime(run: dict[str, Any], now: float) -> float | None:
    started = run.get("started_at")
    if not started:
        return run.get("uptime_s")
    end = run.get("ended_at") if run.get("state") not in LIVE_STATES else None
    return (end or now) - started


def command_line(run: dict[str, Any]) -> str:
    """The command as a shell would take it back (quoted), so it can be copied and re-run."""
    cmd = run.get("command") or []
    return shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)


RUN_SORTS = {
    "state": live_first,
    "age": lambda r: (-float(r.get("started_at") or 0), str(r.get("id"))),
    "profile": lambda r: (str(r.get("profile") or ""), *live_first(r)),
}


class RunsTable(KeyedTable):
    """Runs, live first. Narrow terminals drop TOK/S, then MEM, CPU...; ID and STATE stay."""

    COLUMNS = (
        Column("id", "ID", 4, priority=100), Column("profile", "PROFILE", 8, priority=50, min=7),
        Column("backend", "BACKEND", 11, priority=70), Column("state", "STATE", 13, priority=95),
        Column("up", "UP", 6, priority=40), Column("cpu", "CPU", 4, priority=30),
        Column("mem", "MEM", 5, priority=25), Column("tps", "TOK/S", 5, priority=10),
        Column("asks", "ASK", 3, priority=60),
        Column("command", "COMMAND", 40, priority=80, min=16, flex=True),
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: dict[str, dict[str, Any]] = {}  # what each row shows, for order and hiding
        self.hide_ended = False
        self.sort = "state"
        self.reverse = False
        self.order_by(self._sort_key)

    def _sort_key(self, key: str) -> Any:
        return RUN_SORTS[self.sort](self.runs.get(key) or {"id": key})

    def set_sort(self, sort: str) -> None:
        """Sort by `sort`; asked again, the order turns around."""
        self.reverse = not self.reverse if sort == self.sort else False
        self.sort = sort
        self.order_by(self._sort_key, reverse=self.reverse)

    def set_hide_ended(self, hide: bool) -> None:
        self.hide_ended = hide
        self.refilter()

    def drop(self, key: str) -> None:
        self.runs.pop(key, None)
        super().drop(key)

    def row_hidden(self, key: str) -> bool:
        return self.hide_ended and (self.runs.get(key) or {}).get("state") not in LIVE_STATES

    def put_run(self, run: dict[str, Any], *, now: float, pending: int = 0,
                tokens_per_s: float | None = None, known: bool = True) -> None:
        """known=False: the daemon is away, so a live run's state is unknown (not "running"
        with a clock that keeps counting)."""
        self.runs[str(run["id"])] = run
        stats = run.get("stats") or {}
        live = run.get("state") in LIVE_STATES
        unknown = live and not known
        cpu = stats.get("cpu_percent") if live and known else None
        mem = stats.get("rss_bytes") if live and known else None
        cells: list[str | Text] = [
            safe(run.get("id"), "bold"),
            safe(run.get("profile")),
            backend_text(run.get("backend")),
            Text("unknown", style=style("bold yellow")) if unknown
            else run_state_text(run),
            "-" if unknown else duration(run_uptime(run, now)),
            "-" if cpu is None else f"{cpu:.0f}%",
            size(mem) if mem else "-",
            "-" if not tokens_per_s or unknown else f"{tokens_per_s:.0f}" if tokens_per_s >= 10 else f"{tokens_per_s:.1f}",
            Text(str(pending), style=style("bold yellow")) if pending else "0",
            safe(command_line(run), limit=300),
        ]
        search = " ".join([str(run.get(k, "")) for k in ("id", "profile", "backend", "state")]
                          + [command_line(run)])
        if run.get("backend") == "none":
            search += " unsandboxed"
        if run.get("warning"):
            search += " (!) warning"
        self.put(str(run["id"]), cells, search)


ROW_MAX = 200  # characters of a request on its inbox row


class ApprovalInbox(KeyedTable):
    """Pending requests, oldest first (the order the daemon lists and announces them in).
    y / n on the selected row ask the screen to allow or deny that request once."""

    BINDINGS = [
        Binding("y", "decide(True)", "Allow", id="inbox_allow", tooltip="Allow the selected request once"),
        Binding("n", "decide(False)", "Deny", id="inbox_deny", tooltip="Deny the selected request once"),
    ]

    class Decide(Message):
        """y / n on a row; `shown` is what the row showed of the request (row_of), so a request
        put under the same id before the row caught up is not the one decided."""

        def __init__(self, request_id: str, allow: bool, shown: Any = None) -> None:
            super().__init__()
            self.request_id, self.allow, self.shown = request_id, allow, shown

    @staticmethod
    def row_of(req: dict[str, Any]) -> tuple[Any, ...]:
        """What a request's row shows of it: its run, its kind and its one line."""
        return (req.get("run_id"), req.get("kind"), summary(req))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._whole: dict[str, str | None] = {}  # id -> its whole line (None: more to review)
        self._slid = False  # the cursor moved onto another request without the person moving it
        # The request under the cursor when the table was last drawn with that row on the
        # screen (keys typed ahead, down y in one read, come before the next draw), and since
        # when (monotonic) it has been there.
        # Each is (id, what the row shows of the request): a request listed again under the
        # same id with another command is another request, its row not yet drawn.
        self._drawn: tuple[str, Any] | None = None
        self._drawn_since = 0.0
        self._row_request: dict[str, Any] = {}  # id -> what its row shows
        # When the key being handled was typed (monotonic; the app tells): a key typed before
        # the row was drawn is not about it (esc y in one read: the help closed, the screen
        # drawn with a row that came meanwhile, then the y).
        self.input_time: Callable[[], float] = lambda: math.inf

    class Review(Message):
        """y on a row that cannot show its request whole: the card shows it, y there allows."""

        def __init__(self, request_id: str, why: str = "The request does not fit its row") -> None:
            super().__init__()
            self.request_id, self.why = request_id, why

    def action_decide(self, allow: bool) -> None:
        key = self.selected_key()
        if key is None:
            return
        whole = allow and self.shows_whole(key) and not self._slid
        self._slid = False
        if allow and (self._drawn != self._held(key) or self.input_time() < self._drawn_since):
            self.post_message(self.Review(key, "The row was not on the screen yet"))
        else:
            self.post_message(self.Decide(key, allow, self._row_request.get(key))
                              if whole or not allow else self.Review(key))

    def render_lines(self, crop: Region) -> list[Strip]:
        header = self.header_height if self.show_header else 0
        rows = self.ordered_rows  # the cursor row's place, from DataTable's public parts
        height = rows[self.cursor_row].height if 0 <= self.cursor_row < len(rows) else 0
        # The header stays put; rows scroll under it.
        top = header + sum(r.height for r in rows[:self.cursor_row]) - round(self.scroll_y)
        # Under a dialog the screen is drawn too, dimmed or hidden: not seen (review s20).
        key = self.selected_key()
        if (key is not None and height and max(header, crop.y) <= top and top + height <= crop.bottom
                and self.screen.is_active and self._drawn != self._held(key)):
            self._drawn, self._drawn_since = self._held(key), time.monotonic()
        return super().render_lines(crop)

    def _held(self, key: str) -> tuple[str, Any]:
        return (key, self._row_request.get(key))

    def shows_whole(self, key: str) -> bool:
        """The row's REQUEST cell holds the whole request, uncut, and there is nothing else to
        review (a tool's input, a diff): only then may y on the row allow it."""
        line = self._whole.get(key)
        return line is not None and cell_len(line) <= min(ROW_MAX, self._widths.get("summary", 0))

    def drop(self, key: str) -> None:
        self._whole.pop(key, None)
        self._row_request.pop(key, None)
        self._watched(lambda: super(ApprovalInbox, self).drop(key))

    def put(self, key: str, cells: list[Any], search: str = "") -> None:
        self._watched(lambda: super(ApprovalInbox, self).put(key, cells, search))

    def _watched(self, change: Any) -> None:
        """A row removed above the cursor (or the cursor's own) leaves the cursor on the next
        request, which the person never chose: y then opens the card instead of allowing."""
        before = self.selected_key()
        change()
        self._slid = self._slid or (before is not None and self.selected_key() != before)

    def _rebuild(self, *, columns: bool = False) -> None:
        self._watched(lambda: super(ApprovalInbox, self)._rebuild(columns=columns))

    def select_key(self, key: str) -> None:
        self._slid = False
        super().select_key(key)

    def _moved(self, action: str) -> None:
        self._slid = False  # the person moved the cursor: what it is on now is theirs
        getattr(super(), action)()

    def action_cursor_up(self) -> None:
        self._moved("action_cursor_up")

    def action_cursor_down(self) -> None:
        self._moved("action_cursor_down")

    def action_page_up(self) -> None:
        self._moved("action_page_up")

    def action_page_down(self) -> None:
        self._moved("action_page_down")

    def action_scroll_top(self) -> None:
        self._moved("action_scroll_top")

    def action_scroll_bottom(self) -> None:
        self._moved("action_scroll_bottom")

    COLUMNS = (
        Column("id", "ID", 4, priority=100), Column("age", "AGE", 6, priority=40),
        Column("expires", "EXPIRES", 7, priority=60), Column("run", "RUN", 4, priority=70),
        Column("kind", "KIND", 7, priority=50),
        Column("summary", "REQUEST", 40, priority=90, min=20, flex=True),
    )

    def put_request(self, req: dict[str, Any], *, now: float, expires_in: float | None) -> None:
        age = max(0.0, now - float(req.get("created_at") or now))
        expiring = expires_in is not None and expires_in < 20
        cells: list[str | Text] = [
            safe(req.get("id"), "bold"),
            duration(age),
            Text(duration(expires_in), style=style("bold red") if expiring else ""),
            safe(req.get("run_id")),
            safe(req.get("kind")),
            safe(summary(req), limit=ROW_MAX),
        ]
        search = " ".join(str(req.get(k, "")) for k in ("id", "run_id", "profile", "kind", "subject"))
        detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
        self._whole[str(req["id"])] = None if "tool_input" in detail else summary(req)
        self._row_request[str(req["id"])] = self.row_of(req)
        self.put(str(req["id"]), cells, search)


def summary(req: dict[str, Any]) -> str:
    """One line for a request: what will run, without the kind the table shows beside it; the
    agent's words only beside it, marked as the agent's (console.text)."""
    return request_line(req)


def net_by(event: dict[str, Any]) -> str:
    """Who decided a connection: the person, the grant, or the rule and where it came from."""
    prov = event.get("provenance")
    if prov:
        return provenance_text(prov)
    rule = event.get("rule")
    if rule:
        where = f" ({event['source']})" if event.get("source") else ""
        return printable(f"rule {rule}{where}")
    return printable(event.get("reason") or event.get("basis") or "default")


class NetFeed(KeyedTable):
    """Network decisions as they happen; a closed connection fills in its bytes."""

    COLUMNS = (
        Column("time", "TIME", 8, priority=30), Column("run", "RUN", 4, priority=70),
        Column("dest", "DESTINATION", 27, priority=90, min=20),
        Column("decision", "DECISION", 8, priority=92), Column("bytes", "UP/DOWN", 11, priority=20),
        Column("by", "RULE OR PERSON", 40, priority=85, min=28, flex=True),
    )

    def __init__(self, *, max_rows: int = 300, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(max_rows=max_rows, id=id, classes=classes)
        self._ids = itertools.count(1)
        self._open: dict[tuple[str, str, int], list[str]] = {}
        self._events: dict[str, dict[str, Any]] = {}

    def reset(self, events: list[dict[str, Any]]) -> None:
        """Show exactly these events (oldest first), as after attaching."""
        self.clear_rows()
        self._open.clear()
        self._events.clear()
        for event in events:
            self.put_event(event)

    def put_event(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "net.decision":
            self._put_decision(event)
        elif kind == "net.closed":
            self._put_closed(event)

    def _put_decision(self, ev: dict[str, Any]) -> None:
        key = f"n{next(self._ids)}"
        self._events[key] = ev
        if ev.get("action") == "allow":
            self._open.setdefault(_conn_key(ev), []).append(key)
        self._render(key, ev, "open" if ev.get("action") == "allow" else "-")
        if self.is_mounted and not self.has_focus:  # the newest row in view, unless someone reads
            self.scroll_end(animate=False, x_axis=False)
        if len(self._events) > 2 * (self.max_rows or 300):
            for k in [k for k in self._events if k not in self]:
                self._events.pop(k, None)

    def _put_closed(self, ev: dict[str, Any]) -> None:
        waiting = self._open.get(_conn_key(ev))
        if not waiting:
            return
        key = waiting.pop(0)
        if not waiting:
            self._open.pop(_conn_key(ev), None)
        decision = self._events.get(key)
        if decision is None or key not in self:
            return
        moved = f"{size(ev.get('bytes_up'))}/{size(ev.get('bytes_down'))}"
        self._render(key, decision, moved)

    def _render(self, key: str, ev: dict[str, Any], moved: str) -> None:
        dest = destination(ev.get("host", "?"), ev.get("port", "?"))  # [v6]:port (review h166)
        action = ev.get("action")
        cells: list[str | Text] = [
            clock(ev.get("ts")),
            safe(ev.get("run_id")),
            safe(dest, limit=60),
            decision_text(action),
            moved,
            safe(net_by(ev), limit=200),
        ]
        search = f"{ev.get('run_id', '')} {dest} {action} {net_by(ev)}"
        self.put(key, cells, search)


def short_time(ts: float | None) -> str:
    """Month, day and time: what a person scanning a page of history needs."""
    return clock(ts, date=True)[5:] if ts else "-"


def _conn_key(ev: dict[str, Any]) -> tuple[str, str, int]:
    return (str(ev.get("run_id")), str(ev.get("host")), int(ev.get("port") or 0))


class HistoryTable(KeyedTable):
    """Recorded events, one row each, as the history op returns them (newest first)."""

    COLUMNS = (
        Column("id", "ID", 6, priority=40), Column("time", "TIME", 14, priority=70),
        Column("run", "RUN", 4, priority=50), Column("kind", "KIND", 18, priority=80, min=14),
        Column("by", "BY", 10, priority=30), Column("decision", "DECISION", 8, priority=35),
        Column("text", "TEXT", 60, priority=90, min=28, flex=True),
    )

    def put_event(self, row: dict[str, Any]) -> None:
        decision = decision_of(row)
        cells: list[str | Text] = [
            str(row.get("id", "")),
            short_time(row.get("ts")),
            safe(row.get("run_id") or "-"),
            safe(row.get("kind")),
            safe(row.get("actor") or "-", limit=20),
            decision_text(decision) if decision else "-",
            safe(row.get("text") or "", limit=300),
        ]
        self.put(str(row.get("id")), cells)
