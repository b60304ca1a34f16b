"""Review h166 of how the console draws a network destination (see
tests/gate/test_review_h166.py for the gate's side): a real daemon, a bubblewrap run, and a
console that attaches after it; the screen is read as text at 80x24.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import needs_bwrap
from tests.gate.test_review_h166 import run_raw, started, v6_origin
from tests.tui.conftest import attached, make_app, wait_for
from tests.tui.fixed import APPROVALS
from tests.tui.screen import app_with, line_with, screen_text, toast, until
from tests.tui.test_console_hostile_s16 import open_card
from widgets.tables import NetFeed

pytestmark = pytest.mark.usefixtures("utc")
__all__ = ["v6_origin"]  # the fixture, used by name below


# The network feed wrote `::1:PORT` for a connection to [::1] on PORT, the address ::1:PORT
# (another host) on no port; the card and `pilothouse approvals` write `[::1]:PORT`.

@needs_bwrap
async def test_the_network_feed_writes_an_ipv6_destination_in_brackets(
        home: Path, daemon_env: dict[str, str], workspace: Path, v6_origin: int) -> None:
    port = v6_origin
    daemon = started(home, daemon_env, "six", f'default = "deny"\nallow = ["[::1]:{port}"]\n')
    try:
        out = run_raw(daemon, workspace, "six", f"GET http://[::1]:{port}/ HTTP/1.1")
        assert "-> HTTP/1.1 200" in out, out
        app = make_app(daemon)
        async with app.run_test(size=(80, 24)) as pilot:
            await attached(pilot)
            feed = app.screen.query_one(NetFeed)
            await wait_for(pilot, lambda: feed.row_count >= 1, "the network feed from the history")
            await pilot.pause(0.1)
            screen = screen_text(app)
    finally:
        daemon.stop()
    _, destination, decision = line_with(screen, "ALLOW").strip("│ ").split()[:3]
    assert (destination, decision) == (f"[::1]:{port}", "ALLOW"), screen


# The toast that says what a key on the card decided cut the destination at 80 characters with a
# bare `…`: `n` on `login.bank.invalid.` + 70 letters + `.evil.invalid:443` said "Denied
# `login.bank.invalid.aaaa…`", a host under login.bank.invalid, not the one decided. The end of
# a host name is what decides: a destination is written whole (at most 253 characters), and a
# command cut with a mark saying how much.

LONG_HOST = "login.bank.invalid." + "a" * 70 + ".evil.invalid:443"


async def test_the_decision_toast_names_the_whole_destination() -> None:
    req = {**APPROVALS[1], "id": "lh01", "subject": LONG_HOST, "title": LONG_HOST,
           "summary": f"network {LONG_HOST}",
           "detail": {**APPROVALS[1]["detail"], "host": LONG_HOST[:-4], "target": LONG_HOST}}
    app = app_with(approvals=[req])
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await open_card(pilot)
        await pilot.press("n")
        said = await until(pilot, lambda: toast(app, "Decisionrecorded", ""), "the decision toast")
    assert f"Denied`{LONG_HOST}`" in said, said
