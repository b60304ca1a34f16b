"""One run: its live output, its approvals and network, its resources; stop and kill.

The output comes from the `logs` op (follow) on a connection of its own: the stored lines first,
then live batches (one per 50 ms from the daemon). The worker reading them never touches the
Log: it puts each batch in a bounded spool and posts one OutputReady (none while one is on its
way); the screen takes the spool's lines at most every FLUSH_S and writes them in one call. A
flood faster than that is dropped in the spool and shown as `⟨N lines dropped⟩` (exact count).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from textual import on, work
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from console.client.sync import ClientError
from console.text import as_agents
from console.tui.screens.base import PilotScreen
from console.tui.screens.history import HistoryScreen
from console.tui.spool import OutputSpool
from console.tui.state import LIVE_STATES, Change
from widgets.output_log import OutputLog
from widgets.panels import RunHeader
from widgets.tables import ApprovalInbox, NetFeed, command_line

MAX_LINES = 5000
TAIL = 2000
FLUSH_S = 0.1  # the Log is written at most this often (one call per flush)


class OutputReady(Message):
    """Lines wait in the screen's spool. No payload: under load one replaces the next."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputReady)


class RunScreen(PilotScreen):
    BINDINGS = [
        Binding("space,f", "follow", "Follow/pause", id="run_follow"),
        Binding("slash", "filter", "Filter", id="run_filter"),
        Binding("n", "match(1)", "Next match", id="run_next_match", show=False),
        Binding("N", "match(-1)", "Previous match", id="run_prev_match", show=False),
        Binding("x", "stop(False)", "Stop", id="run_stop"),
        Binding("X", "stop(True)", "Kill", id="run_kill", show=False),
        Binding("h", "history", "History", id="run_history"),
        Binding("c", "copy", "Copy the command", id="run_copy", show=False),
        Binding("escape", "back", "Back", id="back"),
    ]

    def __init__(self, run_id: str, *, max_lines: int = MAX_LINES) -> None:
        super().__init__()
        self.run_id = run_id
        self.max_lines = max_lines
        self._lost = False
        # The spool leaves room in the Log for the drop marker before what it hands over.
        self.spool = OutputSpool(max(1, max_lines - max_lines // 5))
        self._flushed_at = 0.0
        self._flush_pending = False

    def compose_body(self) -> Iterable[Widget]:
        yield RunHeader(id="run-header")
        yield Input(compact=True, placeholder="show only lines containing... (enter keeps, esc clears)",
                    id="log-filter", classes="filter-bar")
        yield OutputLog(id="output", max_lines=self.max_lines)
        yield Static(id="log-status")
        with Horizontal(id="run-lower"):
            with Container(id="run-approvals", classes="panel"):
                yield ApprovalInbox(id="run-inbox")
            with Container(id="run-net", classes="panel"):
                yield NetFeed(id="run-netfeed", max_rows=100)

    def on_ready(self) -> None:
        self.sub_title = f"run {self.run_id}"
        self.query_one("#log-filter", Input).display = False
        state = self.ph.state
        for req in state.pending(self.run_id):
            self._put_request(req["id"])
        net = self.query_one(NetFeed)
        for event in state.net_for(self.run_id):
            net.put_event(event)
        self._header()
        self._titles()
        self._log_status()
        self.query_one(OutputLog).focus()
        if self.run_id not in state.runs:
            self.fetch_run()
        self.follow_output()

    # --- data ----------------------------------------------------------------------------------

    @work(group="run-fetch")
    async def fetch_run(self) -> None:
        try:
            run = await self.ph.source.call("run.get", run=self.run_id)
        except ClientError as exc:
            self.ph.report(exc)
            return
        for change in self.ph.state.load_runs([run]):
            self.ph.changes.publish(change)

    @work(group="run-output", exclusive=True)
    async def follow_output(self) -> None:
        if not self.is_attached:
            return
        skipped = 0  # daemon batches skipped and not yet counted in lines (a later batch says)
        try:
            async for event in self.ph.source.stream("logs", run=self.run_id, follow=True, tail=TAIL):
                kind = event.get("kind")
                if kind == "run.output":
                    skipped = 0  # its line number counts the lines skipped before it
                    lines = event.get("lines") or []
                    if event.get("stream") != "system":  # the agent's: never read as the daemon's notes
                        lines = [as_agents(line) for line in lines]
                    self._hand_over(lines, event.get("first"))
                elif kind == "bus.dropped":
                    skipped += int(event.get("count") or 0)
                elif kind == "stream.result":
                    result = event.get("result") or {}
                    if skipped:
                        self._hand_over([f"[pilothouse] the last {skipped} output batch(es) were "
                                         "skipped: this console read too slowly; `pilothouse logs "
                                         f"{self.run_id}` has every line"])
                    if "state" in result:
                        self._hand_over([f"[pilothouse] run {self.run_id} {result['state']} "
                                         f"(exit {result.get('exit_code')})"])
        except ClientError as exc:
            if exc.code in ("disconnected", "no-daemon"):
                self._lost = True
                self._hand_over(["[pilothouse] the daemon went away; the output picks up again "
                                 "when it is back"])
            else:
                self.ph.report(exc)
        except OSError as exc:
            self._lost = True
            self._hand_over([f"[pilothouse] could not read the output: {exc}"])

    def _hand_over(self, lines: list[str], first: int | None = None) -> None:
        """From the worker: into the spool, and tell the screen unless it was told already."""
        if self.spool.put(lines, first):
            self.post_message(OutputReady())

    @on(OutputReady)
    def _output_ready(self) -> None:
        wait = self._flushed_at + FLUSH_S - time.monotonic()
        if wait <= 0:
            self._flush_output()
        elif not self._flush_pending:
            self._flush_pending = True
            self.set_timer(wait, self._flush_output)

    def _flush_output(self) -> None:
        """Everything the spool holds into the Log in one call (and the drop marker)."""
        self._flush_pending = False
        if not self.is_attached:
            return
        self._flushed_at = time.monotonic()
        lines, dropped = self.spool.take()
        if lines or dropped:
            self.query_one(OutputLog).append(lines, dropped=dropped)
        # The status line in the same frame as the lines (a frame of its own would cost the
        # next key a wait for the frame after it).
        self._log_status()

    def on_change(self, change: Change) -> None:
        if change.topic == "link" and self._lost and self.ph.state.connected:
            self._lost = False  # the daemon is back: read the output again from the store
            self.query_one(OutputLog).reset()
            self.spool.reset()
            self.follow_output()
        if change.topic == "reset":  # attached again: the network as the history has it
            self.query_one(NetFeed).reset(self.ph.state.net_for(self.run_id))
        if change.topic == "runs" and change.key == self.run_id:
            self._header()
        elif change.topic == "approvals" and change.key:
            req = self.ph.state.approvals.get(change.key)
            if req is None or req.get("run_id") == self.run_id:
                self._put_request(change.key)
                self._header()
        elif change.topic == "net" and change.event and change.event.get("run_id") == self.run_id:
            self.query_one(NetFeed).put_event(change.event)
        self._titles()

    def on_tick(self, now: float) -> None:
        self._header()
        for req in self.ph.state.pending(self.run_id):
            self._put_request(req["id"])

    def _put_request(self, request_id: str) -> None:
        inbox = self.query_one(ApprovalInbox)
        req = self.ph.state.approvals.get(request_id)
        if req is None:
            inbox.drop(request_id)
            return
        now = self.ph.now()
        inbox.put_request(req, now=now, expires_in=self.ph.state.expires_in(req, now))

    def _header(self) -> None:
        state = self.ph.state
        run = state.runs.get(self.run_id)
        cpu, mem = state.usage.get(self.run_id, (None, None))
        self.query_one(RunHeader).show(run, now=self.ph.now(), pending=len(state.pending(self.run_id)),
                                       known=state.connected,
                                       cpu=cpu.points() if cpu else None,
                                       mem=mem.points() if mem else None)

    def _titles(self) -> None:
        pending = len(self.ph.state.pending(self.run_id))
        self.query_one("#run-approvals").border_title = f"Approvals ({pending} pending)"
        self.query_one("#run-net").border_title = "Network"

    def _log_status(self) -> None:
        """The line under the output. While output streams, once per flush (FLUSH_S)."""
        if not self.is_attached:
            return
        log = self.query_one(OutputLog)
        text = log.status()
        k = self.ph.key_for
        hint = (f"   {k('run_next_match', 'n')}/{k('run_prev_match', 'N')}: next/previous"
                if log.filter_text else
                f"   {k('run_follow', 'space')}: follow/pause  {k('run_filter', '/')}: filter")
        text.append(hint, style="dim")
        self.query_one("#log-status", Static).update(text, layout=False)

    # --- keys ----------------------------------------------------------------------------------

    def action_follow(self) -> None:
        log = self.query_one(OutputLog)
        log.set_following(not log.following)
        self._log_status()

    @on(OutputLog.Changed)
    def _follow_changed(self) -> None:
        self._log_status()

    def action_match(self, step: int) -> None:
        log = self.query_one(OutputLog)
        if not log.filter_text:
            self.notify("Filter first (/), then n and N step through the matches.")
            return
        log.step_match(step)
        self._log_status()

    def action_copy(self) -> None:
        run = self.ph.state.runs.get(self.run_id)
        if run is not None:
            self.ph.copy(command_line(run))

    def action_filter(self) -> None:
        field = self.query_one("#log-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#log-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one(OutputLog).set_filter(event.value)
        self._log_status()

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.query_one(OutputLog).focus()

    def action_back(self) -> None:
        field = self.query_one("#log-filter", Input)
        if field.has_focus or (field.display and field.value):
            field.value = ""
            field.display = False
            self.query_one(OutputLog).focus()
            return
        super().action_back()

    def action_history(self) -> None:
        self.app.push_screen(HistoryScreen(run=self.run_id))

    @on(DataTable.RowSelected, "#run-inbox")
    def _open_request(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.ph.action_open_approval(event.row_key.value)

    def action_stop(self, kill: bool) -> None:
        run = self.ph.state.runs.get(self.run_id)
        if run is None or run.get("state") not in LIVE_STATES:
            self.notify(f"Run {self.run_id} is not running.", severity="warning")
            return
        self.ph.confirm_stop(run, kill)
