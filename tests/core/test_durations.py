"""One duration grammar for the config, the CLI and the console: the same text means the same
time everywhere, and what is not a duration is refused saying what to write instead.

The cases of store.history.parse_since (the second grammar, deleted) are here too, except that
"0s" is now refused like every zero duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.config.load import ConfigError, load
from console.config.units import parse_duration
from tests.conftest import Daemon

GOOD = [
    ("500ms", 0.5), ("90s", 90), ("120s", 120), ("30m", 1800), ("10m", 600), ("2h", 7200),
    ("1d", 86400), ("7d", 604800), ("1w", 604800), ("1.5h", 5400), ("1h30m", 5400),
    ("1h 30m", 5400), (" 2H ", 7200), ("10 m", 600), ("1m500ms", 60.5), (30, 30), (0.25, 0.25),
]
BAD = ["", "2", "30", "h", "s", "-2h", "-5s", "2x", "10x", "2 hours", "1h-30m", "1h30", "abc",
       "2h;", "0s", "0m0s", "1e3s", True, None, [1], float("inf"), float("nan"), 0, -1,
       pytest.param("9" * 400 + "d", id="too-large")]


@pytest.mark.parametrize(("text", "seconds"), GOOD)
def test_durations_read_as_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", BAD)
def test_what_is_not_a_duration_is_refused_with_what_to_write(text: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "like 90s, 30m, 2h" in message or "more than zero" in message


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_config_reads_the_whole_grammar(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[defaults]\napproval_timeout = "12m30s"\n\n'
                               '[limits]\nprune_confirm_age = "2w"\nhead_timeout = "1500ms"\n'))
    assert cfg.approval_timeout == 750 and cfg.profiles["demo"].approval_timeout == 750
    assert cfg.bounds.prune_confirm_age == 2 * 604800 and cfg.bounds.head_timeout == 1.5


@pytest.mark.parametrize(("text", "line"), [
    ('[defaults]\napproval_timeout = "120"\n', 2),
    ('# a comment\n[limits]\n\nprune_confirm_age = "1h-30m"\n', 4),
    ('[profiles.demo]\napproval_timeout = "soon"\n', 2),
])
def test_the_config_refuses_a_bad_duration_with_file_and_line(tmp_path: Path, text: str,
                                                              line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.file == str(path) and caught.value.line == line
    assert "is not a duration" in caught.value.reason and "like 90s, 30m, 2h" in caught.value.reason


def test_the_cli_reads_the_same_grammar(daemon: Daemon) -> None:
    rows = json.loads(daemon.cli("history", "--since", "1h30m", "--json").stdout)
    assert rows and all(r["kind"] for r in rows)  # daemon.started is newer than 1h30m
    two_weeks = json.loads(daemon.cli("history", "--since", "2w", "--json").stdout)
    assert [r["id"] for r in two_weeks] == [r["id"] for r in rows]


@pytest.mark.parametrize(("args", "option"), [
    (("prune", "--older-than", "30"), "--older-than"),
    (("history", "--since", "2 hours"), "--since"),
])
def test_the_cli_refuses_what_is_not_a_duration(daemon: Daemon, args: tuple[str, ...],
                                                option: str) -> None:
    refused = daemon.cli(*args, check=False)
    assert refused.returncode == 2, refused
    assert option in refused.stderr and "is not a duration" in refused.stderr
    assert "like 90s, 30m, 2h" in refused.stderr and "Traceback" not in refused.stderr
