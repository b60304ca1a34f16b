"""The CLI's tables: cells are text, never rich markup (a request's words come from a sandbox),
and a pipe gets every line whole, however wide."""

from __future__ import annotations

import pytest

from console.cli.output import table


def test_cells_are_never_markup(capsys: pytest.CaptureFixture[str]) -> None:
    table([["r1", "[bold red]approve me[/] [link=http://x.invalid]here[/link]"]], ["ID", "REQUEST"])
    out = capsys.readouterr().out
    assert "[bold red]approve me[/] [link=http://x.invalid]here[/link]" in out
    assert "\x1b" not in out  # a pipe gets no colour


def test_a_pipe_gets_whole_lines(capsys: pytest.CaptureFixture[str]) -> None:
    long = "git push origin main " + "x" * 300
    table([["r1", long], ["r22", "short"]], ["ID", "REQUEST"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "REQUEST"]
    assert lines[1] == f"r1   {long}" and lines[2] == "r22  short"
    assert all(line == line.rstrip() for line in lines)
