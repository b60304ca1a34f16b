"""Review h152: a tracked file the agent changed and hid from git on the host.

The workspace's `.git/index` is the agent's to write (git needs it). The agent rewrote the
tracked Makefile and ran `git update-index --skip-worktree Makefile` (or `--assume-unchanged`,
or wrote the changed file's stat data beside the old object id): after the run the person's
`git status --porcelain --ignored` and `git diff` showed nothing, the run's end named nothing,
and `make` ran the agent's line. Now the run's end names each tracked file changed during the
run that git would not show as changed (console/sandbox/hidden.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from console.sandbox.hidden import hidden_changes
from tests.sandbox.hostile_kit import give

GIT = ["-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]


def _repo(ws: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed (apt-get install git)")
    subprocess.run([git, *GIT, "init", "-q", str(ws)], check=True)
    (ws / "Makefile").write_text("all:\n\techo built\n")
    (ws / "build.sh").write_text("echo ok\n")
    (ws / "plain.txt").write_text("plain\n")
    subprocess.run([git, "-C", str(ws), *GIT, "add", "Makefile", "build.sh", "plain.txt"], check=True)
    subprocess.run([git, "-C", str(ws), *GIT, "commit", "-qm", "init"], check=True)


def _host_git(ws: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(ws), *GIT, *args], capture_output=True, text=True,
                          check=True).stdout


# The third way: an index entry whose stat data is the changed file's, its object id the old one.
COPY_STAT = r"""
import os, struct, subprocess, time
subprocess.run(["git", "update-index", "--refresh"], capture_output=True)
with open("plain.txt", "w") as f: f.write("changed!\n")
# An mtime well before the index's own, which is written next: git then takes the entry as
# it stands (an entry as new as its index is "racily clean" and looked at again).
past = time.time() - 10
os.utime("plain.txt", (past, past))
data = bytearray(open(".git/index", "rb").read())
st = os.stat("plain.txt")
pos = 12
for _ in range(struct.unpack(">I", data[8:12])[0]):
    end = data.index(b"\0", pos + 62)
    if data[pos + 62:end] == b"plain.txt":
        data[pos:pos + 40] = struct.pack(
            ">10I", int(st.st_ctime), st.st_ctime_ns % 10**9, int(st.st_mtime),
            st.st_mtime_ns % 10**9, st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF,
            0o100644, OWNER[0], OWNER[1], st.st_size)
    pos += (62 + end - (pos + 62) + 8) & ~7
