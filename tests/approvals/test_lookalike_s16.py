"""A command is shown exactly, but a letter from another script can look like an ASCII one:
`gіt push` (U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I) is not git, it is whatever
program the agent named so, and no allow rule for `git` matches it, so it comes to a person
who reads "git push" (review s16, agent surfaces). Hosts are shown as punycode for this
reason; a request's subject now says which of its characters are outside ASCII, on the card
and in `pilothouse approve` alike (both are console.text.review_rows)."""

from __future__ import annotations

import pytest

from console.cli.approvals import show_request
from console.text import review_rows


def _request(kind: str, subject: str) -> dict:
    return {"id": "r1", "run_id": "abcd", "profile": "demo", "kind": kind, "subject": subject,
            "detail": {}, "rule_provenance": None}


@pytest.mark.parametrize("kind, subject, named", [
    ("exec", "g\u0456t push origin main", "U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I"),
    ("exec", "rm -rf build\u2215..\u2215..", "U+2215 DIVISION SLASH"),
    ("custom", "Write /ws/\u0455rc/main.py", "U+0455 CYRILLIC SMALL LETTER DZE"),
])
def test_a_subject_with_letters_outside_ascii_says_which(kind: str, subject: str, named: str) -> None:
    rows = {r.label: r.value for r in review_rows(_request(kind, subject))}
    flagged = [v for label, v in rows.items() if "ASCII" in label]
    assert flagged and named in flagged[0], rows


def test_approve_prints_them_too(capsys: pytest.CaptureFixture[str]) -> None:
    show_request(_request("exec", "g\u0456t status"))
    assert "U+0456" in capsys.readouterr().out


def test_an_ascii_subject_has_no_such_row() -> None:
    rows = review_rows(_request("exec", "git push origin main"))
    assert not [r for r in rows if "ASCII" in r.label]


def test_the_list_is_bounded() -> None:
    subject = "echo " + "".join(chr(0x0400 + i) for i in range(200))
    value = next(r.value for r in review_rows(_request("exec", subject)) if "ASCII" in r.label)
    assert value.count("U+") <= 8 and "192 more" in value, value
