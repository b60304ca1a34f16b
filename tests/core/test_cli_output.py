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


# Cells come from the daemon: a run's command, a run id or profile a teammate's daemon made up,
# a request's subject. Whatever a cell holds, the terminal is not told to do anything.
HOSTILE = ["\x1b]52;c;aGkK\x07", "\x1b[2J", "\x9b31m", "a\u202egnp.exe", "x\u2028y", "nul\x00",
           "\x1b]8;;http://x.invalid\x1b\\click\x1b]8;;\x1b\\"]


@pytest.mark.parametrize("cell", HOSTILE)
def test_cells_carry_no_control_or_bidi_characters(cell: str, capsys: pytest.CaptureFixture[str]) -> None:
    table([["r1", cell, "ok"]], ["ID", "COMMAND", "STATE"])
    out = capsys.readouterr().out
    assert all(ch.isprintable() or ch == "\n" for ch in out), repr(out)
    assert "ok" in out


def test_the_profile_rule_preview_shows_hostile_text_escaped() -> None:
    from console.cli.approvals import preview_text

    edit = {"file": "/home/a/.config/pilothouse/config.toml\x1b[2K",
            "lines": ['+ shell exec allow "make \u202etset\x1b]52;c;aGk=\x07"'],
            "diff": '--- a\n+++ b\n@@ -1 +1,2 @@\n+allow = ["make \u202etset"]\n',
            "overridden_by": None}
    text = preview_text(edit)
    assert all(ch.isprintable() or ch == "\n" for ch in text), repr(text)
    assert "⟨U+202E⟩" in text and "⟨ESC⟩" in text
    assert '+allow = ["make ' in text  # the diff keeps its shape


def test_a_failure_from_the_daemon_reaches_the_terminal_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    from console.cli.output import fail

    with pytest.raises(SystemExit):
        fail("already decided by \x1b]0;owned\x07bob", "ask \u202eeve")
    err = capsys.readouterr().err
    assert all(ch.isprintable() or ch == "\n" for ch in err), repr(err)
    assert "already decided by ⟨ESC⟩" in err
