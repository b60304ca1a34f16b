"""Session 29: what a Codex apply_patch is asked as (console/sandbox/inside_writes.py), one request
per file, named where it lands, and the hook asking them in turn (tests/agents has the real Codex)."""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import pytest

from console.sandbox import inside
from console.sandbox.inside_writes import PATCH_FILES_MAX, Refused, patch_files, subjects
from console.text import review_rows


def patch(*lines: str) -> dict:
    return {"command": "*** Begin Patch\n" + "".join(f"{line}\n" for line in lines) + "*** End Patch\n"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "Makefile").write_text("all:\n")
    os.symlink("..", tmp_path / "src" / "up")
    os.symlink("../Makefile", tmp_path / "src" / "mk")
    return tmp_path.resolve()


def test_each_file_is_a_request_of_its_own_whole_and_in_order(ws: Path) -> None:
    call = patch("*** Add File: src/a.py", "+a", "*** Update File: README", "@@", "-x", "+y",
                 "*** Delete File: src/old.py", "*** Update File: src/b.py", "*** Move to: lib/b.py", "@@", "-b", "+B")
    assert subjects("apply_patch", call, str(ws)) == [
        f"Write {ws}/src/a.py", f"Edit {ws}/README", f"Delete {ws}/src/old.py", f"Delete {ws}/src/b.py",
        f"Write {ws}/lib/b.py"]


def test_a_link_is_named_where_the_write_lands_and_a_removal_names_the_link(ws: Path) -> None:
    call = patch("*** Update File: src/up/Makefile", "@@", "-all:", "+x:", "*** Delete File: src/mk",
                 "*** Delete File: src/up/Makefile")
    assert subjects("apply_patch", call, str(ws)) == [
        f"Edit {ws}/Makefile (asked as src/up/Makefile: a link leads there)",
        f"Delete {ws}/src/mk",  # the link goes, not the file it names
        f"Delete {ws}/Makefile (asked as src/up/Makefile: a link leads there)"]


def test_headers_are_read_as_codex_reads_them_and_more() -> None:
    """Padded and in any case (Codex trims a header line; the case is read wider than Codex's),
    a Move to anywhere; a `+` line of added text is text, never a header."""
    text = ("*** Begin Patch\r\n  *** Add File: a\r\n+*** Add File: not-a-file\n"
            "\t*** UPDATE FILE: b\n*** Move to: c\n\u3000*** delete file: d\n*** End Patch")
    # a moved file is removed where it was (review s30: it was asked as an Edit)
    assert patch_files(text) == [("Write", "a"), ("Delete", "b"), ("Write", "c"), ("Delete", "d")]


@pytest.mark.parametrize("lines, why", [
    (["*** Add File:  a", "+x"], "space at an end"),
    (["*** Add File: a\x1b[2K", "+x"], "control character"),
    (["*** Add File: a\x1c", "+x"], "control characters around it"),  # Rust keeps \x1c, Python strips it
    (["*** Add File: ~/.bashrc", "+x"], "starts with ~"),
    (["*** Add File: src/up/../../etc/x", "+x"], "a .. after a link"),
    ([], "names 0 files"),
    ([f"*** Delete File: f{i}" for i in range(PATCH_FILES_MAX + 1)], f"names {PATCH_FILES_MAX + 1} files"),
])
def test_a_patch_the_hook_cannot_name_truly_is_refused(ws: Path, lines: list[str], why: str) -> None:
    with pytest.raises(Refused, match=why):
        subjects("apply_patch", patch(*lines), str(ws))


def test_a_call_with_other_fields_than_the_patch_text_is_refused(ws: Path) -> None:
    """A field Codex may add (a workdir) would change where the files land: not guessed at."""
    for call in ({"command": "*** Begin Patch\n*** End Patch", "workdir": "/tmp"}, {"patch": "x"}, {}):
        with pytest.raises(Refused, match="fields"):
            subjects("apply_patch", call, str(ws))


