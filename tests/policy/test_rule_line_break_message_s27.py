"""Saving a request as a profile rule when its command holds a line break (s27 review, finding
2): the refusal said only "a profile name and a one-line rule are needed", with no reason and
no way on. It now says why and what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config.edit import PolicyEditError, preview


@pytest.mark.parametrize("rule", ['echo "a\nb"', "ls\r"])
def test_a_rule_with_a_line_break_says_why_and_what_to_do(tmp_path: Path, rule: str) -> None:
    with pytest.raises(PolicyEditError) as caught:
        preview(tmp_path / "config.toml", "shell", "exec", "allow", rule)
    message = str(caught.value)
    assert "holds a line break" in message and "--scope once, run or a duration" in message
    assert "--pattern" in message
    assert not (tmp_path / "config.toml").exists()
