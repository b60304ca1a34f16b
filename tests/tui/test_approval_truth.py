"""Issue 12 in the console, read off the screen at 80x24: the keys say which rule they write, a
profile rule that would never take effect is named with the one that decides (and a decision
that works is offered), y/n act on the inbox row, Edit/Write requests show their change as a
diff, and a config the daemon refused is shown with its file, line and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.dialogs import ConfirmScreen
from tests.conftest import Daemon, needs_bwrap
from tests.tui import conftest as live
from tests.tui.fixed import APPROVALS, NOW
from tests.tui.screen import app_with, attached, dialog_drawn, line_with, screen_text, until
from tests.tui.test_display_attacks_s19 import decision
from widgets.tables import ApprovalInbox

pytestmark = pytest.mark.usefixtures("utc")

HOSTILE = "total = 0\x1b]52;c;ZXZpbA==\x07\u202e"
# Shaped as ph-claude-hook sends them (console/sandbox/inside.py): a custom request titled by
# the tool and the path, the tool's own input in the detail.
EDIT = {**APPROVALS[0], "id": "ed1t", "kind": "custom", "subject": "Edit shop/cart.py",
        "title": "Edit shop/cart.py", "summary": "custom Edit shop/cart.py",
        "detail": {"cwd": "/workspace", "tool_name": "Edit", "session_id": "s-1",
                   "tool_input": {"file_path": "/workspace/shop/cart.py",
                                  "old_string": "total = 0\n", "new_string": HOSTILE + "\n"}}}
WRITE = {**APPROVALS[0], "id": "wr1t", "kind": "custom", "subject": "Write shop/new.py",
         "title": "Write shop/new.py", "summary": "custom Write shop/new.py", "created_at": NOW - 5,
         "detail": {"cwd": "/workspace", "tool_name": "Write", "session_id": "s-1",
                    "tool_input": {"file_path": "/workspace/shop/new.py",
                                   "content": "def hello():\n    return 'hi'\n"}}}


def decided(app: Any) -> list[dict[str, Any]]:
    return [decision(args) for op, args in app.source.calls if op == "approval.decide"]


# --- 1a. labels say the rule written; the preview names an overriding rule ---------------------


async def test_profile_keys_are_labelled_by_the_rule_they_write() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")  # the oldest: e4ew, an exec request
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval card")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "deny for the profile" not in text, text
        assert "allow rule" in text and "forbid rule" in text, text
        await pilot.press("j")  # h8pn: a network request, denied by a deny rule
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "deny rule" in text and "forbid rule" not in text, text


@needs_bwrap
async def test_an_overridden_profile_rule_is_named_and_a_working_decision_offered(
        daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    app = live.make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await live.attached(pilot)
        run_id = await live.start_run(daemon, workspace, "ph-ask exec -- pytest -q; echo rc=$?")
        await live.pending_request(pilot, run_id)
        await pilot.press("a", "p")
        await live.wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the rule preview")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert '+ demo exec allow "pytest -q"' in text, text
        assert "never take effect" in text and 'rule "pytest" (ask)' in text, text
        assert "this run instead" in text, text
        await dialog_drawn(pilot)  # y typed before the question is drawn decides nothing
        await pilot.press("y")
        await live.run_output(pilot, run_id, "rc=0")
        assert not config.exists() or "pytest -q" not in config.read_text()


# --- 1b. y / n on the selected inbox row --------------------------------------------------------


async def test_y_and_n_on_the_selected_inbox_row_decide_it_once() -> None:
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        inbox = app.screen.query_one(ApprovalInbox)
        inbox.focus()
        inbox.select_key("h8pn")

        def footer() -> str:
            return screen_text(app).rstrip("\n").splitlines()[-1]

        await until(pilot, lambda: "y Allow" in footer(), "the inbox's keys in the footer")
        assert "n Deny" in footer() and footer().rstrip().endswith("Keys"), footer()
        await pilot.press("y")
        await until(pilot, lambda: decided(app), "a decision sent")
        assert decided(app) == [{"id": "h8pn", "allow": True, "scope": "once"}]
        inbox.select_key("e4ew")
        await pilot.press("n")
        await until(pilot, lambda: len(decided(app)) == 2, "a second decision sent")
        assert decided(app)[1] == {"id": "e4ew", "allow": False, "scope": "once"}


# --- 1c. Edit and Write show the change as a diff ---------------------------------------------


async def test_edit_and_write_requests_show_the_change_as_an_escaped_diff() -> None:
    app = app_with(approvals=[EDIT, WRITE])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval card")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "-total = 0" in text, text
        assert "+total = 0⟨ESC⟩]52;c;ZXZpbA==⟨U+0007⟩⟨U+202E⟩" in text, text
        assert "\x1b" not in text and "'old_string'" not in text, text
        await pilot.press("j")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "+def hello():" in text and "+    return 'hi'" in text, text


# --- 1d. a config the daemon refused -----------------------------------------------------------


@needs_bwrap
async def test_a_refused_config_is_shown_with_file_line_and_reason(daemon: Daemon) -> None:
    config = daemon.home / "config.toml"
    app = live.make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await live.attached(pilot)
        config.write_text('[profiles.demo.exec]\nallow = ["git status"]\nask = 7\n')
        await live.cli(daemon, "reload", check=False)
        await live.wait_for(pilot, lambda: "config.toml:3" in screen_text(app), "the config error")
        text = screen_text(app)
        line = line_with(text, "config.toml:3")
        assert "CONFIG NOT LOADED" in text and "old policy stays in force" in text, text
        assert "ask must be a list" in text, text
        assert line, text
        config.write_text('[profiles.demo.exec]\nallow = ["git status"]\n')
        await live.cli(daemon, "reload")
        await live.wait_for(pilot, lambda: "config.toml:3" not in screen_text(app), "the error to go")


# --- issue 16 point 4: run output never drives the terminal ------------------------------------


@needs_bwrap
async def test_run_output_controls_are_shown_not_obeyed(daemon: Daemon, workspace: Path) -> None:
    app = live.make_app(daemon)
    async with app.run_test(size=(80, 24)) as pilot:
        await live.attached(pilot)
        script = r"printf 'clip\033]52;c;ZXZpbA==\007 move\033[2J\033[H \033[31mred\033[0m end\n'"
        run_id = await live.start_run(daemon, workspace, script, profile="shell")
        await live.run_output(pilot, run_id, "end")
        shown = live.output_text(app)
        assert "\x1b" not in shown and "\x07" not in shown, repr(shown)
        assert "clip^[]52;c;ZXZpbA==^G move^[[2J^[[H red end" in shown, repr(shown)
        await pilot.pause(0.2)
        assert "^[]52;c;ZXZpbA==" in screen_text(app)
