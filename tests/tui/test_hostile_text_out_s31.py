"""Review s31 (helper 105): an agent's control characters leaving the console as they would act.

- The History screen's export wrote the text column raw into CSV (ESC, BEL, CR, a C1 CSI,
  U+202E) and JSON lines with ensure_ascii=False (U+009B, U+202E raw): a finding's file name
  `x\\e]0;PWNED\\a\\e[1A\\e[2K\\rnothing to report` set the window title and overwrote the line
  above when the CSV was later `cat`ed. `pilothouse export --format csv` kept colour codes.
- `c` on the approval card copied the agent's raw command: `git status\\e[201~\\nrm -rf ~/.ssh`
  pasted into a terminal that trusts bracketed paste ends the paste and runs the second line.
Now the files hold the controls as visible text (or JSON escapes; a colour code as `^[[8m`,
not dropped: helper 108), and the clipboard gets the command as the card shows it, the
notification saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from console.tui.screens.approval import ApprovalScreen
from console.tui.screens.history import write_export
from tests.tui.fixed import APPROVALS, RUNS
from tests.tui.screen import app_with, attached, until

HOSTILE = "x\x1b]0;PWNED\x07\x1b[1A\x1b[2K\rnothing to report \x9b31m \u202eevil \x1b[8m"
SHOWN_COLOUR = "^[[8m"  # a colour code kept in the file as text, not dropped (helper 108)
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _rows() -> list[dict]:
    return [{"id": 1, "ts": 1_700_000_000.0, "run_id": "r1", "kind": "sandbox.finding",
             "actor": "daemon", "text": HOSTILE, "data": {"file": HOSTILE}, "hash": "ab"}]


def test_the_history_export_holds_no_control_that_acts(tmp_path: Path) -> None:
    for name in ("events.csv", "events.jsonl"):
        path = tmp_path / name
        assert write_export(path, _rows()) == 1
        text = path.read_text(encoding="utf-8")
        assert not [c for c in RAW if c in text], (name, text)
        assert "\r" not in text.replace("\r\n", ""), (name, text)  # CSV's own line ends only
        assert "PWNED" in text and "nothing to report" in text  # shown, not dropped
        if name.endswith(".csv"):
            assert SHOWN_COLOUR in text, text
    row = json.loads((tmp_path / "events.jsonl").read_text())
    assert row["text"] == HOSTILE  # JSON escapes: the same text, read back whole


async def _copied(subject: str) -> str:
    """What `c` on the card of a request for `subject` puts on the clipboard."""
    req = {**APPROVALS[0], "subject": subject, "title": "", "summary": "exec x"}
    app = app_with(runs=RUNS, approvals=[req])
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        app.action_open_approval(req["id"])
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the card")
        await pilot.press("c")
        await until(pilot, lambda: bool(copied), "the copy")
    return copied[0]


async def test_copy_gives_the_command_as_the_card_shows_it() -> None:
    # What the card shows, marks and all: not a command a paste would run (helper 108: one
    # that dropped a colour code and kept the line feed was another command that ran).
    copied = await _copied("git status\x1b[201~\nrm -rf ~/.ssh\n\u202e")
    assert copied == "git status⟨ESC⟩[201~⟨LF⟩rm -rf ~/.ssh⟨LF⟩⟨U+202E⟩", repr(copied)
    assert await _copied("git status --short") == "git status --short"  # plain: exactly as it runs


def test_the_cli_csv_export_holds_no_control_that_acts(home: Path, daemon_env: dict[str, str]) -> None:
    from tests.conftest import Daemon, history_writer

    with history_writer(home) as w:
        w.record("sandbox.finding", run_id="r0001", actor="daemon", text=HOSTILE, data={"file": HOSTILE})
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = d.cli("export", "--format", "csv").stdout
    finally:
        d.stop()
    assert "nothing to report" in out and not [c for c in RAW if c in out], repr(out)
    assert SHOWN_COLOUR in out, repr(out)
