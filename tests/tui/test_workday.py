"""A whole working day at 80x24 (and wider): what the screen says, read as text.

Each test asserts on the rendered screen (what a person sees), fed fixed data at a frozen time.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from console.tui.app import PilothouseApp
from console.tui.link import DaemonEvent, Disconnected, Polled
from console.tui.screens.history import EventScreen, HistoryScreen
from console.tui.screens.run_detail import RunScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import attached as real_attached
from tests.tui.conftest import cli, make_app, wait_for
from tests.tui.fixed import APPROVALS, HISTORY, NET, NOW, RUNS, FixedSource, net_rows
from widgets.output_log import OutputLog
from widgets.tables import NetFeed, RunsTable

pytestmark = pytest.mark.usefixtures("utc")

QUOTED = ["sh", "-c", 'ph-ask exec --title "run the test suite" -- rm -rf ./build']
LONG = ["python", "-m", "pytest", "-q", "tests/integration/test_checkout_flow.py",
        "--maxfail=1", "--durations=20", "-k", "not slow and not network"]


def app_with(**data: Any) -> PilothouseApp:
    return PilothouseApp(source=FixedSource(**data), clock=lambda: NOW,  # type: ignore[arg-type]
                         desktop_notify=False)


def screen_text(app: PilothouseApp) -> str:
    """The whole screen as a person reads it (every layer, no colour)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)
    update = app.screen._compositor.render_update(  # noqa: SLF001 - what the terminal gets
        full=True, screen_stack=app._background_screens)  # noqa: SLF001
    console.print(update)
    return console.export_text()


def line_with(text: str, needle: str) -> str:
    return next((line for line in text.splitlines() if needle in line), "")


async def until(pilot: Pilot[Any], test: Any, what: str, tries: int = 200) -> Any:
    for _ in range(tries):
        value = test()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen_text(pilot.app)}")


async def attached(pilot: Pilot[Any]) -> PilothouseApp:
    app = pilot.app
    assert isinstance(app, PilothouseApp)
    await until(pilot, lambda: app.state.connected, "the console to attach")
    await pilot.pause(0.1)
    return app


def more_runs() -> list[dict[str, Any]]:
    ended = [{**RUNS[2], "id": f"e{i}aa", "started_at": NOW - 5000 - i, "command": ["true"],
              "state": "exited", "exit_code": 0} for i in range(5)]
    killed = {**RUNS[2], "id": "kl9x", "state": "killed", "exit_code": -9, "command": ["sleep", "300"],
              "started_at": NOW - 3000, "ended_at": NOW - 2900}
    stopped = {**RUNS[2], "id": "st1p", "state": "stopped", "exit_code": 143, "command": LONG,
               "started_at": NOW - 2000, "ended_at": NOW - 1900}
    quoted = {**RUNS[0], "id": "qu0t", "command": QUOTED, "started_at": NOW - 10}
    return [*RUNS, *ended, killed, stopped, quoted]


# --- 1. follow and pause -------------------------------------------------------------------


async def test_page_up_pauses_and_end_resumes_following_at_the_newest_line() -> None:
    app = app_with(trickle_s=0.03)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("k3mx")
        log = await until(pilot, lambda: app.screen.query(OutputLog) and app.screen.query_one(OutputLog),
                          "the run screen")
        await until(pilot, lambda: log.total > 60, "a screenful of output")
        await pilot.press("pageup")
        await pilot.pause(0.3)
        assert not log.following, "scrolling up pauses"
        assert "PAUSED" in screen_text(app)
        held_at = log.total
        await pilot.pause(0.3)
        assert log.unseen >= log.total - held_at > 0, "lines keep arriving while paused"
        assert f"{log.unseen:,} new line(s) held" in log.status().plain
        await pilot.press("end")
        await pilot.pause(0.4)
        assert log.following and "FOLLOWING" in screen_text(app)
        newest = log.lines[-1]
        await until(pilot, lambda: newest in screen_text(app) or log.lines[-1] in screen_text(app),
                    "the newest line on screen after End")
        for key in ("k", "G"):  # the same with k (up) and G (to the end)
            await pilot.press(key)
            await pilot.pause(0.2)
            assert log.following is (key == "G"), key
        await pilot.pause(0.4)
        assert log.lines[-1] in screen_text(app) or log.lines[-2] in screen_text(app)


# --- 2. nothing cut off at 80x24 -------------------------------------------------------------


async def test_start_dialog_buttons_show_at_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("s")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "Start (enter)" in text and "Cancel (esc)" in text, text


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)])
async def test_runs_table_keeps_id_state_and_command(size: tuple[int, int]) -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=size) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        table.select_key("z2bc")  # scrolled into view at 80x24
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "COMMAND" in text and "STATE" in text
        assert "killed (-9)" in text and "failed (2)" in text, text
        assert line_with(text, "k3mx").count("ph-demo-agent") == 1, text
        if size[0] >= 200:
            assert shlex.join(LONG) in text, "a wide terminal shows the whole command"
        else:
            assert "python -m pytest" in line_with(text, "st1p"), text


