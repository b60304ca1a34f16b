"""Review s32 (helper 114): the workspace's own top made a git folder.

git takes a folder for a git folder when it holds HEAD, objects/ and refs/, before it looks
for a `.git` above: in a workspace without `.git` at its top (a subfolder of a monorepo, or no
repository at all) the agent wrote HEAD, objects/, refs/ and a config naming core.worktree=..
and core.fsmonitor, and the person's `git status` there on the host ran the fsmonitor (as
root, under a root daemon), with nothing said at the run's end: the look for nested
repositories skipped the top. Now an empty read-only folder stands at HEAD while the run lives
(git takes no folder as HEAD), so no git folder can be made there.
"""

from __future__ import annotations

import pytest

from tests.sandbox.hostile_kit import git_repo, give
from tests.sandbox.test_workspace_attacks import BARE, host_git, payload


async def test_the_workspace_top_cannot_be_made_a_git_folder(hostile, tmp_path):
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    (ws / "app.py").write_text("print('hi')\n")
    give(hostile, ws)
    r = await hostile.run(BARE.format(d=".", prog=prog) + "; echo done")
    host_git(ws, tmp_path, "status")
    assert not marker.exists(), ("the host's git ran the agent's fsmonitor", r.out,
                                 r.handle.end_notes)
    assert not (ws / "HEAD").exists(), "the placeholder (or the agent's HEAD) was left behind"
    assert (ws / "app.py").read_text() == "print('hi')\n"


@pytest.mark.parametrize("breaks", ["printf 'junk\\n' > .git/HEAD", "mv .git/refs .git/refs.old"])
async def test_a_git_folder_the_agent_breaks_does_not_hand_the_top_to_git(hostile, tmp_path, breaks):
    """Helper 118: with .git made invalid, git took the top (HEAD, objects/, refs/, config)."""
    prog, marker = payload(tmp_path)
    ws = hostile.workspace
    git_repo(ws)
    give(hostile, ws)
    r = await hostile.run(f"{breaks}; " + BARE.format(d=".", prog=prog).replace("worktree = ..", "worktree = .") + "; echo done")
    host_git(ws, tmp_path, "status")
    assert not marker.exists(), ("the host's git ran the agent's fsmonitor", r.out, r.handle.end_notes)
