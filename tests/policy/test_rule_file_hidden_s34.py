"""A rule saved into the owner's config file from an agent's request is written with every
character a person cannot see as its TOML escape (review s34, helper 135): a bidi override in
the agent's command was written raw, and the file then read reordered in an editor or `cat`.
The file still reads back as the same rule (tomllib, the oracle)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from console.config import edit
from console.text import hides

RULES = ["git status \u202e exe.txt", 'echo "a\\b" \u200b\u0007', "x\U000e0041y", "plain"]
FILES = {
    "no table yet": '[profiles.shell]\ncommand = ["bash"]\n',
    "an empty list": '[profiles.shell]\ncommand = ["bash"]\n[profiles.shell.exec]\nallow = []\n',
    "a list with a rule": '[profiles.shell.exec]\nallow = ["ls"]\n',
    "no list yet": '[profiles.shell.exec]\ndefault = "ask"\n',
}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("start", sorted(FILES))
def test_a_saved_rule_shows_in_the_file_as_it_reads(tmp_path: Path, rule: str, start: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FILES[start])
    edit.apply(path, "shell", "exec", "allow", rule)
    text = path.read_text()
    assert not [ch for ch in text if hides(ch) and ch != "\n"], text
    assert tomllib.loads(text)["profiles"]["shell"]["exec"]["allow"][-1] == rule
