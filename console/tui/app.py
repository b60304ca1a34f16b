"""The console: attaches to the daemon and shows runs, approvals, network, GPU and history.

One async worker holds the line to the daemon (console/tui/link.py) and posts messages; the app
applies them to its state (console/tui/state.py) and publishes what changed through a signal the
screens subscribe to. Nothing touches a widget from a thread. Errors go to one sink: `report`.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.signal import Signal

from console.client.sync import ClientError
from console.paths import Paths
from console.text import cut
from console.tui.commands import ApprovalCommands, RunCommands, ScreenCommands, StartRunCommands
from console.tui.decided import decision_toast
from console.tui.keys import check_keymap, help_rows, screen_scopes
from console.tui.link import Connected, DaemonEvent, DaemonLink, Disconnected, Polled, Source
from console.tui.notes import Notes, noted
from console.tui.notify import Notifier
from console.tui.saving import save_folder
from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.bench import BenchScreen
from console.tui.screens.dashboard import DashboardScreen
from console.tui.screens.dialogs import ConfirmScreen, stop_text
from console.tui.screens.gpu import GpuScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.history import HistoryScreen
from console.tui.screens.policy import PolicyScreen
from console.tui.screens.run_detail import RunScreen
from console.tui.screens.start_run import StartRunScreen
from console.tui.state import Change, ConsoleState
from widgets.format import printable, use_monochrome
from widgets.panels import ApprovalCard
from widgets.tables import summary


class PilothouseApp(App[None]):
    TITLE = "Pilothouse"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {StartRunCommands, ScreenCommands, RunCommands, ApprovalCommands}
    # The help key comes last so the footer, however narrow, ends with it.
    BINDINGS = [
        Binding("a", "open_approval", "Approvals", id="open_approval"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("colon", "command_palette", "Commands", show=False, id="palette"),
        Binding("ctrl+n", "toggle_notify", "Notifications", show=False, id="toggle_notify"),
        Binding("question_mark,f1", "help", "Keys", id="help"),
    ]

    def __init__(self, paths: Paths | None = None, config_file: Path | None = None, *,
                 source: Source | None = None, clock: Callable[[], float] | None = None,
                 keys: dict[str, str] | None = None, desktop_notify: bool | None = None,
                 freeze_startup: bool = False) -> None:
        # NO_COLOR: Textual's greys were colour codes still (h203); its ANSI mode sends none.
        super().__init__(ansi_color=True if os.environ.get("NO_COLOR") is not None else None)
        self.freeze_startup = freeze_startup
        if source is None:
            if paths is None:
                raise ValueError("give the daemon's paths or a source")
            source = DaemonLink(paths, config_file)
        self.paths = paths
        self.source: Source = source
        self.frozen = clock is not None  # fixed time (snapshots): no blinking, no ticking
        self.now: Callable[[], float] = clock or time.time
        self.state = ConsoleState()
        # The requests this console has sent a decision for (in flight or answered), from any
        # of its ways to decide (the card, an inbox row, the palette): one decision each.
        self.deciding: OrderedDict[str, None] = OrderedDict()
        self.changes: Signal[Change] = Signal(self, "changes")
        self.ticks: Signal[float] = Signal(self, "ticks")
        self.keys: dict[str, str] = dict(keys or {})
        self.notifier = Notifier(self._write_terminal, self.bell, desktop=desktop_notify)
        self.notes = Notes()
        self._attached_once = False
        self.startup_problems: list[str] = []
        use_monochrome(self.no_color)
        theme = os.environ.get("PILOTHOUSE_THEME")
        if theme and theme in self.available_themes:
            self.theme = theme

    # When the terminal gave the key or click being handled (Textual's monotonic clock). One
    # given before the screen showed a request is not about it: keys come in bursts (one read:
    # esc y, a y), handled one after the other with draws between them (review s20).
    input_time = math.inf

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent) and not event.is_forwarded:
            self.input_time = event.time
        await super().on_event(event)

    def get_default_screen(self) -> Screen[Any]:
        return DashboardScreen()

    def on_mount(self) -> None:
        if self.keys:
            self.set_keymap(self.keys)
        for problem in self.startup_problems:
            self.report(problem, title="Config")
        self.run_worker(self.source.run(self.post_message), name="daemon-link", group="link",
                        exclusive=True, exit_on_error=False)
        if not self.frozen:
            self.set_interval(1.0, self._tick)

    def on_ready(self) -> None:
        if self.freeze_startup:
            # What exists once the first frame is up (Textual, the screens, their styles:
            # ~90k objects) lives as long as the console. Out of the collector's sight, a full
            # collection no longer walks it: one took ~60 ms, a key's answer held behind it.
            # Only for the console's own process: frozen cycles are never collected, which a
            # process running many apps (the tests) would pay for.
            gc.collect()
            gc.freeze()

    def _tick(self) -> None:
        self.ticks.publish(self.now())

    # --- one error sink ---------------------------------------------------------------------

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A toast, never read as markup (screens' notify asks for it): its words are often an
        agent's, and a command holding `[/]` raised MarkupError and closed the console, one
        holding `[red]x[/red]` was toasted as `x`. While a card is shown, written under it."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)
        noted(self, message, title, severity, self.NOTIFICATION_TIMEOUT if timeout is None else timeout)

    def report(self, error: BaseException | str, *, title: str = "Error") -> None:
        """Show an error as a notification: what happened, and what to do next."""
        if isinstance(error, ClientError):
            text = error.message + (f"\n{error.hint}" if error.hint else "")
        elif isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
        else:
            text = error
        self.log.error(text)
        self.notify(printable(text, 600).replace("⏎", "\n"), title=title, severity="error", timeout=8)

    # --- messages from the link ----------------------------------------------------------------

    def on_connected(self, msg: Connected) -> None:
        state = self.state
        state.connected = True
        hello = msg.hello or {}
        state.hello = hello
        state.link_text = (f"attached to daemon {hello.get('daemon', '?')} (pid {hello.get('pid', '?')}) "
                           f"as {hello.get('user', '?')} ({hello.get('role', '?')})")
        state.profiles = list(msg.profiles or [])
        state.load_gpu(msg.gpu, msg.gpu_note)
        known_runs = set(state.runs)
        state.runs = {}
        state.load_runs(msg.runs)
        before = set(state.approvals)
        state.approvals = {}
        state.load_approvals(msg.approvals)
        state.load_net(msg.net)
        self.changes.publish(Change("link"))
        self.changes.publish(Change("reset"))
        for rid in [r["id"] for r in state.ordered_runs()] + sorted(known_runs - set(state.runs)):
            self.changes.publish(Change("runs", rid))
        for rid in list(state.approvals) + sorted(before - set(state.approvals)):
            self.changes.publish(Change("approvals", rid))
        self.changes.publish(Change("gpu"))
        if self._attached_once:
            fresh = [state.approvals[r] for r in state.approvals if r not in before]
            if fresh:
                self._announce(fresh[-1])
            self.notify("Attached to the daemon again.", title="Reconnected")
        self._attached_once = True

    def on_disconnected(self, msg: Disconnected) -> None:
        self.state.connected = False
        if msg.retry_in is None:
            self.state.link_text = f"cannot attach: {msg.reason}"
            self.report(f"{msg.reason}\n{msg.hint}".strip(), title="Cannot attach")
        else:
            if msg.attempt == 1 and msg.hint:  # why it failed, once; the status line keeps trying
                self.report(f"{msg.reason}\n{msg.hint}", title="Daemon")
            # The fix first: at 80 columns the end of the line is what gets cut.
            fix = f" · {msg.hint}" if msg.hint else ""
            self.state.link_text = (f"daemon gone, reconnecting{fix} · {msg.reason} "
                                    f"(try {msg.attempt}, next in {msg.retry_in:g}s)")
        self.changes.publish(Change("link"))

    def on_daemon_event(self, msg: DaemonEvent) -> None:
        event = msg.event
        if event.get("kind") == "bus.dropped":
            self.resync()
            return
        for change in self.state.apply(event):
            if change.topic == "resolved":  # closed: no way to decide it is left, and its id
                self.deciding.pop(str(change.key), None)  # may come back on a new request
            self.changes.publish(change)
            if change.topic == "approvals" and change.new:
                self._announce(self.state.approvals[change.key or ""])

    def on_polled(self, msg: Polled) -> None:
        state = self.state
        live_ids = {r["id"] for r in msg.runs}
        state.record_usage(msg.runs, self.now())
        for change in state.load_runs(msg.runs):
            self.changes.publish(change)
        missed = state.ended_unknown(live_ids)
        if missed:
            self.fetch_runs(missed)
        for change in state.load_approvals(msg.approvals):
            self.changes.publish(change)
            if change.new and change.key in state.approvals:
                self._announce(state.approvals[change.key])
        if msg.hello is not None and msg.hello.get("config_error") != state.hello.get("config_error"):
            state.hello = msg.hello
            self.changes.publish(Change("link"))
        self.call_after_refresh(msg.rendered.set)

    @work(group="resync")
    async def fetch_runs(self, run_ids: list[str]) -> None:
        for rid in run_ids:
            try:
                run = await self.source.call("run.get", run=rid)
            except ClientError:
                continue
            for change in self.state.load_runs([run]):
                self.changes.publish(change)

    @work(group="resync", exclusive=True)
    async def resync(self) -> None:
        """Some events were dropped (a slow link): read the pending set and runs again."""
        try:
            approvals = await self.source.call("approvals.list")
            runs = await self.source.call("runs.list", all=True, limit=20)
        except ClientError as exc:
            self.report(exc)
            return
        for change in self.state.load_approvals(approvals) + self.state.load_runs(runs):
            self.changes.publish(change)

    def _announce(self, req: dict[str, Any]) -> None:
        self.notifier.approval(len(self.state.approvals), cut(f"{req.get('kind')} {summary(req)}", 80),
                               str(req.get("run_id")))

    def _write_terminal(self, text: str) -> None:
        driver = getattr(self, "_driver", None)
        if driver is not None and not self.is_headless:
            driver.write(text)
            driver.flush()

    # --- keys -----------------------------------------------------------------------------------

    def key_for(self, binding_id: str, default: str) -> str:
        """The key a binding has now (after [keys] remaps), as a person reads it."""
        key = self.keys.get(binding_id, default)
        return {"question_mark": "?", "slash": "/", "colon": ":", "escape": "esc",
                "space": "space"}.get(key, key)

    def action_help(self) -> None:
        screen = self.screen
        title = screen.sub_title or type(screen).__name__.replace("Screen", "").lower()
        self.push_screen(HelpScreen(title, help_rows(self, screen)))

    def copy(self, text: str, *, escaped: bool = False) -> None:
        """To the clipboard through the terminal (OSC 52; over SSH and in tmux too, where the
        terminal allows it), and said on screen, so it can be copied by hand where it does not.
        `escaped`: its control characters were made visible text first, and the title says so."""
        self.copy_to_clipboard(text)
        title = "Copied (if your terminal allows OSC 52)"
        if escaped:
            title += " as the card shows it (⟨ESC⟩, ⟨LF⟩ ...), not as it would act"
        self.notify(printable(text, 200), title=title)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """An SVG of the screen (the key, the palette's "Screenshot"), saved to a folder that
        exists (over SSH there is often no ~/Downloads), and the whole path said."""
        folder = Path(path) if path else save_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = Path(self.save_screenshot(filename, str(folder), time_format)).resolve()
        except OSError as exc:
            self.report(f"could not save the screenshot in {folder}: {exc.strerror or exc}\n"
                        "check that the folder is writable, or set PILOTHOUSE_SAVE_DIR")
            return None
        self.notify(str(saved), title="Screenshot saved")
        return str(saved)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """a (open the approvals) does nothing on the card: neither the footer nor the help
        lists it there (review h198). The palette's commands call the action directly."""
        return not (action == "open_approval" and isinstance(self.screen, ApprovalScreen))

    def action_open_approval(self, request_id: str | None = None) -> None:
        if not self.state.approvals:
            self.notify("No approval is pending.")
            return
        if isinstance(self.screen, ApprovalScreen):
            if request_id is not None:  # the palette over a card: the request it named
                self.screen.show_request(request_id)
            return
        self.push_screen(ApprovalScreen(request_id))

    def action_toggle_notify(self) -> None:
        self.notifier.desktop = not self.notifier.desktop
        self.notify(f"Desktop notifications {'on' if self.notifier.desktop else 'off'} "
                    "(the bell and the banner stay on).")

    def _go(self, kind: type[Screen[Any]], make: Callable[[], Screen[Any]]) -> None:
        if isinstance(self.screen, kind):
            return
        self.push_screen(make())

    def action_dashboard(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_history(self) -> None:
        self._go(HistoryScreen, HistoryScreen)

    def decide_oldest(self, request_id: str | None, allow: bool, whole: bool = False,
                      listed_at: float = -math.inf, listed: dict[str, Any] | None = None) -> None:
        """From the palette: allow once or deny the request its help showed (the oldest when
        the palette listed it: `listed`). Allowing one the help could not show whole, one
        listed only after the key that chose it was typed (`listed_at`, monotonic), or another
        request under the listed one's id (ids come back), opens its card."""
        req = self.state.approvals.get(request_id or "")
        if req is None:
            self.notify("No approval is pending." if not self.state.approvals else
                        f"Request {printable(request_id)} is no longer pending: nothing was "
                        "decided. Open the palette again for the oldest one now.",
                        severity="warning")
            return
        if allow and listed is not None and ApprovalCard.identity(listed) != ApprovalCard.identity(req):
            self.notify(f"Request {printable(request_id)} is now another request, not the one "
                        "the palette showed: nothing was decided. Here it is whole. y allows it.")
            self.action_open_approval(str(req["id"]))
            return
        if allow and self.input_time < listed_at:
            self.notify("The request was not yet on the screen when the key was typed: nothing "
                        "was decided. Here it is whole. y allows it.")
            self.action_open_approval(str(req["id"]))
            return
        if allow and not whole:
            self.notify("The request does not fit the palette: here it is whole. y allows it.")
            self.action_open_approval(str(req["id"]))
            return
        self.decide(req, allow, "once")

    def take_decision(self, request_id: str) -> bool:
        """Claim the one decision this console sends for a request: False (and says so) when
        one was already sent. Claimed as the key is handled, not when its worker runs: the
        keys of a burst (y held down on a row, n then y) are all handled before it does."""
        if request_id in self.deciding:
            self.notify(f"A decision on request {printable(request_id)} was already sent from "
                        "this console: nothing more was sent.", severity="warning")
            return False
        self.deciding[request_id] = None
        while len(self.deciding) > 2000:  # decided ones stay claimed until long closed
            self.deciding.popitem(last=False)
        return True

    def release_decision(self, request_id: str, error: ClientError | None = None) -> None:
        """A decision that was not made (cancelled, or refused for a reason other than the
        request being closed already): the request may be decided again."""
        if error is None or error.code not in ("already-decided", "unknown-request"):
            self.deciding.pop(request_id, None)

    def decide(self, req: dict[str, Any], allow: bool, scope: str) -> None:
        """Send a decision (once per request); say what was decided, on what, for which run,
        in which scope."""
        if self.take_decision(str(req["id"])):
            self._send_decision(req, allow, scope)

    @work(group="approval-decide")
    async def _send_decision(self, req: dict[str, Any], allow: bool, scope: str) -> None:
        try:
            result = await self.source.call("approval.decide", id=req["id"], allow=allow, scope=scope,
                                            created_at=req.get("created_at"))
        except ClientError as exc:
            self.release_decision(str(req["id"]), exc)
            self.report(exc)
            return
        except Exception as exc:  # a worker's error closes the console: said instead
            self.release_decision(str(req["id"]))
            self.report(exc)
            return
        self.notify(decision_toast(req, result, scope), title="Decision recorded")

    def action_policy(self) -> None:
        self._go(PolicyScreen, PolicyScreen)

    def action_gpu(self) -> None:
        self._go(GpuScreen, GpuScreen)

    def action_bench(self) -> None:
        self._go(BenchScreen, BenchScreen)

    def open_run(self, run_id: str) -> None:
        if isinstance(self.screen, RunScreen) and self.screen.run_id == run_id:
            return
        self.push_screen(RunScreen(run_id))

    # --- runs -----------------------------------------------------------------------------------

    def action_start_run(self, profile: str | None = None) -> None:
        self._start_dialog(profile)

    @work(group="start", exclusive=True)
    async def _start_dialog(self, profile: str | None) -> None:
        if not self.state.profiles:
            try:
                self.state.profiles = await self.source.call("profiles")
            except ClientError as exc:
                self.report(exc)
                return
        choice = await self.push_screen_wait(StartRunScreen(self.state.profiles, profile))
        if choice:
            self.start_run(choice["profile"], choice.get("workspace"), choice.get("command"))

    @work(group="start-run")
    async def start_run(self, profile: str, workspace: str | None = None,
                        command: list[str] | None = None) -> None:
        try:
            run = await self.source.call("run.start", profile=profile, workspace=workspace,
                                         command=command, cwd=os.getcwd())
        except ClientError as exc:
            self.report(exc, title="Run not started")
            return
        for change in self.state.load_runs([run]):
            self.changes.publish(change)
        warn = " (UNSANDBOXED: the profile says sandbox = \"none\")" if run.get("unsandboxed") else ""
        self.notify(f"Started run {run['id']}: {run['profile']} in {run['backend']}{warn}",
                    severity="warning" if warn else "information")

    def confirm_stop(self, run: dict[str, Any], kill: bool) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_run(run["id"], kill)

        title = "Kill the run?" if kill else "Stop the run?"
        self.push_screen(ConfirmScreen(title, stop_text(run, kill), yes="Kill" if kill else "Stop",
                                       danger=True), answered)

    @work(group="stop")
    async def stop_run(self, run_id: str, kill: bool) -> None:
        self.notify(f"{'Killing' if kill else 'Stopping'} run {run_id}...")
        try:
            run = await self.source.call("run.stop", run=run_id, kill=kill)
        except ClientError as exc:
            self.report(exc, title="Stop failed")
            return
        for change in self.state.load_runs([run]):
            self.changes.publish(change)


def run_app(paths: Paths, config_file: Path | None) -> None:
    """The entry the CLI calls: keys come from the config's [keys] table."""
    from console.config.load import ConfigError, load

    keys: dict[str, str] = {}
    problems: list[str] = []
    try:
        config = load(config_file or paths.config_file)
        keys, problems = check_keymap(dict(config.keys), [Path(f) for f in config.files],
                                       binding_scopes())
    except ConfigError as exc:
        problems = [f"{exc}\nusing the default keys"]
    except OSError as exc:
        problems = [f"could not read the config: {exc}\nusing the default keys"]
    app = PilothouseApp(paths, config_file, keys=keys, freeze_startup=True)
    app.startup_problems.extend(problems)
    app.run()


def binding_scopes() -> dict[str, list[BindingType]]:
    """Where bindings are active together (console.tui.keys.screen_scopes)."""
    return screen_scopes(list(PilothouseApp.BINDINGS))
