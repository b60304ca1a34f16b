"""Review h142: the CLI's -o FILE refuses a link (c044aea, helper 139), but the History
screen's export (key e) resolved the name it was given (`Path.resolve()`) and wrote the file
the link names: an agent's `events.jsonl -> ~/.ssh/authorized_keys` (or, for a root console,
`-> /etc/...`) in the workspace was written through, with no question asked when the file the
link names did not exist yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.fixed import NOW
from tests.tui.screen import app_with, attached, until

pytestmark = pytest.mark.usefixtures("utc")


async def test_the_history_export_does_not_write_through_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    rows = [{"id": 1, "ts": NOW - 1, "run_id": "k3mx", "kind": "net.decision", "actor": None,
             "text": "allow host.invalid:443", "data": {"action": "allow"}}]
    (tmp_path / "dotssh").mkdir()
    victim = tmp_path / "dotssh" / "authorized_keys"  # not there yet: no "Replace?" question
    link = tmp_path / "ws" / "events.jsonl"
    link.parent.mkdir()
    link.symlink_to(victim)
    app = app_with(history=rows)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        await until(pilot, lambda: len(getattr(app.screen, "rows", [])) == 1, "the page")
        await pilot.press("e")
        await pilot.pause(0.2)
        app.screen.query_one("#prompt-value").value = str(link)
        await pilot.press("enter")
        await pilot.pause(1.0)
    assert not victim.exists(), "the export was written through the agent's link"
    assert link.is_symlink()
