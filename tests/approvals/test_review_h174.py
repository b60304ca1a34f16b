"""Review h174 of what a person sees before approving from a shell: `pilothouse approve ID`.

`approve` shows the request whole, then asks "approve this request, exactly as shown?". It
wrote each row as one line and left the wrapping to the terminal, which keeps the space it
wraps at as a blank cell: with the space at the 80th column, `rm -rf DIR/ ..` was drawn as
`... DIR/` and `..` on the next row, the very rows `rm -rf DIRx/..` is drawn as (a trailing
blank cannot be seen), so the space that makes it remove the folder above was not on the
screen. The table (`pilothouse approvals`) wraps with a `␣` for such a space since review
h162; at a terminal `approve` (and `approvals --full`) now wraps its rows the same way.

A real daemon, real bubblewrap and the real `ph-ask`; the terminal is an 80x24 pty.
"""

from __future__ import annotations

import re

from tests.approvals.terminal import at_a_terminal
from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending

# "  command      rm -rf " is 22 columns: the space after DIR/ lands on the 80th.
PATH = "/workspace/" + "b" * 45 + "/"
SGR = re.compile(r"\x1b\[[0-9;]*m")


def rows_at(text: str, columns: int = 80) -> list[str]:
    """What an 80-column terminal shows of `text` (ASCII here), a row per 80 columns, with
    the blanks at a row's end, which no one can see, gone."""
    rows = []
    for line in text.split("\n"):
        rows.extend(line[i:i + columns].rstrip() for i in range(0, max(len(line), 1), columns))
    return rows


def command_as_read(rows: list[str]) -> str:
    """The command row and the rows it goes on to (indented under it, or from the row's
    start as a terminal wraps), `␣` read as the space it marks."""
    start = next(i for i, row in enumerate(rows) if row.startswith("  command "))
    column = rows[start].index("rm -rf")
    parts = [rows[start][column:]]
    for row in rows[start + 1:]:
        if row[:column].strip() and not row.startswith(" "):  # a terminal's wrap: from column 0
            parts.append(row)
        elif not row[:column].strip():
            parts.append(row[column:])
        else:
            break
    return "".join(parts).replace("␣", " ")


@needs_bwrap
def test_approve_at_80_columns_shows_the_space_the_terminal_wraps_at(
        daemon: Daemon, workspace) -> None:  # type: ignore[no-untyped-def]
    t, out = background(daemon, workspace, f"ph-ask exec -- rm -rf {PATH} ..; echo rc=$?")
    try:
        row = wait_pending(daemon)[0]
        assert row["subject"] == f"rm -rf {PATH} ..", row
        env = {k: v for k, v in daemon.env.items() if k not in ("COLUMNS", "LINES")}
        _, seen = at_a_terminal(daemon, "approve", row["id"], answer=b"n\n", size=(24, 80),
                                env={**env, "NO_COLOR": "1"})
        rows = rows_at(SGR.sub("", seen))
        assert command_as_read(rows) == row["subject"], "\n".join(rows)
        assert "exactly as shown?" in seen and "nothing was decided" in seen, seen
    finally:
        daemon.cli("deny", row["id"], check=False)
        t.join(60)
    assert "rc=1" in out["result"].stdout, out
