"""Each vocabulary is defined once (console/protocol.py, console/text.py) and imported
everywhere else: the id alphabet, the live run states, printable text."""

from __future__ import annotations

import re
from pathlib import Path

from console import protocol, text
from tests.conftest import REPO

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
SOURCES = [p for root in ("console", "store", "widgets") for p in (REPO / root).rglob("*.py")]


def defined_in(pattern: str) -> list[str]:
    found = re.compile(pattern, re.M)
    return sorted(str(p.relative_to(REPO)) for p in SOURCES if found.search(p.read_text()))


def test_the_id_alphabet_is_written_once() -> None:
    assert defined_in(re.escape(ALPHABET)) == ["console/protocol.py"]
    assert protocol.ID_ALPHABET == ALPHABET
    ids = {protocol.new_id(6) for _ in range(200)}
    assert all(len(i) == 6 and set(i) <= set(protocol.ID_ALPHABET) for i in ids)


def test_live_states_are_defined_once() -> None:
    assert defined_in(r"^LIVE_STATES\s*=") == ["console/protocol.py"]
    assert defined_in(r'"starting", "running", "stopping"') == ["console/protocol.py"]


def test_printable_is_defined_once() -> None:
    assert defined_in(r"^def printable\(") == ["console/text.py"]
    assert text.printable("a\nb\x1b[31m", 120) == "a⏎b�[31m"
    assert text.printable("x" * 10, 5) == "xxxx…" and text.printable(None) == ""


def test_sources_are_found() -> None:
    assert Path(REPO / "console" / "protocol.py") in SOURCES
