"""The dashboard: runs, the approvals inbox, the network feed, the GPU strip.

Every table is keyed: an event changes the cells of one row, never rebuilds the table.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from console.tui.screens.base import PilotScreen
from console.tui.state import LIVE_STATES, Change
from widgets.format import printable
from widgets.keyed_table import KeyedTable
from widgets.panels import GpuStrip
from widgets.tables import ApprovalInbox, NetFeed, RunsTable, command_line

WIDE = 140


class DashboardScreen(PilotScreen):
    BINDINGS = [
        Binding("s", "start_run", "Start run", id="start_run"),
        Binding("h", "history", "History", id="history"),
        Binding("p", "policy", "Policy", id="policy"),
        Binding("u", "gpu", "GPU", id="gpu", show=False),
        Binding("b", "bench", "Workload benchmark (replay sweeps)", id="bench", show=False),
        Binding("x", "stop(False)", "Stop", id="stop_run"),
        Binding("X", "stop(True)", "Kill", id="kill_run", show=False),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("e", "toggle_ended", "Ended", id="toggle_ended", tooltip="Hide/show ended runs"),
        Binding("S", "sort('state')", "Sort: live first", id="sort_state", show=False),
        Binding("A", "sort('age')", "Sort: newest first", id="sort_age", show=False),
        Binding("P", "sort('profile')", "Sort: by profile", id="sort_profile", show=False),
        Binding("c", "copy(False)", "Copy the ID", id="copy_id", show=False),
        Binding("C", "copy(True)", "Copy the command", id="copy_command", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._said: dict[str, str] = {}

    def compose_body(self) -> Iterable[Widget]:
        yield Input(compact=True, placeholder="filter runs, approvals and network (esc clears)",
                    id="filter", classes="filter-bar")
        with Vertical(id="dash"):
            with Container(id="runs-panel", classes="panel"):
                yield Static("", id="runs-empty", classes="empty")
                yield RunsTable(id="runs")
            with Container(id="lower"):
                with Container(id="approvals-panel", classes="panel"):
                    yield Static("", id="inbox-empty", classes="empty")
                    yield ApprovalInbox(id="inbox")
                with Container(id="net-panel", classes="panel"):
                    yield Static("", id="net-empty", classes="empty")
                    yield NetFeed(id="net")
        yield GpuStrip(id="gpu")

    # --- filling -------------------------------------------------------------------------------

    def on_ready(self) -> None:
        self.query_one("#filter", Input).display = False
        state = self.ph.state
        for run in state.ordered_runs():
            self._put_run(run["id"])
        for req in state.approvals.values():
            self._put_request(req["id"])
        net = self.query_one(NetFeed)
        for event in state.net:
            net.put_event(event)
        self._show_gpu()
        self._titles()
        self.query_one(RunsTable).focus()

    def on_change(self, change: Change) -> None:
        if change.topic == "link":  # a run's state is known only while attached
            for rid in self.ph.state.runs:
                self._put_run(rid)
        if change.topic == "runs" and change.key:
            self._put_run(change.key)
        elif change.topic == "approvals" and change.key:
            self._put_request(change.key)
        elif change.topic == "net" and change.event:
            self.query_one(NetFeed).put_event(change.event)
        elif change.topic == "gpu":
            self._show_gpu()
        elif change.topic == "reset":
            self._reset()
        self._titles()

    def on_tick(self, now: float) -> None:
        state = self.ph.state
        for rid, run in state.runs.items():
            if run.get("state") in LIVE_STATES:
                self._put_run(rid)
        for rid in state.approvals:
            self._put_request(rid)

    def _reset(self) -> None:
        """After a reconnect: drop what the daemon no longer has, then fill again."""
        state = self.ph.state
        runs = self.query_one(RunsTable)
        for key in runs.keys():
            if key not in state.runs:
                runs.drop(key)
        inbox = self.query_one(ApprovalInbox)
        for key in inbox.keys():
            if key not in state.approvals:
                inbox.drop(key)
        for rid in state.runs:
            self._put_run(rid)
        for rid in state.approvals:
            self._put_request(rid)
        self.query_one(NetFeed).reset(list(state.net))
        self._show_gpu()

    def _put_run(self, run_id: str) -> None:
        state = self.ph.state
        table = self.query_one(RunsTable)
        run = state.runs.get(run_id)
        if run is None:
            table.drop(run_id)
            return
        now = self.ph.now()
        table.put_run(run, now=now, pending=len(state.pending(run_id)),
                      tokens_per_s=state.token_rate(run_id, now), known=state.connected)

    def _put_request(self, request_id: str) -> None:
        state = self.ph.state
        inbox = self.query_one(ApprovalInbox)
        req = state.approvals.get(request_id)
        if req is None:
            inbox.drop(request_id)
        else:
            now = self.ph.now()
            inbox.put_request(req, now=now, expires_in=state.expires_in(req, now))
        run_id = (req or {}).get("run_id")
        if run_id:
            self._put_run(run_id)
        else:  # a resolved request: its run's count may have dropped
            for rid in list(self.query_one(RunsTable).keys()):
                self._put_run(rid)

    def _show_gpu(self) -> None:
        state = self.ph.state
        power = {key: series.points() for key, series in state.gpu_history.power.items()}
        self.query_one(GpuStrip).show(state.gpu, state.gpu_note, power=power, now=self.ph.now())

    def _titles(self) -> None:
        state = self.ph.state
        live = sum(1 for r in state.runs.values() if r.get("state") in LIVE_STATES)
        unsandboxed = sum(1 for r in state.runs.values()
                          if r.get("state") in LIVE_STATES and r.get("backend") == "none")
        table = self.query_one(RunsTable)
        ended = len(state.runs) - live
        hidden = f"{ended} ended hidden, e shows" if table.hide_ended else f"{ended} ended"
        runs_title = f"Runs ({live} live, {hidden})"
        if table.sort != "state" or table.reverse:
            runs_title += f" · by {table.sort}{' reversed' if table.reverse else ''}"
        if not state.connected and live:
            runs_title += " · daemon away: states unknown"
        if unsandboxed:
            runs_title += f" · {unsandboxed} UNSANDBOXED"
        self.query_one("#runs-panel").border_title = runs_title + filtered(table)
        pending = len(state.approvals)
        self.query_one("#approvals-panel").border_title = f"Approvals ({pending} pending)" + (
            "" if state.connected or not pending else " · daemon away: as last known"
        ) + filtered(self.query_one(ApprovalInbox))
        self.query_one("#net-panel").border_title = "Network" + filtered(self.query_one(NetFeed))
        self._empty("#runs-empty", not state.runs,
                    "No runs yet. Press s to start one (or : for the command palette),\n"
                    "or from a shell: pilothouse run demo")
        self._empty("#inbox-empty", not state.approvals,
                    "No approval pending. Requests from every run appear here, oldest first.")
        self._empty("#net-empty", not state.net,
                    "No network activity yet. Each destination a run tries shows here.")

    def _empty(self, selector: str, empty: bool, text: str) -> None:
        """An empty panel says what will appear there and how to get it, instead of headers."""
        label = self.query_one(selector, Static)
        if label.display != empty:
            label.display = empty
            if label.parent is not None:
                label.parent.query_one(DataTable).display = not empty
        if empty and self._said.get(selector) != text:
            self._said[selector] = text
            label.update(Text(text, style="dim"))

    def on_resize(self, event: Resize) -> None:
        self.query_one("#lower").set_class(event.size.width >= WIDE, "wide")

    # --- keys ----------------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        if isinstance(event.data_table, RunsTable):
            self.ph.open_run(key)
        elif isinstance(event.data_table, ApprovalInbox):
            self.ph.action_open_approval(key)
        elif isinstance(event.data_table, NetFeed):
            run = event.data_table.cell_text(key, "run")
            if run in self.ph.state.runs:
                self.ph.open_run(run)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While the inbox has the focus its y / n take the footer's room: the runs table's own
        keys (stop, kill, hide ended) wait until the runs table has the focus again."""
        if action in ("stop", "toggle_ended") and isinstance(self.focused, ApprovalInbox):
            return False
        return True

    def action_start_run(self) -> None:
        self.ph.action_start_run()

    def action_history(self) -> None:
        self.ph.action_history()

    def action_policy(self) -> None:
        self.ph.action_policy()

    def action_gpu(self) -> None:
        self.ph.action_gpu()

    def action_bench(self) -> None:
        self.ph.action_bench()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.value = ""
        field.display = False
        self.query_one(RunsTable).focus()

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        for table in (self.query_one(RunsTable), self.query_one(ApprovalInbox), self.query_one(NetFeed)):
            table.set_filter(event.value)
        self._titles()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.action_clear_filter()
        else:
            self.query_one(RunsTable).focus()

    def action_toggle_ended(self) -> None:
        table = self.query_one(RunsTable)
        table.set_hide_ended(not table.hide_ended)
        self._titles()

    def action_sort(self, sort: str) -> None:
        self.query_one(RunsTable).set_sort(sort)
        self._titles()

    def action_copy(self, command: bool) -> None:
        """The selected run's ID or command to the clipboard (OSC 52, where the terminal lets)."""
        run = self.ph.state.runs.get(self.query_one(RunsTable).selected_key() or "")
        if run is None:
            self.notify("Select a run first (arrows or j/k in the runs table).", severity="warning")
            return
        self.ph.copy(command_line(run) if command else str(run["id"]))

    def action_stop(self, kill: bool) -> None:
        run_id = self.query_one(RunsTable).selected_key()
        run = self.ph.state.runs.get(run_id or "")
        if run is None or run.get("state") not in LIVE_STATES:
            self.notify("Select a live run first (arrows in the runs table).", severity="warning")
            return
        self.ph.confirm_stop(run, kill)


def filtered(table: KeyedTable) -> str:
    """What a panel's title adds while the filter hides rows: an empty table under "1 pending"
    said nothing of the filter that emptied it (review h198)."""
    rows = [key for key in table.keys() if not table.row_hidden(key)]
    if not table.filter_text or not rows:
        return ""
    return (f" · {len(table.shown_keys())} of {len(rows)} shown, "
            f"filter \"{printable(table.filter_text, 20)}\" (esc clears)")
