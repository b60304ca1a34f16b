"""`undo`: a saved rule taken out again (the daemon's fail-closed path when its record fails),
byte for byte, under the file's lock; never over a change someone made since."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config.edit import PolicyEditError, apply_all, undo

RULE = ("demo", "exec", "allow", "make lint")


def test_undo_puts_the_file_back_byte_for_byte(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    before = b'# mine\r\n[defaults]\r\napproval_timeout = "60s"\r\n# last line, no newline'
    config.write_bytes(before)
    config.chmod(0o640)
    edit = apply_all(config, [RULE, ("demo", "network", "allow", "127.0.0.9:443")])
    assert b"make lint" in config.read_bytes() and b"127.0.0.9:443" in config.read_bytes()
    undo(edit)
    assert config.read_bytes() == before
    assert config.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "config.toml.lock"]


def test_undo_removes_a_file_the_save_created(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    edit = apply_all(config, [RULE])
    assert config.exists()
    undo(edit)
    assert not config.exists()


def test_undo_leaves_a_file_changed_since_alone(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\n")
    edit = apply_all(config, [RULE])
    config.write_text(config.read_text() + "# edited by hand meanwhile\n")
    changed = config.read_bytes()
    with pytest.raises(PolicyEditError, match=r'changed after the rule was written.*"make lint".*by hand'):
        undo(edit)
    assert config.read_bytes() == changed