def test_a_dot_dot_after_a_link_is_refused_for_claude_code_too(ws: Path) -> None:
    """Claude Code (and Codex) take `..` out of the words before the write, the kernel after the
    link: the two land apart, so neither is named. A `..` inside a link's target is the kernel's."""
    (ws / "src" / "deep").mkdir()
    os.symlink("deep", ws / "src" / "d")
    with pytest.raises(Refused, match=r"\.\. after a link"):
        subjects("Write", {"file_path": f"{ws}/src/d/../../Makefile"}, None)
    assert subjects("Write", {"file_path": f"{ws}/src/up/Makefile"}, None) == [
        f"Write {ws}/Makefile (asked as {ws}/src/up/Makefile: a link leads there)"]
    assert subjects("Write", {"file_path": f"{ws}/src/../Makefile"}, None) == [f"Write {ws}/src/../Makefile"]
    assert subjects("WebFetch", {"url": "http://x.invalid/"}, None) is None


class Inbox:
    """A client that answers each request in turn from `answers`, recording what it was asked."""

    def __init__(self, *answers: bool, takes: float = 0.0) -> None:
        self.answers, self.asked, self.within, self.takes = list(answers), [], [], takes
        self.clock = 1000.0  # inside's time.monotonic, where a test sets it so

    def monotonic(self) -> float:
        return self.clock

    def ask_full(self, kind: str, subject: str, within: float | None = None, **detail: object) -> dict:
        self.asked.append((kind, subject, detail.get("tool_name"), detail.get("title")))
        self.within.append(within)
        self.clock += self.takes  # the person's time to answer
        allow = self.answers.pop(0)
        return {"allow": allow, "reason": "decided", "provenance": {"kind": "person", "person": "alice"}}


def hook(call: dict, cwd: Path, client: Inbox) -> dict:
    out = io.StringIO()
    event = {"session_id": "s1", "cwd": str(cwd), "hook_event_name": "PreToolUse",
             "tool_name": "apply_patch", "tool_input": call}
    inside.cmd_claude_hook(stdin=io.StringIO(json.dumps(event)), stdout=out, client=client)  # type: ignore[arg-type]
    return json.loads(out.getvalue())["hookSpecificOutput"]


def test_the_hook_asks_every_file_and_a_denied_one_denies_the_patch(ws: Path) -> None:
    call = patch("*** Add File: src/a.py", "+a", "*** Add File: Makefile2", "+m", "*** Add File: src/c.py", "+c")
    inbox = Inbox(True, True, True)
    answer = hook(call, ws, inbox)
    assert answer["permissionDecision"] == "allow"
    assert [a[1] for a in inbox.asked] == [f"Write {ws}/src/a.py", f"Write {ws}/Makefile2", f"Write {ws}/src/c.py"]
    assert {(a[0], a[2], a[3]) for a in inbox.asked} == {("custom", "apply_patch", None)}
    inbox = Inbox(True, False)
    answer = hook(call, ws, inbox)
    assert answer["permissionDecision"] == "deny" and len(inbox.asked) == 2  # the rest not asked
    assert answer["permissionDecisionReason"] == \
        "Pilothouse: approved by alice (scope once); denied by alice (scope once)"
    answer = hook(patch("*** Add File: ~/x", "+x"), ws, Inbox())
    assert answer["permissionDecision"] == "deny"
    assert answer["permissionDecisionReason"].startswith("Pilothouse refused this without asking: ~/x starts with ~")


