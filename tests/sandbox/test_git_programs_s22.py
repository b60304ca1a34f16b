"""Review s22 (git config that survives the run): the programs a workspace's git config names
stay read-only in the sandbox (console/sandbox/gitconfig.py CODE_KEYS), since git on the host
runs them after the run. The list knew core.fsmonitor, hooksPath, filters, diff and merge
drivers, aliases, helpers; it missed the other keys git 2.39 (and later) runs a program from:
core.gitProxy (every `git fetch` of a git:// remote), core.alternateRefsCommand, pager.<cmd>,
interactive.diffFilter (`git add -p`), difftool/mergetool.<tool>.path, gpg.ssh.defaultKeyCommand,
imap.tunnel, browser/man.<tool>.cmd and .path, submodule.<name>.update = !cmd,
trailer.<token>.command and .cmd, git send-email's programs, guitool.<name>.cmd, and newer gits'
config hooks (hook.<name>.command). A person's config naming a script of the project under one of
them left that script writable: the agent rewrote it, and the person's next `git fetch` ran it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from console.sandbox.protect import plan_protection
from tests.sandbox.hostile_kit import git_repo, give

# (config section text, the script it names under tools/): each names tools/NAME.
PROGRAMS = {
    "gp": '[core]\n\tgitProxy = tools/gp\n',
    "ar": '[core]\n\talternateRefsCommand = tools/ar\n',
    "pg": '[pager]\n\tlog = tools/pg\n',
    "df": '[interactive]\n\tdiffFilter = tools/df\n',
    "dt": '[difftool "x"]\n\tpath = tools/dt\n',
    "mt": '[mergetool "x"]\n\tpath = tools/mt\n',
    "sk": '[gpg "ssh"]\n\tdefaultKeyCommand = tools/sk\n',
    "it": '[imap]\n\ttunnel = tools/it\n',
    "bc": '[browser "x"]\n\tcmd = tools/bc\n',
    "bp": '[browser "x"]\n\tpath = tools/bp\n',
    "mc": '[man "x"]\n\tcmd = tools/mc\n',
    "mp": '[man "x"]\n\tpath = tools/mp\n',
    "su": '[submodule "s"]\n\tupdate = !tools/su\n',
    "tc": '[trailer "t"]\n\tcommand = tools/tc\n',
    "tk": '[trailer "k"]\n\tcmd = tools/tk\n',
    "se": '[sendemail]\n\tsendmailCmd = tools/se\n',
    "ss": '[sendemail]\n\tsmtpServer = tools/ss\n',
    "st": '[sendemail "work"]\n\ttoCmd = tools/st\n',
    "gt": '[guitool "g"]\n\tcmd = tools/gt\n',
    "hk": '[hook "h"]\n\tcommand = tools/hk\n',
}
SCRIPT = "#!/bin/sh\nexit 0\n"


def _plant(ws: Path, names) -> None:
    (ws / "tools").mkdir(exist_ok=True)
    for name in names:
        (ws / "tools" / name).write_text(SCRIPT)
        os.chmod(ws / "tools" / name, 0o755)
    with open(ws / ".git" / "config", "a") as fh:
        fh.write("".join(PROGRAMS[n] for n in names))


def test_host_git_runs_the_program_its_config_names(tmp_path: Path) -> None:
    """Why it matters: after the run, the person's own git runs what tools/gp and tools/tc
    hold (here as the agent would leave them), with no terminal and no network needed."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed (apt-get install git)")
    git_repo(tmp_path)
    _plant(tmp_path, ["gp", "tc"])
    for name in ("gp", "tc"):
        (tmp_path / "tools" / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-{name}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run([git, "-c", "safe.directory=*", "fetch", "git://x.invalid/r"], cwd=tmp_path,
                   env=env, capture_output=True, timeout=30)  # fmt: skip
    subprocess.run([git, "-c", "safe.directory=*", "interpret-trailers", "--trailer", "t=1"],
                   cwd=tmp_path, env=env, input=b"", capture_output=True, timeout=30)  # fmt: skip
    assert (tmp_path / "ran-gp").exists() and (tmp_path / "ran-tc").exists()


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_script_each_program_key_names_is_read_only(tmp_path: Path, name: str) -> None:
    git_repo(tmp_path)
    _plant(tmp_path, [name])
    p = plan_protection(tmp_path)
    try:
        kinds = {b.rel: b.kind for b in p.binds}
    finally:
        p.close()
    assert kinds.get(f"tools/{name}") == "ro", (PROGRAMS[name], sorted(kinds))


async def test_no_script_git_config_names_can_be_rewritten_in_the_sandbox(hostile):
    ws = hostile.workspace
    git_repo(ws)
    _plant(ws, sorted(PROGRAMS))
    give(hostile, ws)
    r = await hostile.run("for f in tools/*; do (echo 'touch /tmp/x' >> $f) 2>/dev/null && "
                          "echo WROTE:$f; done; true")  # fmt: skip
    assert "WROTE:" not in r.out, r.out
    assert all((ws / "tools" / n).read_text() == SCRIPT for n in PROGRAMS)
