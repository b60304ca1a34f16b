"""Writing a profile rule into a real config file: minimal edits, comments kept, atomic, locked."""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path

import pytest

from console.config.edit import PolicyEditError, apply, apply_grant, preview, preview_grant
from console.policy import new_grant

CONFIG = """\
# Pilothouse config: hand-written, with comments that must survive.
[defaults]
sandbox = "auto"   # keep this
approval_timeout = "120s"

[profiles.demo]
command = ["ph-demo-agent"]
description = \"\"\"
[profiles.demo.exec]
allow = ["not a real table"]
\"\"\"

[profiles.demo.exec]
default = "ask"
allow  = ["git status", "git diff"]  # read-only things
ask = [
  "git push",  # pushes are visible
  "pip install"   # deps
]
forbid = [
    "rm -rf /",
]

[profiles.demo.network]
default = "ask"
# no lists yet

[profiles.other]
command = ["x"]
exec = { allow = ["ls"] }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def lists(path: Path, profile: str = "demo", section: str = "exec") -> dict:
    return tomllib.loads(path.read_text())["profiles"][profile][section]


def added_lines(diff: str) -> list[str]:
    return [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]


def test_preview_writes_nothing_and_shows_the_diff(config: Path) -> None:
    edit = preview(config, "demo", "exec", "allow", "pytest -q")
    assert config.read_text() == CONFIG and edit.changed
    assert added_lines(edit.diff) == ['allow  = ["git status", "git diff", "pytest -q"]  # read-only things']
    assert not (config.parent / "config.toml.lock").exists()


def test_apply_appends_inside_a_one_line_list(config: Path) -> None:
    edit = apply(config, "demo", "exec", "allow", "pytest -q")
    text = config.read_text()
    assert text == edit.new_text and text == CONFIG.replace(
        '"git diff"]  # read-only', '"git diff", "pytest -q"]  # read-only')
    assert lists(config)["allow"] == ["git status", "git diff", "pytest -q"]


def test_multi_line_lists_keep_comments_and_style(config: Path) -> None:
    apply(config, "demo", "exec", "ask", "npm publish")
    apply(config, "demo", "exec", "forbid", "dd")
    text = config.read_text()
    assert '  "pip install",   # deps\n  "npm publish"\n]' in text
    assert '    "rm -rf /",\n    "dd",\n]' in text
    assert lists(config)["ask"] == ["git push", "pip install", "npm publish"]
    assert text.count("#") == CONFIG.count("#")


def test_a_missing_list_goes_into_its_section(config: Path) -> None:
    edit = apply(config, "demo", "network", "allow", "pypi.org:443")
    assert added_lines(edit.diff) == ['allow = ["pypi.org:443"]']
    assert 'default = "ask"\nallow = ["pypi.org:443"]\n# no lists yet' in config.read_text()


def test_a_missing_section_is_appended(config: Path) -> None:
    config.write_text(CONFIG + '\n[profiles."py3.12"]\ncommand = ["python3.12"]\n')
    apply(config, "py3.12", "network", "deny", "evil.com")
    assert config.read_text().endswith(
        '\n[profiles."py3.12"]\ncommand = ["python3.12"]\n\n[profiles."py3.12".network]\n'
        'deny = ["evil.com"]\n')
    assert lists(config, "py3.12", "network") == {"deny": ["evil.com"]}


def test_a_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    edit = apply(path, "demo", "exec", "allow", "make")
    assert edit.old_text == "" and path.read_text() == '[profiles.demo.exec]\nallow = ["make"]\n'


def test_quotes_and_backslashes_are_escaped(config: Path) -> None:
    rule = 'echo "hi there" \\ done'
    apply(config, "demo", "exec", "allow", rule)
    assert lists(config)["allow"][-1] == rule


def test_a_rule_already_there_changes_nothing(config: Path) -> None:
    before = config.stat().st_mtime_ns
    edit = apply(config, "demo", "exec", "allow", "git diff")
    assert not edit.changed and edit.diff == "" and config.stat().st_mtime_ns == before


@pytest.mark.parametrize(("args", "words"), [
    (("demo", "exec", "deny", "x"), 'no list "deny"'),
    (("demo", "files", "allow", "x"), "section exec or network"),
    (("demo", "exec", "allow", "a\nb"), "holds a line break"),
])
def test_edits_it_will_not_make(config: Path, args: tuple, words: str) -> None:
    with pytest.raises(PolicyEditError, match=words):
        apply(config, *args)
    assert config.read_text() == CONFIG


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[profiles.demo\n")
    with pytest.raises(PolicyEditError, match="not valid TOML"):
        apply(path, "demo", "exec", "allow", "ls")


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'[profiles.demo.exec]\r\nallow = [\r\n  "a",\r\n]\r\n')
    apply(path, "demo", "exec", "allow", "b")
    assert path.read_bytes() == b'[profiles.demo.exec]\r\nallow = [\r\n  "a",\r\n  "b",\r\n]\r\n'


def test_atomic_write_keeps_mode_symlink_and_leaves_no_temp_files(config: Path) -> None:
    config.chmod(0o640)
    link = config.parent / "link.toml"
    link.symlink_to(config)
    apply(link, "demo", "exec", "allow", "make")
    assert link.is_symlink() and "make" in lists(config)["allow"]
    assert config.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.toml", "config.toml.lock", "link.toml"]


def test_concurrent_writers_lose_nothing(config: Path) -> None:
    rules = [f"tool{i} run" for i in range(12)]
    threads = [threading.Thread(target=apply, args=(config, "demo", "exec", "allow", r)) for r in rules]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allow = lists(config)["allow"]
    assert allow[:2] == ["git status", "git diff"] and sorted(allow[2:]) == sorted(rules)
    assert "# read-only things" in config.read_text()


def test_apply_re_reads_under_the_lock(config: Path) -> None:
    shown = preview(config, "demo", "exec", "allow", "make")
    text = config.read_text().replace("# keep this", "# changed meanwhile")
    config.write_text(text)
    done = apply(config, "demo", "exec", "allow", "make")
    assert done.old_text == text != shown.old_text
    assert "# changed meanwhile" in config.read_text() and "make" in lists(config)["allow"]


def test_profile_grants_become_rules(config: Path) -> None:
    g = new_grant("network", "PyPI.org:443", "allow", "profile", run_id="r1", profile="demo",
                  decided_by="alice")
    assert added_lines(preview_grant(config, g).diff) == ['allow = ["pypi.org:443"]']
    apply_grant(config, g)
    assert lists(config, section="network")["allow"] == ["pypi.org:443"]
    run_grant = new_grant("exec", "make", "allow", "run", run_id="r1", profile="demo", decided_by="a")
    with pytest.raises(PolicyEditError, match="only a profile grant"):
        preview_grant(config, run_grant)
    assert os.path.exists(config)
