"""Review h201: a pattern grant (`approve --pattern WORDS`) covers added words, never a part fed
code it does not show. A pipe into the program was refused (review s30), and so was the same
text as a word (`sqlite3 test.db .shell id`: riskyopts), but a here-string or an input
redirection fed it all the same: `sqlite3 test.db <<<'.shell id'` and `sqlite3 test.db <
cmds.sql` were allowed by `--pattern "sqlite3 test.db"`, `python3 -m pytest <<<CODE` by
`--pattern "python3 -m pytest"`. The real grant table and command reader."""

from __future__ import annotations

import pytest

from console.policy import ExecRules, GrantTable, evaluate_exec, new_grant


def decided(pattern: str, command: str, exact: bool = False) -> str:
    table = GrantTable()
    table.add(new_grant("exec", pattern, "allow", "run", run_id="r", profile="p",
                        decided_by="me", now=0, exact=exact))
    return evaluate_exec(command, ExecRules([], [], [], "ask"), table, run_id="r", profile="p",
                         now=1).action


@pytest.mark.parametrize("pattern,command", [
    ("sqlite3 test.db", "sqlite3 test.db <<<'.shell id'"),
    ("sqlite3 test.db", "sqlite3 test.db < cmds.sql"),
    ("sqlite3 test.db", "sqlite3 test.db 0<cmds.sql"),
    ("sqlite3 test.db", "sqlite3 test.db <> cmds.sql"),
    ("sqlite3 test.db", "exec 3<cmds.sql; sqlite3 test.db <&3"),
    ("python3 -m pytest", "python3 -m pytest <<<'import os'"),
    ("node --test", "node --test < x.js"),
    ("psql -d app", "psql -d app < drop.sql"),
])
def test_a_pattern_grant_covers_no_program_fed_by_a_redirection(pattern: str, command: str) -> None:
    assert decided(pattern, command) == "ask", f"--pattern {pattern!r} allowed {command!r}"


@pytest.mark.parametrize("pattern,command", [
    ("sqlite3 test.db", "sqlite3 test.db"),
    ("sqlite3 test.db", "sqlite3 test.db < /dev/null"),
    ("sqlite3 test.db", "sqlite3 test.db <&0"),
    ("python3 -m pytest", "python3 -m pytest -q tests 2>&1"),
    ("grep foo", "grep foo < notes.txt"),
    ("sort -u", "sort -u <<<'b a'"),
])
def test_a_pattern_grant_still_covers_input_nobody_runs(pattern: str, command: str) -> None:
    assert decided(pattern, command) == "allow", (pattern, command)


def test_an_exact_grant_covers_the_redirection_it_was_given_with() -> None:
    """The exact command holds its here-string's text and its input's file name, as `python3
    x.py` holds its script's: what was approved is what runs."""
    command = "sqlite3 test.db < cmds.sql"
    assert decided(command, command, exact=True) == "allow"
    assert decided(command, "sqlite3 test.db < other.sql", exact=True) == "ask"
