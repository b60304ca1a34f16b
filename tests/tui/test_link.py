"""The line to the daemon: reconnecting by itself, several consoles in sync, keys, help and
notifications."""

from __future__ import annotations

from pathlib import Path

from console.config.load import load
from console.tui.app import PilothouseApp
from console.tui.notify import Notifier, osc_sequences
from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.history import HistoryScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import (
    attached,
    make_app,
    pending_request,
    run_output,
    run_state,
    start_run,
    wait_for,
)
from tests.tui.fixed import NOW, FixedSource
from widgets.output_log import OutputLog
from widgets.panels import LinkStatus, RunHeader, gpu_line
from widgets.tables import ApprovalInbox, NetFeed, RunsTable


@needs_bwrap
async def test_daemon_gone_then_back_reconnects_by_itself(daemon: Daemon, workspace: Path) -> None:
    app = make_app(daemon)
    async with app.run_test(size=(100, 30)) as pilot:
        await attached(pilot)
        before = await start_run(daemon, workspace, "echo before-restart; sleep 300", profile="shell")
        await run_output(pilot, before, "before-restart")
        status = app.screen.query_one(LinkStatus)
        log = app.screen.query_one(OutputLog)
        daemon.stop()
        await wait_for(pilot, lambda: "daemon gone, reconnecting" in status.shown, "the gone notice")
        assert not app.state.connected and status.has_class("-down")
        assert any("daemon went away" in line for line in log.lines)
        header = app.screen.query_one(RunHeader)
        await wait_for(pilot, lambda: "unknown (daemon away)" in header.shown, "the run's state unknown")
        assert "running" not in header.shown and " up " not in header.shown
        daemon.start()
        await wait_for(pilot, lambda: app.state.connected, "the console to attach again", timeout=30)
        # the state flips in the message handler; the status line redraws on the change it publishes
        await wait_for(pilot, lambda: "attached to daemon" in status.shown, "the attached notice")
        assert not status.has_class("-down")
        # the run screen reads the output again from the store, by itself
        await wait_for(pilot, lambda: "before-restart" in log.lines
                       and not any("went away" in line for line in log.lines), "the output again")
        await pilot.press("escape")
        run_id = await start_run(daemon, workspace, "sleep 300", profile="shell")
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: run_id in table, "a run started after the restart")


@needs_bwrap
async def test_two_consoles_stay_in_sync(daemon: Daemon, workspace: Path) -> None:
    one, two = make_app(daemon), make_app(daemon)
    async with one.run_test(size=(100, 30)) as p1, two.run_test(size=(100, 30)) as p2:
        await attached(p1)
        await attached(p2)
        run_id = await start_run(daemon, workspace)
        req = await pending_request(p1, run_id)
        await pending_request(p2, run_id)
        await p2.press("a")
        assert isinstance(two.screen, ApprovalScreen)
        await p1.press("a", "y")  # the first decision wins
        await wait_for(p2, lambda: not isinstance(two.screen, ApprovalScreen), "the second view to close")
        for app, pilot in ((one, p1), (two, p2)):
            inbox = app.screen.query_one(ApprovalInbox)
            await wait_for(pilot, lambda inbox=inbox: req["id"] not in inbox, "the inbox to empty")
            await run_state(pilot, run_id, "exited")


def fixed_app(**kwargs: object) -> PilothouseApp:
    return PilothouseApp(source=FixedSource(), clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


async def test_keys_from_the_config_and_the_help_screen(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[keys]\nhistory = "H"\nopen_approval = "ctrl+o"\n')
    app = fixed_app(keys=load(config).keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.connected, "the fixed data")
        await pilot.press("h")
        assert not isinstance(app.screen, HistoryScreen), "h is not history any more"
        await pilot.press("H")
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("escape", "ctrl+o")
        assert isinstance(app.screen, ApprovalScreen)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        ids = {row[2] for row in help_screen._rows}  # noqa: SLF001
        assert {"approve_once", "approve_run", "approve_timed", "approve_profile", "deny_once",
                "deny_profile", "back", "quit"} <= ids
        await pilot.press("escape")
        assert isinstance(app.screen, ApprovalScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_dashboard_filter_narrows_every_table() -> None:
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.state.net) == 4, "the fixed data")
        runs, inbox, net = (app.screen.query_one(t) for t in (RunsTable, ApprovalInbox, NetFeed))
        await pilot.press("slash", *"q7rt")
        assert runs.shown_keys() == ["q7rt"]
        assert inbox.shown_keys() == ["h8pn"]
        assert len(net.shown_keys()) == 1
        await pilot.press("escape")
        assert len(runs.shown_keys()) == 3 and len(inbox.shown_keys()) == 2


async def test_unsandboxed_is_a_word_and_gpu_says_none() -> None:
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.state.connected, "the fixed data")
        runs = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: "q7rt" in runs, "the rows")
        assert runs.cell_text("q7rt", "backend") == "UNSANDBOXED"
        assert "UNSANDBOXED" in str(app.screen.query_one("#runs-panel").border_title)
        gpu = app.screen.query_one("#gpu")
        await wait_for(pilot, lambda: "no NVIDIA GPU" in gpu.shown, "the GPU panel")


def test_notifications_ring_and_write_osc_9_and_777() -> None:
    written: list[str] = []
    rings: list[int] = []
    n = Notifier(written.append, lambda: rings.append(1), desktop=True)
    n.tmux = False
    n.approval(2, "exec rm -rf /tmp/x;\x1b]0;pwned\x07", "k3mx")
    assert rings == [1]
    out = written[0]
    assert out.startswith("\x1b]9;Pilothouse: run k3mx asks: exec rm -rf /tmp/x;")  # OSC 9 keeps it (h162)
    assert "\x1b]777;notify;Pilothouse;run k3mx asks: exec rm -rf /tmp/x⟨semicolon⟩" in out
    assert out.count("\x07") == 2 and out.count("\x1b") == 2, "nothing from the request escapes"
    n.desktop = False
    n.approval(1, "exec ls", "k3mx")
    assert len(written) == 1 and rings == [1, 1], "switched off: the bell only"
    wrapped = osc_sequences("t", "b", tmux=True)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]9;") and wrapped.endswith("\x1b\\")


def test_gpu_line_reads_a_sample() -> None:
    sample = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "power_mw": 312_000, "util": 87,
              "mem_used": 40 * 2**30, "mem_total": 80 * 2**30, "temp": 65}
    assert gpu_line(sample) == "GPU0 NVIDIA H100 80GB HBM3 312W 87% util mem 40G/80G 65°C"
