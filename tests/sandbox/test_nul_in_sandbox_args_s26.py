"""A NUL byte in a value handed to bubblewrap (s26 CLI sweep, finding 6).

bwrap reads its options from a memory file, each option ended by a NUL. A value with a NUL
inside ended early there, and what followed became options of bwrap's own: an environment
value `x\\0--share-net` gave the sandbox the host's network, past the gate. The values come from
the profile's `setenv` and, for the profile's `env` names, from the shell of whoever ran
`pilothouse run`: on a shared daemon a teammate's client sends them as JSON, where `\\u0000` is
one character. Such a value is now refused before bwrap starts, naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from console.sandbox.base import SandboxError
from console.sandbox.bwrap_args import args_memfd
from tests.conftest import Daemon, have_bwrap

pytestmark = pytest.mark.skipif(not have_bwrap(), reason="bubblewrap is not installed")

INJECT = "x\u0000--setenv\u0000INJECTED\u0000yes"


def test_a_nul_in_an_option_is_refused_naming_the_variable() -> None:
    with pytest.raises(SandboxError, match="environment variable PH_V holds a NUL"):
        args_memfd(["--clearenv", "--setenv", "PH_V", INJECT, "--ro-bind", "/usr", "/usr"])
    with pytest.raises(SandboxError, match="a sandbox option holds a NUL"):
        args_memfd(["--ro-bind", "/usr\u0000", "/usr"])


def _config(home: Path) -> None:
    # (A NUL in the config's own setenv is refused as the file is read, with its line:
    # tests/core/test_config_values_run_time_s26.py.)
    (home / "config.toml").write_text(
        '[profiles.fromshell]\ncommand = ["/usr/bin/env"]\nsandbox = "bwrap"\n'
        'env = ["PH_V"]\n')


def _run(client: Client, profile: str, workspace: Path, env: dict[str, str]) -> str:
    """The run's output, or the daemon's refusal."""
    try:
        rec = client.call("run.start", profile=profile, workspace=str(workspace), env=env)
    except ClientError as exc:
        return f"refused: {exc}"
    out = []
    for kind, payload in client.stream("logs", run=rec["id"], follow=True):
        if kind == "event" and payload.get("kind") == "run.output":
            out += payload["lines"]
    return "\n".join(out)


def test_a_value_with_a_nul_never_becomes_a_bwrap_option(home: Path, daemon_env: dict[str, str],
                                                        workspace: Path) -> None:
    profile = "fromshell"
    _config(home)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        client = Client(resolve(home), autostart=False)
        said = _run(client, profile, workspace, {"PH_V": INJECT})
        assert "INJECTED" not in said.replace("INJECTED\\u0000", "")
        assert "refused" in said and "PH_V holds a NUL byte" in said, said
        # The same profile with a clean value runs as usual.
        clean = _run(client, profile, workspace, {"PH_V": "plain"})
        assert "PH_V=plain" in clean.splitlines(), clean
    finally:
        d.stop()