async def test_id_column_stays_when_scrolling_sideways() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause(0.1)
        assert "qu0t" in screen_text(app) and "k3mx" in screen_text(app)


async def test_network_panel_shows_the_rule_at_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        text = screen_text(app)
        assert "rule **.example-tracker.com" in text, text
        assert "t.example-tracker.com:443" in text


async def test_history_text_and_filters_fit_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        await until(pilot, lambda: getattr(app.screen, "rows", None), "history rows")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "allow github.com:443" in text, text
        assert "run k3mx asks: exec pytest" in text
        assert "since (2h, 2025-01-31)" in text and "until" in text, text


async def test_run_screen_shows_request_column_and_whole_footer_at_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("k3mx")
        await pilot.pause(0.3)
        text = screen_text(app)
        assert "pytest -q tests/" in line_with(text, "e4ew"), text
        footer = text.rstrip("\n").splitlines()[-1]
        assert footer.rstrip().endswith(("Keys", "Help")), footer


async def test_banner_keeps_the_age_and_the_key_at_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        banner = line_with(screen_text(app), "APPROVAL")
        assert "42s ago" in banner and "2 pending" in banner, banner


async def test_daemon_down_line_keeps_the_fix_at_80x24() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.post_message(Disconnected("the Pilothouse daemon is not running", 4.0, 5,
                                      "start it with: pilothouse daemon (or run any command)"))
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "pilothouse daemon" in line_with(text, "daemon"), text


# --- 3. runs: live first, the same order everywhere, sort, hide ended ------------------------


async def test_live_runs_first_newest_first_and_ended_runs_can_be_hidden() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        # a run started after attaching goes first, not to the bottom
        fresh = {**RUNS[0], "id": "n3w1", "started_at": NOW - 1}
        app.post_message(DaemonEvent({"kind": "run.state", "run": fresh}))
        await pilot.pause(0.2)
        order = table.shown_keys()
        assert order[:4] == ["n3w1", "qu0t", "q7rt", "k3mx"], order
        assert order[4:] == ["st1p", "kl9x", "z2bc", "e0aa", "e1aa", "e2aa", "e3aa", "e4aa"], order
        text = screen_text(app)
        assert "n3w1" in text and "k3mx" in text
        await pilot.press("e")  # hide the ended runs
        await pilot.pause(0.1)
        assert table.shown_keys() == ["n3w1", "qu0t", "q7rt", "k3mx"]
        assert "8 ended hidden" in screen_text(app)
        await pilot.press("e", "P")  # all again, sorted by profile
        await pilot.pause(0.1)
        profiles = [table.cell_text(k, "profile") for k in table.shown_keys()]
        assert len(profiles) == 12 and profiles == sorted(profiles), profiles


async def test_runs_arriving_one_by_one_keep_the_live_ones_in_view() -> None:
    """Attached first, then runs start (the ended ones first): the top stays in view."""
    app = app_with(runs=[], approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        for run in sorted(more_runs(), key=lambda r: r["started_at"]):
            app.post_message(DaemonEvent({"kind": "run.state", "run": run}))
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        table = app.screen.query_one(RunsTable)
        assert table.cursor_row == 0
        text = screen_text(app)
        assert all(rid in text for rid in ("qu0t", "q7rt", "k3mx")), text


async def test_two_consoles_list_runs_in_the_same_order() -> None:
    """One console saw a run start (an event), the other attached after it (a listing)."""
    fresh = {**RUNS[0], "id": "n3w1", "started_at": NOW - 1}
    orders = []
    for runs, event in ((more_runs(), fresh), ([fresh, *more_runs()[::-1]], None)):
        app = app_with(runs=runs, approvals=[])
        async with app.run_test(size=(80, 24)) as pilot:
            await attached(pilot)
            if event:
                app.post_message(DaemonEvent({"kind": "run.state", "run": event}))
            await pilot.pause(0.1)
            orders.append(app.screen.query_one(RunsTable).shown_keys())
    assert orders[0] == orders[1]


async def test_j_k_g_G_move_in_tables() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "j", "k")
        assert table.cursor_row == 1


# --- 4. honest state -----------------------------------------------------------------------


