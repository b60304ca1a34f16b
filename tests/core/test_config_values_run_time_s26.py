"""Config values that loaded fine and broke only when a run started (s26 CLI sweep, finding 6):
`limits = {pids = 99999999999999999999}` ("OverflowError ... a bug in Pilothouse"), a NUL in
`command` ("ValueError: embedded null byte"), `setenv = {"A=B" = "x"}` (bwrap's "setenv
failed", which `doctor` cannot explain), a NUL in a `setenv` value (it split bwrap's options:
tests/sandbox/test_nul_in_sandbox_args_s26.py). Each is now refused as the file is read, with
its line. A run's command from the CLI or a client (`run t -- ''`) is refused alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config.load import ConfigError, load
from tests.conftest import Daemon


@pytest.mark.parametrize("body,line,fragment", [
    ('command = ["/bin/echo"]\nlimits = {pids = 99999999999999999999}\n', 3, "pids must be"),
    ('command = ["/bin/echo"]\nlimits = {pids = 5000000}\n', 3, "from 1 to 4194304"),
    ('command = ["/bin/echo", "a\\u0000b"]\n', 2, "NUL byte"),
    ('command = [""]\n', 2, "named by nothing"),
    ('command = ["/bin/echo"]\nsetenv = {"A=B" = "x"}\n', 3, "without '='"),
    ('command = ["/bin/echo"]\nsetenv = {A = "x\\u0000--share-net"}\n', 3, "NUL byte"),
    ('command = ["/bin/echo"]\nenv = ["A=B"]\n', 3, "without '='"),
])
def test_a_value_no_run_could_use_is_refused_with_its_line(tmp_path: Path, body: str, line: int,
                                                          fragment: str) -> None:
    f = tmp_path / "config.toml"
    f.write_text("[profiles.p]\n" + body)
    with pytest.raises(ConfigError) as caught:
        load(f)
    assert f":{line}:" in str(caught.value) and fragment in str(caught.value), str(caught.value)


def test_a_run_whose_program_is_named_by_nothing_is_refused(
        daemon: Daemon, workspace: Path) -> None:
    done = daemon.cli("run", "shell", "-w", str(workspace), "--", "", check=False)
    assert done.returncode != 0 and "named by nothing" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_profile_with_env_names_keeps_its_own_name(tmp_path: Path) -> None:
    """The check of `env` names must not take the profile's name (a first version of it did:
    every profile with `env` was named after its last variable)."""
    f = tmp_path / "config.toml"
    f.write_text('[profiles.p]\ncommand = ["sh"]\nenv = ["FOO", "BAR"]\n')
    cfg = load(f)
    assert cfg.profile("p").name == "p" and cfg.profile("p").env == ["FOO", "BAR"]
    assert cfg.profile("claude").name == "claude" and cfg.profile("claude").env
