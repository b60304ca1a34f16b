"""Review s28: a file tool's request names where the write lands, links followed.

The hook asked `Write /workspace/src/up/Makefile` when src/up -> ..: a grant for
`Write /workspace/src/*` covered it by its name, and the Makefile a person runs on the host was
written (tests/agents/test_claude_link_grant_s28.py has it with the real Claude Code). These
check the subject the hook builds, on real links, and that a folder's grant does not cover it.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from console.policy.grants import new_grant
from console.sandbox import inside
from console.sandbox.inside import PilothouseError, cmd_ask
from console.sandbox.inside_writes import Refused, written_path


def tool_subject(tool: str, tool_input: dict, cwd: str | None = None) -> str:
    """The one request a Claude Code file tool's call is asked as."""
    [subject] = inside.tool_subjects(tool, tool_input, cwd)
    return subject


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "Makefile").write_text("all:\n")
    os.symlink("..", tmp_path / "src" / "up")
    os.symlink("/etc", tmp_path / "src" / "etc")
    os.symlink("../Makefile", tmp_path / "src" / "notes.md")
    return tmp_path.resolve()


def test_a_path_through_a_folder_link_names_where_it_lands_first(ws: Path) -> None:
    given = f"{ws}/src/up/Makefile"
    assert tool_subject("Write", {"file_path": given}) == \
        f"Write {ws}/Makefile (asked as {given}: a link leads there)"
    assert tool_subject("Edit", {"file_path": f"{ws}/src/etc/passwd"}) == \
        f"Edit /etc/passwd (asked as {ws}/src/etc/passwd: a link leads there)"
    assert tool_subject("NotebookEdit", {"notebook_path": f"{ws}/src/notes.md"}) == \
        f"NotebookEdit {ws}/Makefile (asked as {ws}/src/notes.md: a link leads there)"
    # A new file under a link, and a path given relative to the agent's folder.
    assert tool_subject("Write", {"file_path": "up/new.txt"}, cwd=f"{ws}/src") == \
        f"Write {ws}/new.txt (asked as up/new.txt: a link leads there)"


def test_a_path_without_a_link_is_asked_as_given(ws: Path) -> None:
    for given in (f"{ws}/src/b.py", f"{ws}/src/../Makefile", f"{ws}/src//b.py", f"{ws}/src/./b.py",
                  f"{ws}/src/new/../b.py", f"{ws}/src/new/dir/c.py"):
        assert tool_subject("Write", {"file_path": given}) == f"Write {given}", given


# Review s28, helper 93: the first fix used posixpath.realpath, which takes a name it cannot look up
# (too long past 4 KiB) for no link, and follows /proc/self as the hook's own process.
N = "n" * 250


