"""A working day at 80x24, part two: honest state while the daemon is away, keys, the smaller
tools (copy, export, palette, screenshots, the policy box, the log filter) and resources. Each
test asserts on the rendered screen (what a person sees), read as text."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from console.tui.app import PilothouseApp
from console.tui.link import DaemonEvent, Disconnected, Polled
from console.tui.screens.dialogs import PromptScreen
from console.tui.screens.history import EventScreen, HistoryScreen
from console.tui.screens.policy import PolicyScreen
from console.tui.screens.run_detail import RunScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui.conftest import attached as real_attached
from tests.tui.conftest import cli, make_app, wait_for
from tests.tui.fixed import APPROVALS, HISTORY, NET, NOW, RUNS, FixedSource, net_rows
from tests.tui.screen import (
    app_with,
    attached,
    line_with,
    more_runs,
    palette_ready,
    screen_text,
    shows,
    until,
)
from widgets.output_log import OutputLog
from widgets.tables import NetFeed, RunsTable

pytestmark = pytest.mark.usefixtures("utc")


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
        text = await shows(pilot, "Keys: ")  # the help's title: the help is drawn
        assert "[keys]" in text, text
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if "Start run" in line)
        generic = [i for i, line in enumerate(lines) if "Cursor up" in line]
        assert not generic or start < generic[0], text
        assert "Filter" in text and "Hide/show ended runs" in text


def test_a_conflicting_key_remap_is_refused_with_file_line_and_both_actions(tmp_path: Path) -> None:
    from console.tui.app import binding_scopes
    from console.tui.keys import check_keymap

    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nsandbox = "auto"\n\n[keys]\nhistory = "s"\n')
    keys, problems = check_keymap({"history": "s"}, [config], binding_scopes())
    assert keys == {}
    assert problems and f"{config}:5" in problems[0], problems
    assert "history" in problems[0] and "start_run" in problems[0]
    keys, problems = check_keymap({"history": "ctrl+h"}, [config], binding_scopes())
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


async def test_copy_what_an_approval_asks() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a", "c")
        assert app.clipboard == "pytest -q tests/"


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
            field = await until(pilot, lambda: isinstance(app.screen, PromptScreen)
                                and app.screen.query_one("#prompt-value"), "the export prompt", tries=1500)
            default = Path(field.value)
            assert default.is_absolute() and default.parent.is_dir(), default
            assert not str(default).startswith(str(Path.cwd())), "not into the project folder"
            target = tmp_path / f"out.{suffix}"
            field.value = str(target)
            await pilot.press("enter")
            await until(pilot, target.exists, f"the {suffix} export")
            await until(pilot, lambda t=target: any(f"written to {t}" in n.message  # its toast
                                                    for n in app._notifications),  # noqa: SLF001
                        f"the {suffix} export's toast", tries=1500)
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
        await until(pilot, lambda: isinstance(app.screen, EventScreen), "the event", tries=1500)
        await pilot.pause()
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
        await palette_ready(pilot, "Open run q7rt")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_id == "q7rt",
                    "the run opened from the palette")
        await pilot.press("colon", *"Deny oldest approval")
        await palette_ready(pilot, "Deny oldest approval")
        await pilot.press("enter")
        await until(pilot, lambda: any(c[0] == "approval.decide" for c in app.source.calls),  # type: ignore[attr-defined]
                    "the deny sent")
        call = next(c for c in app.source.calls if c[0] == "approval.decide")  # type: ignore[attr-defined]
        assert call[1] == {"id": APPROVALS[0]["id"], "allow": False, "scope": "once",
                           "created_at": APPROVALS[0].get("created_at")}


async def test_screenshot_saves_to_a_folder_that_exists_and_says_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/Downloads, as over SSH
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("colon", *"Screenshot")
        await palette_ready(pilot, "Screenshot")
        await pilot.press("enter")
        await until(pilot, lambda: any(n.title in ("Screenshot saved", "Error")  # saved, or why not
                                       for n in app._notifications),  # noqa: SLF001
                    "the screenshot's toast", tries=1500)
        said = " ".join(n.message for n in app._notifications)  # noqa: SLF001
        saved = list(tmp_path.rglob("*.svg"))
        assert saved and str(saved[0]) in said, said
        assert "Failed" not in said


async def test_policy_box_tests_a_host_as_a_host() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PolicyScreen), "the policy screen", tries=1500)
        await pilot.pause()
        await pilot.press("c", *"127.0.0.9:80", "enter")
        checks = await until(pilot, lambda: [c[1] for c in app.source.calls  # type: ignore[attr-defined]
                                             if c[0] == "policy.check"], "the check", tries=1500)
        assert checks and checks[-1].get("host") == "127.0.0.9:80", checks


async def test_log_filter_highlights_counts_and_steps_through_matches() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.open_run("k3mx")
        log = await until(pilot, lambda: app.screen.query(OutputLog) and app.screen.query_one(OutputLog),
                          "the run screen")
        await until(pilot, lambda: log.total == 40, "the output")
        await pilot.press("slash", *"collected", "enter")
        await until(pilot, lambda: "match" in screen_text(app), "the filter's count", tries=1500)
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