async def test_daemon_away_runs_say_unknown_and_the_clock_stops() -> None:
    now = [NOW]
    app = PilothouseApp(source=FixedSource(), clock=lambda: now[0], desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        app.post_message(Disconnected("the daemon closed the connection", 1.0, 1))
        await pilot.pause(0.2)
        now[0] = NOW + 60
        app.ticks.publish(now[0])
        await pilot.pause(0.1)
        assert table.cell_text("k3mx", "state") == "unknown"
        row = line_with(screen_text(app), "│ k3mx")
        assert "unknown" in row and "running" not in row and "13m34s" not in row, row


async def test_network_feed_is_filled_from_history_on_attach() -> None:
    app = app_with(net=[], net_history=net_rows(NET))
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        text = screen_text(app)
        assert "No network activity yet" not in text
        assert "t.example-tracker.com:443" in text and "pypi.org:443" in text, text
        app.open_run("q7rt")
        await pilot.pause(0.3)
        assert app.screen.query_one("#run-netfeed", NetFeed).row_count == 1
        assert "github.com:443" in screen_text(app)


# --- 5. keys ---------------------------------------------------------------------------------


async def test_help_lists_this_screens_keys_first_and_shows_keys_literally() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "[keys]" in text, text
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if "Start run" in line)
        generic = [i for i, line in enumerate(lines) if "Cursor up" in line]
        assert not generic or start < generic[0], text
        assert "Filter" in text and "Hide/show ended runs" in text


def test_a_conflicting_key_remap_is_refused_with_file_line_and_both_actions(tmp_path: Path) -> None:
    from console.tui.keys import check_keymap

    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nsandbox = "auto"\n\n[keys]\nhistory = "s"\n')
    keys, problems = check_keymap({"history": "s"}, [config])
    assert keys == {}
    assert problems and f"{config}:5" in problems[0], problems
    assert "history" in problems[0] and "start_run" in problems[0]
    keys, problems = check_keymap({"history": "ctrl+h"}, [config])
    assert keys == {"history": "ctrl+h"} and not problems


async def test_decision_toast_says_what_was_decided() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await attached(pilot)
        await pilot.press("a", "r")
        await pilot.pause(0.3)
        said = [n.message for n in app._notifications]  # noqa: SLF001
        assert any("Allowed `pytest -q tests/` for run k3mx, this run" in m for m in said), said
        # the next request is up; the toast leaves its keys in view
        await pilot.pause(0.3)
        keys = app.screen.query_one("#approval-keys").region
        toasts = [t.region for t in app.screen.query("Toast")]
        assert toasts and all(t.bottom <= keys.y for t in toasts), (toasts, keys)


# --- 6. smaller ------------------------------------------------------------------------------


async def test_commands_are_shown_with_shell_quoting() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(200, 50)) as pilot:
        await attached(pilot)
        text = screen_text(app)
        assert "sh -c 'ph-ask exec --title \"run the test suite\" -- rm -rf ./build'" in text, text


async def test_copy_the_id_or_the_command() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        table.select_key("qu0t")
        await pilot.press("c")
        assert app.clipboard == "qu0t"
        await pilot.press("C")
        assert app.clipboard == "sh -c 'ph-ask exec --title \"run the test suite\" -- rm -rf ./build'"


async def test_history_export_writes_every_matching_event_as_jsonl_or_csv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    many = [{"id": i, "ts": NOW - i, "run_id": "k3mx", "kind": "net.decision", "actor": None,
             "text": f"allow host{i}.invalid:443", "data": {"action": "allow"}} for i in range(1, 251)]
    app = app_with(history=many)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        await until(pilot, lambda: len(getattr(app.screen, "rows", [])) == 100, "the first page")
        for suffix in ("jsonl", "csv"):
            await pilot.press("e")
            await pilot.pause(0.2)
            field = app.screen.query_one("#prompt-value")
            default = Path(field.value)
            assert default.is_absolute() and default.parent.is_dir(), default
            assert not str(default).startswith(str(Path.cwd())), "not into the project folder"
            target = tmp_path / f"out.{suffix}"
            field.value = str(target)
            await pilot.press("enter")
            await until(pilot, target.exists, f"the {suffix} export")
            await pilot.pause(0.2)
            said = [n.message for n in app._notifications]  # noqa: SLF001
            assert any(f"250 event(s) written to {target}" in m for m in said), said
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert len(rows) == 250
        table = list(csv.DictReader((tmp_path / "out.csv").open()))
        assert len(table) == 250 and table[0]["kind"] == "net.decision"


async def test_event_detail_shows_a_human_time() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.push_screen(EventScreen(HISTORY[0]))
        await pilot.pause(0.2)
        assert "2026-01-01 00:00:00" in screen_text(app)


