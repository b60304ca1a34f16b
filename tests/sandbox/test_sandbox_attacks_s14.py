"""Session 14: the look for symbolic links in read-only protected folders at a run's start is
bounded across folders, as the look for hard links is (aliases.py), and what it could not look
through is reported at the run's end. A real bubblewrap run on a temporary workspace. Failed
before the fix: /work/notes/sandbox-s14-before.txt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.conftest import needs_bwrap

REPOS, LINKS = 20, 2000  # 40,000 links: twice the bound in all (aliases.ALL_ENTRIES_MAX)
LINK_NOTE = "the look for symbolic links in read-only folders stopped"


def _many_linked_folders(ws: Path, repos: int = REPOS) -> None:
    """`repos` nested `.claude` folders (protected read-only), each of LINKS links to the same
    file beside it, `p<i>/target.txt`: each folder's links lead somewhere of their own."""
    for i in range(repos):
        top = ws / f"p{i}"
        (top / ".claude").mkdir(parents=True)
        (top / "target.txt").write_text("harmless\n")
        for j in range(LINKS):
            os.symlink("../target.txt", top / ".claude" / f"l{j}")


def test_the_link_look_is_bounded_across_folders_and_says_so(tmp_path: Path) -> None:
    """Unbounded across folders, every start read every link (a realpath each; 200,000 in the
    review's workspace). Now it stops at the hard-link look's bound in all
    (aliases.ALL_ENTRIES_MAX), with one note."""
    from console.sandbox.aliases import ALL_ENTRIES_MAX, DIR_ENTRIES_MAX
    from console.sandbox.protect import plan_protection

    ws = tmp_path / "ws"
    _many_linked_folders(ws)
    plan = plan_protection(ws)
    try:
        cut = [n for n in plan.notes if LINK_NOTE in n]
        assert len(cut) == 1, plan.notes
        assert f"past {DIR_ENTRIES_MAX} entries each or {ALL_ENTRIES_MAX} in all" in cut[0]
        bound = {b.rel for b in plan.binds if b.kind == "ro" and b.rel.endswith("target.txt")}
        assert 0 < len(bound) <= ALL_ENTRIES_MAX // LINKS + 1, sorted(bound)
    finally:
        plan.close()


@needs_bwrap
async def test_a_run_starts_in_a_workspace_of_many_linked_folders_and_says_where_it_stopped(
        bwrap_box) -> None:  # fmt: skip
    """A real run in that workspace starts, and its notes say once where the look stopped."""
    _many_linked_folders(bwrap_box.workspace)
    r = await bwrap_box.run("echo STARTED", timeout=120)
    assert "STARTED" in r.out, (r.out, r.handle.notes)
    assert sum(LINK_NOTE in n for n in r.handle.notes) == 1, r.handle.notes


@needs_bwrap
async def test_a_file_behind_a_link_the_look_did_not_reach_is_reported_when_changed(
        bwrap_box) -> None:  # fmt: skip
    """Fail closed: past the bound, where a read-only folder's links lead is not made
    read-only, so it is looked at when the run ends (watch.changed_behind_links). Fifteen
    folders pass the bound in all; the agent writes every target: each write is refused
    (read-only) or reported at the run's end."""
    from console.sandbox.aliases import ALL_ENTRIES_MAX

    folders = ALL_ENTRIES_MAX // LINKS + 5
    _many_linked_folders(bwrap_box.workspace, folders)
    r = await bwrap_box.run(
        f"for i in $(seq 0 {folders - 1}); do "
        "(echo changed >> p$i/target.txt) 2>/dev/null && echo WROTE p$i; done; true",
        timeout=120)  # fmt: skip
    assert sum(LINK_NOTE in n for n in r.handle.notes) == 1, r.handle.notes
    wrote = re.findall(r"WROTE (p\d+)", r.out)
    assert 0 < len(wrote) < folders, r.out  # the first folders' targets were read-only
    ends = "\n".join(r.handle.end_notes)
    named = [p for p in wrote if f"{p}/target.txt was changed during the run: a link" in ends]
    more = re.search(r"(\d+) more files behind links", ends)
    assert len(named) + (int(more.group(1)) if more else 0) == len(wrote), r.handle.end_notes
