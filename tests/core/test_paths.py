"""Where state lives: PILOTHOUSE_HOME puts everything under one folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.paths import resolve


def test_home_puts_everything_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTHOUSE_HOME", str(tmp_path))
    monkeypatch.delenv("PILOTHOUSE_CONFIG", raising=False)
    p = resolve()
    for path in (p.db_file, p.key_file, p.operator_sock, p.lock_file, p.run_dir("abcd"),
                 p.daemon_log, p.config_file):
        assert path.is_relative_to(tmp_path), path
    p.ensure()
    assert oct(p.runtime_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(p.data_dir.stat().st_mode & 0o777) == "0o700"


def test_config_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILOTHOUSE_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("PILOTHOUSE_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert resolve().config_file == tmp_path / "elsewhere.toml"


def test_platform_dirs_without_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PILOTHOUSE_HOME", raising=False)
    monkeypatch.delenv("PILOTHOUSE_CONFIG", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    p = resolve()
    assert p.config_file == tmp_path / "cfg" / "pilothouse" / "config.toml"
    assert not str(p.runtime_dir).startswith("/tmp/runtime")