async def test_history_refreshes_by_key_and_by_itself() -> None:
    rows = list(HISTORY)
    app = app_with(history=rows)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        screen = await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.rows
                             and app.screen, "history")
        assert "Refresh" in screen_text(app)
        rows.insert(0, {**HISTORY[0], "id": 101, "text": "brand new event"})
        app.post_message(DaemonEvent(NET[0]))  # something happened: history catches up
        await until(pilot, lambda: screen.rows[0]["id"] == 101, "the new event")
        rows.insert(0, {**HISTORY[0], "id": 102, "text": "another"})
        await pilot.press("r")
        await until(pilot, lambda: screen.rows[0]["id"] == 102, "the refresh key")


async def test_palette_has_run_and_approval_commands() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Open run q7rt")
        await pilot.pause(0.6)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_id == "q7rt",
                    "the run opened from the palette")
        await pilot.press("colon", *"Deny oldest approval")
        await pilot.pause(0.6)
        await pilot.press("enter")
        await until(pilot, lambda: any(c[0] == "approval.decide" for c in app.source.calls),  # type: ignore[attr-defined]
                    "the deny sent")
        call = next(c for c in app.source.calls if c[0] == "approval.decide")  # type: ignore[attr-defined]
        assert call[1] == {"id": APPROVALS[0]["id"], "allow": False, "scope": "once"}


async def test_screenshot_saves_to_a_folder_that_exists_and_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/Downloads, as over SSH
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Screenshot")
        await pilot.pause(0.6)
        await pilot.press("enter")
        await pilot.pause(0.8)
        said = " ".join(n.message for n in app._notifications)  # noqa: SLF001
        saved = list(tmp_path.rglob("*.svg"))
        assert saved and str(saved[0]) in said, said
        assert "Failed" not in said


async def test_policy_box_tests_a_host_as_a_host() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("p")
        await pilot.pause(0.3)
        await pilot.press("c", *"1.1.1.1:80", "enter")
        await pilot.pause(0.3)
        checks = [c[1] for c in app.source.calls if c[0] == "policy.check"]  # type: ignore[attr-defined]
        assert checks and checks[-1].get("host") == "1.1.1.1:80", checks


async def test_log_filter_highlights_counts_and_steps_through_matches() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("k3mx")
        log = await until(pilot, lambda: app.screen.query(OutputLog) and app.screen.query_one(OutputLog),
                          "the run screen")
        await until(pilot, lambda: log.total == 40, "the output")
        await pilot.press("slash", *"collected", "enter")
        await pilot.pause(0.3)
        assert "6 match" in screen_text(app), screen_text(app)
        await pilot.press("n")
        assert log.match_index == 0
        await pilot.press("n", "n", "N")
        assert log.match_index == 1
        assert "2/6" in screen_text(app)


# --- 7. resources ----------------------------------------------------------------------------


async def test_run_screen_draws_cpu_and_memory_sparklines() -> None:
    now = [NOW]
    app = PilothouseApp(source=FixedSource(), clock=lambda: now[0], desktop_notify=False)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("k3mx")
        await pilot.pause(0.2)
        for i, cpu in enumerate([5.0, 40.0, 90.0, 20.0]):
            now[0] = NOW + 2 * i
            run = {**RUNS[0], "stats": {"cpu_percent": cpu, "rss_bytes": (40 + 10 * i) * 2**20, "pids": 5}}
            app.post_message(Polled([run, RUNS[1]], APPROVALS))
            await pilot.pause(0.1)
        app.ticks.publish(now[0])
        await pilot.pause(0.1)
        header = line_with(screen_text(app), "cpu")
        assert any(ch in header for ch in "▁▂▃▄▅▆▇█"), header


# --- 4 again, with real parts: a real daemon, a real bubblewrap run, curl through the gate ------


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed (apt-get install curl)")
@needs_bwrap
async def test_a_console_attaching_later_shows_the_network_so_far(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    (home / "config.toml").write_text(
        "[profiles.web]\n"
        'command = ["true"]\n'
        "[profiles.web.network]\n"
        'default = "deny"\n'
        'deny = ["**.tracker.invalid"]\n'
    )
    daemon = Daemon(home, daemon_env)
    daemon.start()
    try:
        run_id = await cli(daemon, "run", "web", "-w", str(workspace), "--", "sh", "-c",
                           "curl -sS -m 10 -o /dev/null http://x.tracker.invalid/; echo rc=$?")
        assert "rc=" in await cli(daemon, "logs", run_id, "-f")  # until the run ends
        app = make_app(daemon)  # a console that was not there when it happened
        async with app.run_test(size=(80, 24)) as pilot:
            await real_attached(pilot)
            feed = app.screen.query_one(NetFeed)
            await wait_for(pilot, lambda: feed.row_count >= 1, "the network feed from the history")
            text = screen_text(app)
            assert "x.tracker.invalid:80" in text and "DENY" in text, text
            assert "No network activity yet" not in text
            app.open_run(run_id)
            await pilot.pause(0.3)
            assert "x.tracker.invalid:80" in screen_text(app)
    finally:
        daemon.stop()
