"""A working day at 80x24 (and wider), part one: following output, nothing cut off, the runs'
order. Each test asserts on the rendered screen (what a person sees), read as text."""

from __future__ import annotations

import shlex

import pytest

from console.tui.link import DaemonEvent, Disconnected
from tests.tui.fixed import NOW, RUNS
from tests.tui.screen import LONG, app_with, attached, line_with, more_runs, screen_text, until
from widgets.output_log import OutputLog
from widgets.tables import RunsTable

pytestmark = pytest.mark.usefixtures("utc")


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
        await until(pilot, lambda: "pytest -q tests/" in line_with(screen_text(app), "e4ew")
                    and screen_text(app).rstrip("\n").splitlines()[-1].strip(),
                    "the run screen's request row and footer")  # a fixed pause: too short under load
        text = screen_text(app)
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
        # Waited for, not slept on: a loaded machine (CI's 2 cores) lost a fixed 0.2 s pause.
        await until(pilot, lambda: "n3w1" in table.shown_keys(), "the new run in the table")
        order = table.shown_keys()
        assert order[:4] == ["n3w1", "qu0t", "q7rt", "k3mx"], order
        assert order[4:] == ["st1p", "kl9x", "z2bc", "e0aa", "e1aa", "e2aa", "e3aa", "e4aa"], order
        text = screen_text(app)
        assert "n3w1" in text and "k3mx" in text
        await pilot.press("e")  # hide the ended runs
        await until(pilot, lambda: len(table.shown_keys()) == 4, "the ended runs hidden")
        assert table.shown_keys() == ["n3w1", "qu0t", "q7rt", "k3mx"]
        assert "8 ended hidden" in screen_text(app)
        await pilot.press("e", "P")  # all again, sorted by profile
        await until(pilot, lambda: len(table.shown_keys()) == 12, "the ended runs shown again")
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


async def test_a_chosen_run_stays_chosen_when_a_new_one_arrives_above_it() -> None:
    app = app_with(runs=more_runs(), approvals=[])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        table = app.screen.query_one(RunsTable)
        table.select_key("qu0t")  # the top row, chosen
        fresh = {**RUNS[0], "id": "n3w1", "started_at": NOW - 1}
        app.post_message(DaemonEvent({"kind": "run.state", "run": fresh}))
        await pilot.pause(0.2)
        assert table.shown_keys()[0] == "n3w1" and table.selected_key() == "qu0t"


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
