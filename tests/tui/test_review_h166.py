"""Review h166 of how the console draws a network destination (see
tests/gate/test_review_h166.py for the gate's side): a real daemon, a bubblewrap run, and a
console that attaches after it; the screen is read as text at 80x24.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.gate.test_review_h166 import run_raw, v6_origin
from tests.tui.conftest import attached, make_app, wait_for
from tests.tui.screen import line_with, screen_text
from widgets.tables import NetFeed

pytestmark = pytest.mark.usefixtures("utc")
__all__ = ["v6_origin"]  # the fixture, used by name below


# The network feed wrote `::1:PORT` for a connection to [::1] on PORT, the address ::1:PORT
# (another host) on no port; the card and `pilothouse approvals` write `[::1]:PORT`.

@needs_bwrap
async def test_the_network_feed_writes_an_ipv6_destination_in_brackets(
        home: Path, daemon_env: dict[str, str], workspace: Path, v6_origin: int) -> None:
    port = v6_origin
    (home / "config.toml").write_text(
        '[profiles.six]\ncommand = ["true"]\n[profiles.six.network]\ndefault = "deny"\n'
        f'allow = ["[::1]:{port}"]\n')
    daemon = Daemon(home, daemon_env)
    daemon.start()
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
