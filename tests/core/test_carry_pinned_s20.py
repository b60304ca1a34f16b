"""A profile's `carry` onto a file Pilothouse keeps in the sandbox's HOME (review s20, aider).

Carried files were mounted after the HOME files Pilothouse pins, so under bubblewrap a person's
own `~/.codex/config.toml` carried in replaced the one that holds Codex's PreToolUse hook, and
every approval was gone without a word; Docker refused the run ("Duplicate mount point"). Such
a file is not carried: the run starts with Pilothouse's file, and its notes say why.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap


@pytest.fixture
def readable_tmp() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="ph-carry-pinned-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _docker_profile() -> str:
    from tests.images.build import docker_client_or_skip, python_image

    return f'sandbox = "docker"\nimage = "{python_image(docker_client_or_skip())}"\n'


@needs_bwrap
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_a_carried_file_never_replaces_a_pinned_one(backend: str, home: Path, daemon_env: dict[str, str],
                                                    workspace: Path, readable_tmp: Path) -> None:
    own = readable_tmp / "codex-config.toml"
    own.write_text('model = "mine"\n# a person\'s own Codex config: no Pilothouse hook\n')
    rc = readable_tmp / "bashrc"
    rc.write_text("echo FROM-MY-BASHRC\n")
    pip = readable_tmp / "pip.conf"
    pip.write_text("[global]\nindex-url = http://127.0.0.1:3141/simple\n")
    extra = _docker_profile() if backend == "docker" else f'sandbox = "{backend}"\n'
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        f'[profiles.carrier]\ncommand = ["true"]\n{extra}'
        f'carry = ["{own}:~/.codex/config.toml", "{rc}:~/.bashrc", "{pip}:~/.codex",'
        f' "{pip}:~/.config/pip/pip.conf"]\n')
    if backend == "docker" and os.geteuid() == 0:  # a root daemon runs containers as 1000
        os.lchown(workspace, 1000, 1000)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = d.cli("run", "carrier", "-w", str(workspace), "--wait", "--", "sh", "-c",
                    "cat ~/.codex/config.toml; echo; cat ~/.bashrc; echo; cat ~/.config/pip/pip.conf",
                    timeout=120, check=False)
        said = (out.stdout[-3000:], out.stderr[-3000:])
        assert out.returncode == 0, said
        assert "PreToolUse" in out.stdout and 'model = "mine"' not in out.stdout, said
        assert "FROM-MY-BASHRC" not in out.stdout, said
        assert "index-url = http://127.0.0.1:3141/simple" in out.stdout, said  # the others still come
        (run,) = json.loads(d.cli("ps", "--all", "--json").stdout)
        notes = "\n".join(run.get("notes") or (run.get("info") or {}).get("notes") or [])
        for place in ("~/.codex/config.toml", "~/.bashrc", "~/.codex:"):
            assert f"carry {place}" in notes and "not carried" in notes, notes
    finally:
        d.stop()


@needs_bwrap
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_ssh_and_zsh_login_files_are_pinned(backend: str, home: Path, daemon_env: dict[str, str],
                                            workspace: Path) -> None:
    """~/.ssh/config (a ProxyCommand or `Match exec` runs around an approved `git push` to an
    ssh remote) and zsh's login files were writable in the sandbox's HOME (review s20)."""
    extra = _docker_profile() if backend == "docker" else f'sandbox = "{backend}"\n'
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(f'[profiles.t]\ncommand = ["true"]\n{extra}')
    if backend == "docker" and os.geteuid() == 0:
        os.lchown(workspace, 1000, 1000)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        out = d.cli("run", "t", "-w", str(workspace), "--wait", "--", "sh", "-c",
                    "mkdir -p ~/.ssh 2>/dev/null; for f in .ssh/config .zprofile .zlogin; do (echo 'ProxyCommand sh -c id' >> ~/$f)"
                    " 2>/dev/null && echo WROTE $f; cat ~/$f; done; command -v ssh >/dev/null &&"
                    " { ssh -G x.invalid >/dev/null 2>&1 && echo SSH-OK || echo SSH-REFUSED; }; echo DONE",
                    timeout=120).stdout
        assert "DONE" in out and "WROTE" not in out and "ProxyCommand" not in out, out
        assert "SSH-REFUSED" not in out, out  # ssh takes the pinned file (owner, mode) as a config
        assert out.count("empty and read-only") == 3, out
    finally:
        d.stop()