def deep_chain(ws: Path) -> str:
    """src/a -> N*8; there b -> N*9/k/..*18; k, 17 deep, -> ../*18 q/d1..d17. The kernel lands
    src/a/b at the workspace itself; realpath said src (lstat: ENAMETOOLONG, 'not a link')."""
    fd = os.open(ws / "src", os.O_RDONLY)
    for _ in range(17):
        os.mkdir(N, dir_fd=fd)
        fd, old = os.open(N, os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.symlink("../" * 18 + "q/" + "/".join(f"d{i}" for i in range(1, 18)), "k", dir_fd=fd)
    os.close(fd)
    (ws / "q").joinpath(*[f"d{i}" for i in range(1, 18)]).mkdir(parents=True)
    os.symlink("/".join([N] * 8), ws / "src" / "a")
    os.symlink("/".join([N] * 9) + "/k" + "/.." * 18, "b", dir_fd=(fd := os.open(
        "/".join([N] * 8), os.O_RDONLY, dir_fd=os.open(ws / "src", os.O_RDONLY))))
    os.close(fd)
    return f"{ws}/src/a/b/Makefile"


@pytest.mark.parametrize("case", ["deep", "proc-self-cwd", "dev-fd", "loop", "hard link", "hard link via a link"])
def test_a_path_that_cannot_be_followed_as_the_kernel_would_is_refused(ws: Path, case: str) -> None:
    if case.startswith("hard link"):  # helper 94: written in place, it changes the other name's file too
        os.link(ws / "Makefile", ws / "src" / "Makefile.in")
        given = f"{ws}/src/Makefile.in" if case == "hard link" else f"{ws}/src/up/src/Makefile.in"
    elif case == "deep":
        given = deep_chain(ws)
        with open(given, "a"):  # the kernel does follow it, to the top-level Makefile
            pass
        assert (ws / "src" / "Makefile").exists() is False
    else:
        os.symlink({"proc-self-cwd": "/proc/self/cwd", "dev-fd": "/dev/fd/3", "loop": "c"}[case],
                   ws / "src" / "c")
        given = f"{ws}/src/c/Makefile"
    with pytest.raises(PilothouseError, match="so it is refused"):
        tool_subject("Write", {"file_path": given})
    with pytest.raises(Refused, match="so it is refused"):
        written_path(given, None)


def test_a_grant_for_the_folder_does_not_cover_the_link_out_of_it(ws: Path) -> None:
    def folder(pattern: str):
        return new_grant("custom", pattern, "allow", "run", run_id="r1", profile=None,
                         decided_by="alice", exact=False)
    through = tool_subject("Write", {"file_path": f"{ws}/src/up/Makefile"})
    assert folder(f"Write {ws}/src/*").matches(f"Write {ws}/src/b.py")
    assert not folder(f"Write {ws}/src/*").matches(through)
    assert folder(f"Write {ws}/*").matches(through)  # it does land there


def test_ph_ask_write_names_where_the_write_lands(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's own `ph-ask write PATH` is read the same way as the hook's file tools."""
    asked: list[tuple[str, str]] = []

    class Client:
        def ask(self, kind: str, subject: str, **_: object) -> tuple[bool, str]:
            asked.append((kind, subject))
            return False, "no"

    monkeypatch.chdir(ws / "src")
    assert cmd_ask(["write", "up/Makefile"], client=Client()) == 1  # type: ignore[arg-type]
    assert cmd_ask(["write", "b.py"], client=Client()) == 1  # type: ignore[arg-type]
    assert asked == [("write", f"{ws}/Makefile (asked as up/Makefile: a link leads there)"),
                     ("write", f"{ws}/src/b.py")]  # whole since s31: a grant of b.py was any b.py


def hook_reason(tool_input: dict, tmp_path: Path) -> str:
    """The hook's answer for a Write, its daemon out of reach (no socket at that path)."""
    out = io.StringIO()
    event = {"session_id": "s1", "cwd": str(tmp_path), "hook_event_name": "PreToolUse",
             "tool_name": "Write", "tool_input": tool_input}
    inside.cmd_claude_hook(stdin=io.StringIO(json.dumps(event)), stdout=out,
                           client=inside.PilothouseClient(sock=str(tmp_path / "no.sock")))
    spec = json.loads(out.getvalue())["hookSpecificOutput"]
    assert spec["permissionDecision"] == "deny"
    return spec["permissionDecisionReason"]


def test_a_refused_path_reads_as_a_refusal_not_as_a_daemon_out_of_reach(ws: Path) -> None:
    """Helper 95 (s28): a hard-linked file's refusal began "could not get a decision", as if the
    daemon were down; a person (and the model) could only retry. It now says it was refused."""
    os.link(ws / "Makefile", ws / "src" / "Makefile.in")
    reason = hook_reason({"file_path": f"{ws}/src/Makefile.in", "content": "x"}, ws)
    assert reason.startswith("Pilothouse refused this without asking: ") and "hard link" in reason
    reason = hook_reason({"file_path": f"{ws}/src/new.py", "content": "x"}, ws)
    assert reason.startswith("Pilothouse could not get a decision, so this is denied: cannot reach")