import hashlib
body = bytes(data[:-20])
open(".git/index", "wb").write(body + hashlib.sha1(body).digest())
"""


PRELUDE = "export HOME=/tmp; git config --global safe.directory '*'; "


def _image(hostile, request) -> dict:
    if hostile.name.startswith("docker"):
        return {"image": request.getfixturevalue("python_ref")}  # carries the host's git
    return {}


async def test_a_tracked_file_hidden_from_git_status_is_named_at_the_end(hostile, request):
    ws = hostile.workspace
    _repo(ws)
    give(hostile, ws)
    owner = ws.stat().st_uid, ws.stat().st_gid  # the owner as the host sees it: the agent guesses
    (ws / "copy_stat.py").write_text(f"OWNER = {owner}\n" + COPY_STAT)
    give(hostile, ws / "copy_stat.py")
    r = await hostile.run(PRELUDE +
        "printf 'all:\\n\\ttouch /tmp/pwned\\n' > Makefile && git update-index --skip-worktree Makefile; "
        "echo 'echo evil' >> build.sh && git update-index --assume-unchanged build.sh; "
        "python3 copy_stat.py; git status --porcelain; true", **_image(hostile, request))
    # What the person's review sees on the host: neither hidden file.
    shown = _host_git(ws, "status", "--porcelain", "--ignored")
    assert "Makefile" not in shown and "build.sh" not in shown, (shown, r.out)
    assert "Makefile" not in _host_git(ws, "diff")
    assert "touch /tmp/pwned" in (ws / "Makefile").read_text()
    notes = " ".join(r.handle.end_notes)
    # The copied stat data fools git where the agent could match every field git compares
    # (not where the engine's user differs from the owner it guessed): named wherever it does.
    for name in ("Makefile", "build.sh", *(() if "plain.txt" in shown else ("plain.txt",))):
        assert name in notes, (name, r.handle.end_notes)


async def test_ordinary_edits_and_commits_are_not_named(hostile, request):
    ws = hostile.workspace
    _repo(ws)
    give(hostile, ws)
    r = await hostile.run(PRELUDE + f"echo more >> build.sh; echo x >> plain.txt && git {' '.join(GIT)} "
                          "commit -qam edit; git status --porcelain; true",
                          **_image(hostile, request))
    assert not any("will not show" in n for n in r.handle.end_notes), r.handle.end_notes


def test_the_reader_passes_over_files_the_run_did_not_touch(tmp_path: Path) -> None:
    import os
    import time

    _repo(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "update-index", "--assume-unchanged", "build.sh"],
                   check=True)
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        assert hidden_changes(fd, time.time() + 5, [""]) == ([], "")
        (tmp_path / "build.sh").write_text("echo changed\n")
        assert hidden_changes(fd, 0, [""]) == (["build.sh"], "")
    finally:
        os.close(fd)


async def test_a_replace_ref_the_run_makes_is_named(hostile, request):
    """`git replace NEW OLD` after a commit: the person's `git log -p` showed the commit with
    no change, and `git show HEAD:Makefile` the old Makefile, while the file ran the agent's."""
    ws = hostile.workspace
    _repo(ws)
    give(hostile, ws)
    r = await hostile.run(PRELUDE + "B=$(git rev-parse HEAD:Makefile); "
                          "printf 'all:\\n\\ttouch /tmp/pwned\\n' > Makefile; "
                          f"git {' '.join(GIT)} commit -qam tidy; "
                          "git replace -f $(git rev-parse HEAD:Makefile) $B; true",
                          **_image(hostile, request))
    assert "echo built" in _host_git(ws, "show", "HEAD:Makefile")
    assert any("refs/replace" in n for n in r.handle.end_notes), r.handle.end_notes


async def test_a_split_index_does_not_hide_it(hostile, request):
    """The skip-worktree entry kept in `.git/sharedindex.*` (`git update-index --split-index`),
    where a reader of `.git/index` alone did not see it; and one set after the split, kept in
    `.git/index` with no name (split-index.c's replaced entries)."""
    ws = hostile.workspace
    _repo(ws)
    give(hostile, ws)
    r = await hostile.run(PRELUDE + "printf 'all:\\n\\ttouch /tmp/pwned\\n' > Makefile; "
                          "git update-index --skip-worktree Makefile; "
                          "git -c splitIndex.maxPercentChange=0 update-index --split-index; "
                          "echo 'echo evil' >> build.sh; git update-index --skip-worktree build.sh; "
                          "ls .git; true", **_image(hostile, request))
    assert "sharedindex." in r.out, r.out
    shown = _host_git(ws, "status", "--porcelain")
    assert "Makefile" not in shown and "build.sh" not in shown, shown
    notes = " ".join(r.handle.end_notes)
    assert "Makefile" in notes and "build.sh" in notes, r.handle.end_notes


def test_a_link_standing_for_a_hidden_file_is_named(tmp_path: Path) -> None:
    """`Makefile -> build/evil.mk` (build/ ignored), its entry skip-worktree: git status shows
    nothing, and make reads the link's target."""
    import os

    _repo(tmp_path)
    (tmp_path / "Makefile").unlink()
    (tmp_path / "Makefile").symlink_to("build/evil.mk")
    subprocess.run(["git", "-C", str(tmp_path), "update-index", "--skip-worktree", "Makefile"],
                   check=True)
    assert "Makefile" not in _host_git(tmp_path, "status", "--porcelain")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        assert hidden_changes(fd, 0, [""])[0] == ["Makefile"]
    finally:
        os.close(fd)


