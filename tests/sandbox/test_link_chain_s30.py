"""Review s30 (helper 100): a long chain of links, and a run's end look.

Where a link in a read-only folder leads was found with os.path.realpath, which in Python 3.11
recurses once per link: a chain of 3,000 links the agent made during the run raised
RecursionError out of the end look, and every note of the run's end was lost with it (a nested
repository with a core.fsmonitor, a rebase todo with `exec` lines, both left for the person's
git on the host). The same chain shipped by a repository raised out of the start's plan.
Links are now followed one at a time, without recursion, at most 40 as the kernel does, and
each part of the end look that fails costs its own notes only, saying so.

Second round (helper 104): `.git/hooks/pre-commit -> ../../tools/hook -> hook.sh` made only
hook.sh read-only; the agent replaced the link in the middle with a script of its own, which
the person's `git commit` on the host ran. Each link on the way is masked now, as a protected
path that is a link is.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from console.sandbox.links import MAX_LINKS, real_path
from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import mentions

CHAIN = 3000
PLANT = (  # what the person's git on the host would run
    "mkdir -p src/.git && printf '[core]\\n\\tfsmonitor = ./evil.sh\\n' > src/.git/config; "
    "mkdir -p .git/rebase-merge && echo 'exec touch /tmp/pwned' > .git/rebase-merge/git-rebase-todo; "
)
LENGTHEN = (  # the harmless chain the repository shipped, made 3,000 links long
    f"cd chain && rm l0 && i=0; while [ $i -lt {CHAIN} ]; do ln -s l$((i+1)) l$i; i=$((i+1)); "
    f"done; mkdir l{CHAIN}; cd ..; "
)


def test_real_path_is_realpath_one_name_at_a_time(tmp_path: Path) -> None:
    """An oracle: os.path.realpath on random trees of folders, files and links (relative,
    absolute, `..`, dangling); real_path says None only past MAX_LINKS links (loops)."""
    rng = random.Random(30)
    names, checked = ["a", "b", "c", "d"], 0
    for trial in range(150):
        top = tmp_path / str(trial)
        top.mkdir()
        for _ in range(10):
            full = top / "/".join(rng.choice(names) for _ in range(rng.randint(1, 3)))
            try:
                full.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(full):
                    continue
                if (kind := rng.random()) < 0.4:
                    full.mkdir()
                elif kind < 0.6:
                    full.write_text("")
                else:
                    os.symlink(rng.choice(["..", "../..", ".", "/tmp", rng.choice(names),
                                           f"../{rng.choice(names)}", str(top / rng.choice(names)),
                                           f"{rng.choice(names)}/{rng.choice(names)}"]), full)
            except OSError:
                continue
        for _ in range(20):
            asked = str(top / "/".join(rng.choice([*names, "..", "."])
                                      for _ in range(rng.randint(1, 5))))
            got = real_path(asked)
            if got is not None:
                assert got == os.path.realpath(asked), asked
                checked += 1
    assert checked > 2000


def test_a_chain_past_the_kernels_bound_leads_nowhere(tmp_path: Path) -> None:
    (tmp_path / "end").mkdir()
    os.symlink("end", tmp_path / f"l{CHAIN}")
    for i in range(CHAIN):
        os.symlink(f"l{i + 1}", tmp_path / f"l{i}")
    assert real_path(str(tmp_path / "l0")) is None  # no RecursionError either
    assert real_path(str(tmp_path / f"l{CHAIN - MAX_LINKS + 1}")) == str(tmp_path / "end")


def _repo(ws: Path) -> None:
    """A protected folder past the start's look (2,000 entries), with one link in it to a short,
    harmless chain: where it leads is looked at when the run ends."""
    git_repo(ws)
    (ws / ".vscode").mkdir()
    for i in range(2001):  # folders, listed before the link: the look stops before it
        (ws / ".vscode" / f"d{i}").mkdir()
    (ws / "chain").mkdir()
    (ws / "real").write_text("x\n")
    os.symlink("../real", ws / "chain" / "l0")
    os.symlink("../chain/l0", ws / ".vscode" / "zz")


async def test_a_long_link_chain_does_not_hide_the_runs_end_notes(hostile) -> None:
    ws = hostile.workspace
    _repo(ws)
    give(hostile, ws)
    r = await hostile.run(PLANT + LENGTHEN + "echo DONE", timeout=180)
    assert "DONE" in r.out, r.out
    notes = r.handle.end_notes
    assert mentions(notes, "src/.git"), notes
    assert mentions(notes, "git-rebase-todo"), notes


G = ["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]


async def test_a_link_in_the_middle_of_a_hook_chain_cannot_be_replaced(hostile, tmp_path: Path) -> None:
    ws = hostile.workspace
    subprocess.run([*G, "init", "-q", "-b", "master", str(ws)], check=True)
    (ws / "tools").mkdir()
    (ws / "tools" / "hook.sh").write_text("#!/bin/sh\nexit 0\n")
    (ws / "tools" / "hook.sh").chmod(0o755)
    os.symlink("hook.sh", ws / "tools" / "hook")
    os.symlink("../../tools/hook", ws / ".git" / "hooks" / "pre-commit")
    (ws / "f").write_text("f\n")
    subprocess.run([*G, "-C", str(ws), "add", "f", "tools"], check=True)
    subprocess.run([*G, "-C", str(ws), "commit", "-qm", "x"], check=True)
    give(hostile, ws)
    proof = tmp_path / "proof"
    if hostile.name.endswith("-user"):  # a person's daemon cannot cover a link: it refuses
        with pytest.raises(AssertionError, match="cannot cover a link"):
            await hostile.run("true")
        return
    r = await hostile.run(
        "echo tamper >> tools/hook.sh 2>&1; "  # the end of the chain: refused
        f"rm tools/hook && printf '#!/bin/sh\\necho RAN-ON-HOST > {proof}\\n' > tools/hook && "
        "chmod +x tools/hook && echo SWAPPED")
    (ws / "f").write_text("g\n")
    done = subprocess.run([*G, "-C", str(ws), "commit", "-qam", "y"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr  # the person's hook, as it was, still runs
    assert "SWAPPED" not in r.out and not proof.exists(), (r.out, r.handle.end_notes)
