"""Expected failures that reached a person as a Python traceback (s26 CLI sweep, finding 2):

- `pilothouse daemon` with PILOTHOUSE_HOME a file (NotADirectoryError), or a home whose socket
  path is past what a unix socket holds (OSError from bind, after everything else was opened);
- output that cannot be written at all: standard output opened for reading (`1</dev/null`:
  EBADF), a terminal that hung up (EIO, an SSH link dropped), only a full disk was handled;
- a number past a 64-bit integer (`replay-report --limit 9223372036854775808`: OverflowError
  from SQLite).

Each is now one line saying what and what to do, with its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def _cli(home: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    env["PILOTHOUSE_HOME"] = str(home)
    return subprocess.run([*CLI, *args], env=env, capture_output="stdout" not in kw, text=True,
                          timeout=60, **kw)  # type: ignore[call-overload]


def test_a_daemon_on_a_home_that_is_a_file_or_too_long_says_why(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    done = _cli(afile, "daemon")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "cannot make the daemon's folders" in done.stderr and "Not a directory" in done.stderr
    deep = tmp_path / ("x" * 100)
    deep.mkdir()
    done = _cli(deep, "daemon")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "past the 107 a unix socket may have" in done.stderr, done.stderr
    assert not list(deep.rglob("*.sock"))


def test_output_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    with open(os.devnull) as read_only:  # noqa: PTH123 - a descriptor open for reading
        for args in (["--version"], ["--help"], ["policy", "--help"]):
            done = _cli(tmp_path / "home", *args, stdout=read_only, stderr=subprocess.PIPE)
            assert done.returncode == 120, (args, done.stderr)
            assert done.stderr.startswith("pilothouse: could not write the output"), done.stderr
            assert "Traceback" not in done.stderr


def test_a_number_past_64_bits_is_refused_as_read(tmp_path: Path) -> None:
    for args in (["replay-report", "--limit", "9223372036854775808"],
                 ["replay", "t.jsonl", "--url", "http://127.0.0.1:9/v1", "--model", "m",
                  "--gpus", "99999999999999999999"]):
        done = _cli(tmp_path / "home", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "is past what a 64-bit integer holds" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_daemon_that_fails_at_start_is_quoted_from_this_start_only(tmp_path: Path) -> None:
    """`the daemon exited at start ... its log says:` quoted the whole log's last lines: an
    earlier failure's, since fixed, stood above this one's (CLI sweep, finding 4)."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / "config.toml"
    said = []
    for text in ('[profiles.first_mistake\ncommand = ["sh"]\n',
                 '[profiles.p]\ncommand = ["sh"]\nsecond_mistake = 1\n'):
        config.write_text(text)
        done = _cli(home, "ps")
        assert done.returncode != 0 and "the daemon exited at start" in done.stderr, done.stderr
        said.append(done.stderr)
    assert "not valid TOML" in said[0]
    assert "second_mistake" in said[1] and "not valid TOML" not in said[1], said[1]
    # h192: what to do, not only what is wrong
    assert all("fix that file, then run the command again" in s for s in said), said


def test_doctor_says_a_home_that_is_a_file_cannot_be_used(tmp_path: Path) -> None:
    """`doctor` printed `[ok] disk: 67.5 GiB free at .../afile` and exited 0 for a home that is
    a file, while every other command failed (CLI sweep, finding 7)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    done = _cli(afile, "doctor")
    assert done.returncode != 0, done.stdout
    said = " ".join(done.stdout.split())  # a finding is folded to the terminal's width
    assert "[error ] disk:" in said and "is not a folder" in said.split("disk:", 1)[1], said


def test_an_error_quoting_a_huge_argument_is_cut(tmp_path: Path) -> None:
    """A 100,000-character argument came back whole in its error (CLI sweep, finding 12)."""
    done = _cli(tmp_path / "home", "replay", "t.jsonl", "--url", "http://127.0.0.1:9/v1",
                "--model", "m", "--concurrency", "x" * 100_000)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr) < 3000 and "more characters" in done.stderr, len(done.stderr)


def test_an_empty_output_file_is_refused(tmp_path: Path) -> None:
    """`export -o ''` wrote to stdout (an unset "$FILE" read as none), though `-w ''` was
    refused (CLI sweep, finding 11). (A folder as the file: test_cli_odd_input.py.)"""
    for args, said in ((["export", "-o", ""], "an empty path names no file"),
                       (["trace", "export", "-o", ""], "an empty path names no file")):
        done = _cli(tmp_path / "home", *args)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
        assert not done.stdout
    assert not (tmp_path / "home").exists(), "nothing was started"
