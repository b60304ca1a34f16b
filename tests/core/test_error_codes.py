"""Error codes are one vocabulary (an enum), spelled one way on the wire, all documented."""

from __future__ import annotations

import re
from pathlib import Path

from console.protocol import ErrorCode, Failure

REPO = Path(__file__).resolve().parents[2]


def test_every_code_raised_is_in_the_enum_and_spelled_with_hyphens() -> None:
    used = set()
    for path in (REPO / "console").rglob("*.py"):
        used |= set(re.findall(r'Failure\(\s*"([a-z_-]+)"', path.read_text()))
    known = {c.value for c in ErrorCode}
    assert {u.replace("_", "-") for u in used} <= known
    assert all("_" not in c for c in known)


def test_a_failure_goes_on_the_wire_in_the_one_spelling() -> None:
    assert Failure("bad_message", "x").to_wire()["code"] == "bad-message"
    assert Failure("already_decided", "x").code == ErrorCode.ALREADY_DECIDED == "already-decided"


def test_every_code_is_documented() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text()
    missing = [c.value for c in ErrorCode if f"`{c.value}`" not in doc]
    assert not missing, missing


def test_every_recorded_event_kind_is_in_the_enum_and_documented() -> None:
    from console.protocol import EventKind

    pattern = re.compile(r'(?:acommit|record_security|\brecord|_rec|_record_quietly|_record)\(\s*'
                         r'"([a-z_]+\.[a-z_.]+|tokens)"', re.S)
    used = set()
    for root in ("console", "store"):
        for path in (REPO / root).rglob("*.py"):
            text = path.read_text()
            used |= set(pattern.findall(text))
            used |= set(re.findall(r'EVENT_[A-Z_]+ = "([a-z_.]+)"', text))
    assert used <= {k.value for k in EventKind}, used - {k.value for k in EventKind}
    doc = (REPO / "docs" / "protocol.md").read_text()
    assert not [k.value for k in EventKind if f"`{k.value}`" not in doc]


def test_every_code_the_cli_gives_with_json_is_documented() -> None:
    """A --json failure carries the daemon's code or the CLI's own (review h204): each one a
    script may branch on is in docs/protocol.md, spelled with hyphens."""
    given = {"failed"}  # fail()'s default
    for path in (REPO / "console" / "cli").glob("*.py"):
        text = path.read_text()
        given |= set(re.findall(r'\berror="([a-z_-]+)"', text))
        given |= set(re.findall(r'failure_for_scripts\(\s*"([a-z_-]+)"', text))
    for path in (*(REPO / "console" / "client").glob("*.py"), REPO / "console" / "tui" / "link.py"):
        given |= set(re.findall(r'ClientError\(\s*"([a-z_-]+)"', path.read_text()))
    assert {"no-daemon", "bad-args", "interrupted", "not-allowed"} <= given, given
    assert all("_" not in code for code in given), given
    doc = (REPO / "docs" / "protocol.md").read_text()
    cli_part = doc.split("### The CLI's `--json` failures", 1)[1].split("\n## ", 1)[0]
    known = {c.value for c in ErrorCode}
    missing = sorted(c for c in given - known if f"`{c}`" not in cli_part)
    assert not missing, missing