def test_a_hostile_link_extension_costs_no_more_than_its_bytes() -> None:
    """EWAH sizes are the agent's: 2^32 words claimed, and one run of 2^32 words of ones.
    Only the bits below the limit (the shared part's entries) come back: spelling out the
    run would be 2^38 numbers."""
    import struct

    from console.sandbox.gitindex import ewah_bits

    bits, _ = ewah_bits(struct.pack(">II", 1 << 31, 0xFFFFFFFF) + b"\xff" * 16, 0, 100)
    assert bits == list(range(100))
    bits, _ = ewah_bits(struct.pack(">II", 64, 1) + struct.pack(">Q", (0xFFFFFFFF << 1) | 1)
                        + b"\0" * 4, 0, 10)
    assert bits == list(range(10))


def test_the_look_reads_at_most_so_many_repositories_and_says_where_it_stopped(
        tmp_path: Path) -> None:
    """Thousands of nested repositories must not make every run's end read thousands of
    indexes: the top first, then up to TREES_MAX in all, and a note naming the first left."""
    import os

    from console.sandbox import hidden

    trees_max = getattr(hidden, "TREES_MAX", 64)  # none before this bound

    _repo(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "update-index", "--skip-worktree", "build.sh"],
                   check=True)
    (tmp_path / "build.sh").write_text("echo changed\n")
    nested = [f"vendor/r{i:03}" for i in range(trees_max + 5)]
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        notes = hidden.hidden_change_notes(fd, 0, ["", *nested])
    finally:
        os.close(fd)
    assert any("build.sh" in n for n in notes), notes
    stopped = [n for n in notes if "stopped early" in n]
    assert len(stopped) == 1 and nested[trees_max - 1] in stopped[0], notes


# A file git checked out through end-of-line conversion differs from its object, its stat data
# is in the index, and `git status` is clean: the run's end named it as hidden (a `git checkout`
# or `git stash` in the run touches it). The object is the content as git stores it, so it is
# no hidden change; a real one beside it still is. A file stored through Git LFS is named, the
# note saying why: any pointer matches the content it was made from (review h153).
LFS_CLEAN = ("python3 -c \"import sys,hashlib; d=sys.stdin.buffer.read(); "
             "sys.stdout.write('version https://git-lfs.github.com/spec/v1\\\\noid sha256:%s\\\\nsize %d\\\\n'"
             " % (hashlib.sha256(d).hexdigest(), len(d)))\"")


@pytest.mark.parametrize("how", ["eol", "lfs"])
def test_a_file_stored_through_a_filter_is_named_only_where_it_can_hide_a_change(
        tmp_path: Path, how: str) -> None:
    import os

    from console.sandbox.hidden import hidden_change_notes

    _repo(tmp_path)
    if how == "eol":
        (tmp_path / ".gitattributes").write_text("*.txt text eol=crlf\n")
        (tmp_path / "notes.txt").write_bytes(b"one\r\ntwo\r\n")
    else:
        (tmp_path / ".gitattributes").write_text("*.bin filter=lfs -text\n")
        subprocess.run(["git", "-C", str(tmp_path), "config", "filter.lfs.clean", LFS_CLEAN], check=True)
        subprocess.run(["git", "-C", str(tmp_path), "config", "filter.lfs.smudge", "cat"], check=True)
        (tmp_path / "weights.bin").write_bytes(os.urandom(4096))
    _host_git(tmp_path, "add", "-A")
    _host_git(tmp_path, "commit", "-qm", "filtered")
    stored = "notes.txt" if how == "eol" else "weights.bin"
    assert _host_git(tmp_path, "status", "--porcelain") == ""
    assert (tmp_path / stored).read_bytes() != _host_git(tmp_path, "cat-file", "-p", f"HEAD:{stored}").encode()
    subprocess.run(["git", "-C", str(tmp_path), "update-index", "--skip-worktree", "build.sh"], check=True)
    (tmp_path / "build.sh").write_text("echo changed\n")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        found = hidden_changes(fd, 0, [""])
        notes = " ".join(hidden_change_notes(fd, 0, [""]))
    finally:
        os.close(fd)
    assert found == ((["build.sh"], "") if how == "eol" else (["build.sh", "weights.bin"], ""))
    assert "Git LFS" in notes