def test_every_file_is_answered_before_the_agent_gives_up_on_its_hook(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code and Codex run the tool as if unhooked at 900 s. A request waits up to 840 s,
    but a patch's files are asked in turn: each one waits only for what is left of 870 s, and a
    file not reached in time denies the call (not the agent's timeout, which would allow it)."""
    call = patch("*** Add File: src/a.py", "+a", "*** Add File: src/b.py", "+b", "*** Add File: src/c.py", "+c")
    inbox = Inbox(True, True, True, takes=500.0)
    monkeypatch.setattr(inside.time, "monotonic", inbox.monotonic)
    answer = hook(call, ws, inbox)
    assert inbox.within == [inside.HOOK_ANSWERS_WITHIN, inside.HOOK_ANSWERS_WITHIN - 500.0]
    assert answer["permissionDecision"] == "deny" and len(inbox.asked) == 2
    assert "not every file was answered within 870s" in answer["permissionDecisionReason"]


def test_a_request_not_answered_within_its_time_is_withdrawn(tmp_path: Path) -> None:
    """The client stops waiting at `within` (its connection closed: the daemon withdraws the
    request), and no answer is no decision."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "agent.sock"))
    server.listen(1)
    try:
        with pytest.raises(inside.PilothouseError, match="timed out"):
            inside.PilothouseClient(sock=str(tmp_path / "agent.sock")).ask_full(
                "custom", "Write /workspace/x", within=0.2)
    finally:
        server.close()


def test_the_card_shows_the_patch_as_its_change_escaped_and_whole() -> None:
    """A file of a patch is decided on the patch: the card shows it line by line as its change
    (a control character named, not sent), not as one cut line of the agent's input."""
    text = "*** Begin Patch\n*** Update File: src/a.py\n@@\n-x = 1\n+x = 2\x1b[2K\n*** End Patch\n" + "+y\n" * 400
    rows = review_rows({"kind": "custom", "subject": "Edit /workspace/src/a.py", "detail": {
        "tool_name": "apply_patch", "tool_input": {"command": text}, "cwd": "/workspace"}})
    [change] = [r for r in rows if r.label == "change"]
    lines = change.value.split("\n")
    assert change.style == "diff" and lines[:4] == ["*** Begin Patch", "*** Update File: src/a.py", "@@", "-x = 1"]
    assert lines[4].startswith("+x = 2") and "\x1b" not in change.value and len(lines) == 406
    assert not [r for r in rows if r.label.startswith("tool_input")]  # nothing else of the input hides


def test_the_time_naming_the_files_takes_counts_against_the_deadline(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Helper 98: a path the hook takes minutes to walk (a..×500,000 under a folder 2,000 deep)
    used up Codex's 900 s before the first request, whose 840 s then ran past it: Codex wrote
    the Makefile with its request pending. The 870 s count from the hook's start."""
    inbox = Inbox(True, True, takes=0.0)
    monkeypatch.setattr(inside.time, "monotonic", inbox.monotonic)
    named = inside.tool_subjects

    def slow(*args: object) -> list:
        inbox.clock += 860.0  # the walk
        return named(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(inside, "tool_subjects", slow)
    answer = hook(patch("*** Add File: src/a.py", "+a", "*** Add File: src/b.py", "+b"), ws, inbox)
    assert inbox.within[0] == pytest.approx(inside.HOOK_ANSWERS_WITHIN - 860.0)
    assert answer["permissionDecision"] == "allow"


def test_a_walk_past_its_bounds_or_its_time_is_refused(ws: Path) -> None:
    deep = "a/" * 500  # a folder 500 deep, and at its bottom a link back to its top
    (ws / deep).mkdir(parents=True)
    os.symlink(str(ws / deep), ws / deep / "l")
    try:
        assert subjects("apply_patch", patch(f"*** Add File: {deep}l/x", "+x"), str(ws)) == [
            f"Write {ws}/{deep}x (asked as {deep}l/x: a link leads there)"]
        with pytest.raises(Refused, match="more than 4096 names"):
            subjects("apply_patch", patch(f"*** Add File: {deep}" + "l/" * 8 + "x", "+x"), str(ws))
        with pytest.raises(Refused, match="longer than 4096 bytes"):
            subjects("apply_patch", patch("*** Add File: src/" + "a/.." * 1100 + "/x", "+x"), str(ws))
        with pytest.raises(Refused, match="took too long"):
            subjects("apply_patch", patch("*** Add File: src/a.py", "+a"), str(ws), deadline=0.0)
    finally:  # bottom up: a tree this deep is past the recursion limit of pytest's own removal
        os.unlink(ws / deep / "l")
        for depth in range(500, 0, -1):
            os.rmdir(ws / ("a/" * depth))


def test_a_refusal_quotes_at_most_a_line_of_what_it_refuses(ws: Path) -> None:
    """Helper 99: the refusal echoed a whole header line back, megabytes of it, into the hook's
    answer; the agent's program reads that answer, and a person the reason in the history."""
    for call in (patch("*** Add File: a" + "\x1b" * 3_000_000, "+x"), patch("*** Add File: a\x1c" + "b" * 3_000_000, "+x"),
                 {"x" * 3_000_000: "y"}):
        with pytest.raises(Refused) as refused:
            subjects("apply_patch", call, str(ws))
        assert len(str(refused.value)) < 2000  # 200 characters, escaped
