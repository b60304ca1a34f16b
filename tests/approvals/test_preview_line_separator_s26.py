"""The profile-rule preview cut a rule in two at U+2028 (s26 CLI sweep, finding 9).

`approve ID --scope profile --preview` lists the lines it writes and their diff. The diff was
split with str.splitlines(), which also ends a line at U+2028, U+2029, \\x1c-\\x1e and others
that TOML keeps inside a string: the rule `allow = ["pytest <U+2028>x"]` was shown as two diff
lines, neither of them the rule written. The file's lines end at \\n only, and so do the
preview's: each rule is one line, the separator shown escaped."""

from __future__ import annotations

import pytest

from console.cli.approvals import preview_text


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x1c", "\x1e", "\x85", "\x0b"])
def test_a_rule_with_a_line_separator_is_one_preview_line(sep: str) -> None:
    rule = f'allow = ["pytest {sep}x"]'
    diff = f"--- config.toml\n+++ config.toml\n@@ -1,0 +1,1 @@\n+{rule}\n"
    shown = preview_text({"file": "config.toml", "lines": [rule], "diff": diff}).split("\n")
    plus = [line for line in shown if line.startswith("+") and not line.startswith("+++")]
    assert len(plus) == 1, shown
    assert plus[0].startswith('+allow = ["pytest ') and plus[0].endswith('x"]'), plus
    assert sep not in plus[0]  # escaped, not drawn
    assert shown[-1] == plus[0], "no empty line after the diff"
