"""Review s30 (helper 100): the rebase states a run leaves that git on the host carries on.

The run's end named a todo with `exec` lines only at the top's `.git/rebase-merge` (s20). The
same todo in the git folder a `.git` file names (`git init --separate-git-dir`, a submodule's
checkout), in a nested repository present at the start, or after 64 KiB of comment lines (past
what was read), and a rebase with no exec line but a `strategy` git runs as a program (a name
with a slash is a path from the work tree: `/../evil.sh` with a folder `git-merge-` ran
./evil.sh), all ran on the host at the person's `git rebase --continue`, nobody told. Each is
named now. Both backends, a root and an ordinary-user daemon; the premise is shown by running
git on the host after the run.

Second round (helper 104): a cherry-pick's `.git/sequencer/opts` naming the strategy twice
(git takes the last), on the section's line, or after 4 KiB of comments went unnamed (opts is
now read by git's own parser); and 400 nested repositories each with a todo of long exec lines
made notes of 50 MB, which broke the operator's CLI: the notes are bounded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sandbox.hostile_kit import git_repo, give

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed "
                                "(apt-get install git)")
GIT = ["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]


def plant(gd: str, todo: str) -> str:
    """The files of an interactive rebase in progress, in the git folder `gd` (relative)."""
    return (f"mkdir -p {gd}/rebase-merge && cd {gd}/rebase-merge && echo refs/heads/master > head-name"
            " && h=$(cat ../refs/heads/master 2>/dev/null || cat ../refs/heads/main) && echo $h > onto"
            " && echo $h > orig-head && : > interactive && : > done"
            f" && printf '{todo}' > git-rebase-todo && cd - >/dev/null && echo PLANTED; ")


def layout(ws: Path, kind: str) -> tuple[str, str]:
    """(the git folder the host's git uses, the folder to run `git rebase --continue` in)."""
    if kind == "padded":
        git_repo(ws)
        return ".git", "."
    if kind == "separate":  # `.git` is a file: gitdir: <ws>/.gitdir
        subprocess.run(["git", "init", "-q", f"--separate-git-dir={ws}/.gitdir", str(ws)], check=True)
        (ws / "a.txt").write_text("a\n")
        subprocess.run(GIT + ["-C", str(ws), "commit", "-qm", "init", "--allow-empty"], check=True)
        return ".gitdir", "."
    (ws / "vendor" / "lib").mkdir(parents=True)  # nested: a vendored repository
    git_repo(ws / "vendor" / "lib")
    return "vendor/lib/.git", "vendor/lib"


@pytest.mark.parametrize("kind", ["separate", "nested", "padded"])
async def test_a_todo_in_any_git_folder_git_uses_is_named(hostile, kind: str, tmp_path: Path) -> None:
    ws = hostile.workspace
    gd, where = layout(ws, kind)
    give(hostile, ws)
    proof = tmp_path / "proof"
    pad = ("# " + "x" * 1000 + "\\n") * 70 if kind == "padded" else ""
    r = await hostile.run(plant(gd, pad + f"exec echo RAN-ON-HOST > {proof}\\n") + "true")
    assert "PLANTED" in r.out, r.out
    named = [n for n in r.handle.end_notes if f"{gd}/rebase-merge/git-rebase-todo" in n]
    subprocess.run(GIT + ["rebase", "--continue"], cwd=ws / where, capture_output=True)
    assert proof.exists()  # the premise: the person's git on the host runs it
    assert named, f"{kind}: the todo ran on the host, the run's end said nothing: {r.handle.end_notes}"
    assert "git rebase --abort" in named[0], named


async def test_a_strategy_git_runs_as_a_program_is_named(hostile, tmp_path: Path) -> None:
    ws = hostile.workspace
    g = [*GIT, "-C", str(ws)]
    subprocess.run([*GIT, "init", "-q", "-b", "master", str(ws)], check=True)
    for name in ("A", "B"):
        (ws / name).write_text(name)
        subprocess.run([*g, "add", name], check=True)
        subprocess.run([*g, "commit", "-qm", name], check=True)
    subprocess.run([*g, "branch", "b"], check=True)
    subprocess.run([*g, "reset", "-q", "--hard", "HEAD~1"], check=True)
    (ws / "C").write_text("C")
    subprocess.run([*g, "add", "C"], check=True)
    subprocess.run([*g, "commit", "-qm", "C"], check=True)  # master = C, beside b = B
    give(hostile, ws)
    proof = tmp_path / "proof"
    r = await hostile.run(
        "mkdir -p .git/rebase-merge && cd .git/rebase-merge && "
        "echo refs/heads/master > head-name && cat ../refs/heads/master > onto && "
        "cat ../refs/heads/b > orig-head && : > interactive && : > done && "
        "echo \"pick $(cat ../refs/heads/b) B\" > git-rebase-todo && printf '/../evil.sh' > strategy && "
        "cd ../.. && mkdir git-merge- && "
        f"printf '#!/bin/sh\\necho RAN-ON-HOST > {proof}\\nexit 1\\n' > evil.sh && chmod +x evil.sh && "
        "echo PLANTED")
    assert "PLANTED" in r.out, r.out
    named = [n for n in r.handle.end_notes if "/../evil.sh" in n]
    subprocess.run([*GIT, "rebase", "--continue"], cwd=ws, capture_output=True)
    assert proof.exists()  # the premise
    assert named, f"./evil.sh ran on the host and the run's end said nothing: {r.handle.end_notes}"


OPTS = {
    "last": "[options]\\n\\tstrategy = ort\\n\\tstrategy = /../evil.sh\\n",
    "pad": "[options]\\n" + "#" * 5000 + "\\n\\tstrategy = /../evil.sh\\n",
    "header": "[options] strategy = /../evil.sh\\n",
}


@pytest.mark.parametrize("form", list(OPTS))
async def test_a_sequencer_strategy_is_named(hostile, form: str, tmp_path: Path) -> None:
    ws = hostile.workspace
    g = [*GIT, "-C", str(ws)]
    subprocess.run([*GIT, "init", "-q", "-b", "master", str(ws)], check=True)
    (ws / "f").write_text("a\n")
    subprocess.run([*g, "add", "f"], check=True)
    subprocess.run([*g, "commit", "-qm", "A"], check=True)
    subprocess.run([*g, "checkout", "-qb", "side"], check=True)
    (ws / "g").write_text("g\n")
    subprocess.run([*g, "add", "g"], check=True)
    subprocess.run([*g, "commit", "-qm", "S1"], check=True)
    (ws / "h").write_text("h\n")
    subprocess.run([*g, "add", "h"], check=True)
    subprocess.run([*g, "commit", "-qm", "S2"], check=True)
    subprocess.run([*g, "checkout", "-q", "master"], check=True)
    (ws / "f").write_text("m\n")
    subprocess.run([*g, "commit", "-qam", "M"], check=True)
    give(hostile, ws)
    proof = tmp_path / "proof"
    r = await hostile.run(
        "mkdir -p .git/sequencer && cd .git/sequencer && cat ../refs/heads/master > head && "
        "cat ../refs/heads/master > abort-safety && "
        "printf 'pick %s S1\\npick %s S2\\n' $(cat ../refs/heads/side) $(cat ../refs/heads/side) > todo && "
        f"printf '{OPTS[form]}' > opts && cd ../.. && mkdir git-merge- && "
        f"printf '#!/bin/sh\\necho RAN-ON-HOST > {proof}\\nexit 1\\n' > evil.sh && chmod +x evil.sh && "
        "echo PLANTED")
    assert "PLANTED" in r.out, r.out
    named = [n for n in r.handle.end_notes if "evil.sh" in n or "sequencer" in n]
    subprocess.run([*GIT, "cherry-pick", "--continue"], cwd=ws, capture_output=True)
    print(form, "proof:", proof.exists(), "named:", named)
    assert proof.exists()  # the premise: the person's git on the host runs it
    assert named, f"{form}: ./evil.sh ran on the host, the run's end said nothing: {r.handle.end_notes}"


def test_the_notes_of_many_todos_are_bounded(tmp_path: Path) -> None:
    """The end look of 400 git folders, each with a todo of three 21 KB exec lines: named
    up to TODO_NOTES_MAX, each command cut, the rest counted."""
    import os

    from console.sandbox.watch import SHOWN_CHARS, TODO_NOTES_MAX, left_todo_notes

    folders = []
    for i in range(400):
        gd = tmp_path / f"r{i}" / ".git" / "rebase-merge"
        gd.mkdir(parents=True)
        (gd / "git-rebase-todo").write_text(("exec " + "x" * 21000 + "\n") * 3)
        folders.append(f"r{i}/.git")
    ws_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        notes = left_todo_notes(ws_fd, 0.0, folders)
    finally:
        os.close(ws_fd)
    assert len(notes) == TODO_NOTES_MAX + 1 and "390 more" in notes[-1], notes[-1]
    assert max(map(len, notes)) < 4 * SHOWN_CHARS + 400, max(map(len, notes))
