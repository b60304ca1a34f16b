"""The History export (key e) against an agent's links. Review h142: it resolved the name it
was given (`Path.resolve()`) and wrote the file the link names: an agent's `events.jsonl ->
~/.ssh/authorized_keys` in the workspace was written through, with no question asked when that
file did not exist yet (the CLI's -o already refused it). Review h144: it then refused a link
as the file but went through one as a folder: `ws/out/events.jsonl` where the agent left
`out -> ~/.ssh` wrote into the person's folder. A plain path of the person's is still written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.test_output_links_on_the_way_h144 import agents_folder_link
from tests.tui.fixed import NOW
from tests.tui.screen import app_with, attached, until

pytestmark = pytest.mark.usefixtures("utc")

ROWS = [{"id": 1, "ts": NOW - 1, "run_id": "k3mx", "kind": "net.decision", "actor": None,
         "text": "allow host.invalid:443", "data": {"action": "allow"}}]


async def _export_to(path: Path) -> None:
    app = app_with(history=ROWS)
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("h")
        await until(pilot, lambda: len(getattr(app.screen, "rows", [])) == 1, "the page")
        await pilot.press("e")
        await pilot.pause(0.2)
        app.screen.query_one("#prompt-value").value = str(path)
        await pilot.press("enter")
        await pilot.pause(1.0)


async def test_the_history_export_does_not_write_through_a_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "dotssh").mkdir()
    victim = tmp_path / "dotssh" / "authorized_keys"  # not there yet: no "Replace?" question
    link = tmp_path / "ws" / "events.jsonl"
    link.parent.mkdir()
    link.symlink_to(victim)
    await _export_to(link)
    assert not victim.exists(), "the export was written through the agent's link"
    assert link.is_symlink()


async def test_the_history_export_goes_through_no_folder_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ws, victim = agents_folder_link(tmp_path)  # ws/out -> dotssh, as the agent leaves it
    await _export_to(ws / "out" / "authorized_keys")
    assert list(victim.iterdir()) == [], "the export was written through the agent's link"


async def test_the_history_export_writes_a_plain_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a").mkdir()
    await _export_to(tmp_path / "a" / "events.jsonl")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["events.jsonl"]
    assert "host.invalid" in (tmp_path / "a" / "events.jsonl").read_text()
