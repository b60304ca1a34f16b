"""Review h144: the approval preview with profiles written as inline tables.

A. An approver (not the owner) gets only the lines the edit changes (h135), but an inline
   table holds a whole profile on one line: `demo = { setenv = { TOKEN = "..." }, exec = ... }`
   came back whole, the setenv value with it. Such a line is named, not shown, now.
B. A decision that writes several rules was previewed rule by rule from the file: two rules
   for a missing table showed two new tables, where one table holding both is written. The
   preview is now the text apply_all writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config.edit import apply_all, preview_all
from console.daemon.ops.approvals import _preview_result

SECRET = "s3cr3t-owner-token-h144"
FILES = {
    "inline-all": 'profiles = { demo = { setenv = { TOKEN = "%s" }, exec = { allow = ["ls"] } } }\n',
    "profiles-inline": '[profiles]\ndemo = { setenv = { TOKEN = "%s" }, exec = { allow = ["ls"] } }\n',
    "no-exec": '[profiles]\ndemo = { setenv = { TOKEN = "%s" } }\n',
    "comment": '[profiles.demo.exec]\nallow = ["ls"]  # token %s\n',
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_an_approver_sees_no_owners_text_on_the_line_the_rule_goes_into(
        tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(FILES[name] % SECRET)
    edit = preview_all(path, [("demo", "exec", "allow", "make test")])
    approver = _preview_result([], [edit], None, owner=False)["diff"]
    assert SECRET not in approver, approver
    assert "make test" in approver and "@@" in approver
    assert SECRET in _preview_result([], [edit], None, owner=True)["diff"]  # the owner's own


def test_an_approver_still_sees_a_plain_rule_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[profiles.demo.exec]\nallow = ["ls"]\n\n[profiles.demo.setenv]\nT = "{SECRET}"\n')
    diff = _preview_result([], [preview_all(path, [("demo", "exec", "allow", "make")])], None,
                           owner=False)["diff"]
    assert '-allow = ["ls"]\n+allow = ["ls", "make"]\n' in diff and SECRET not in diff


def test_several_rules_are_previewed_as_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.demo]\ncommand = "x"\n')
    rules = [("demo", "exec", "allow", "make a"), ("demo", "exec", "allow", "make b")]
    shown = _preview_result([], [preview_all(path, rules)], None)["diff"]
    written = apply_all(path, rules)
    assert shown == written.diff_with(3), shown
    assert shown.count("[profiles.demo.exec]") == 1
