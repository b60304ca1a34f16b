"""Where state lives: PILOTHOUSE_HOME puts everything under one folder."""

from __future__ import annotations

import os
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


def _platformdirs_paths() -> tuple[Path, ...]:
    """The places as platformdirs gives them (the oracle for console.paths' own XDG code)."""
    import platformdirs

    dirs = platformdirs.PlatformDirs("pilothouse", appauthor=False)
    state = Path(dirs.user_state_dir)
    return (Path(dirs.user_data_dir), Path(dirs.user_runtime_dir), state / "runs",
            Path(dirs.user_log_dir), Path(dirs.user_config_dir) / "config.toml")


XDG = ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")


@pytest.mark.parametrize("setting", ["unset", "absolute", "relative", "empty"])
@pytest.mark.parametrize("home", ["absolute", "trailing-slash", "relative", "unset"])
def test_user_places_are_platformdirs_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             setting: str, home: str) -> None:
    import pwd

    monkeypatch.delenv("PILOTHOUSE_HOME", raising=False)
    monkeypatch.delenv("PILOTHOUSE_CONFIG", raising=False)
    runtime = tmp_path / "xdg-run"
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    for name in XDG[:3]:
        value = {"unset": None, "absolute": str(tmp_path / name.lower()), "relative": "rel/dir",
                 "empty": ""}[setting]
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    home_value = {"absolute": str(tmp_path / "h"), "trailing-slash": f"{tmp_path}/h/",
                  "relative": "h", "unset": None}[home]
    if home_value is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home_value)
    got = resolve()
    want = _platformdirs_paths()
    assert (got.data_dir, got.runtime_dir, got.runs_dir, got.log_dir, got.config_file) == want
    if home in ("relative", "unset") and setting != "absolute":
        assert str(got.data_dir).startswith(pwd.getpwuid(os.getuid()).pw_dir)


@pytest.mark.parametrize("problem", ["missing", "mode 0755", "a symlink", "relative", "a file"])
def test_a_runtime_dir_that_is_not_ours_alone_is_not_used(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, problem: str) -> None:
    monkeypatch.delenv("PILOTHOUSE_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    real.chmod(0o700)
    path = {"missing": tmp_path / "nope", "mode 0755": tmp_path / "open",
            "a symlink": tmp_path / "link", "relative": Path("real"), "a file": tmp_path / "f"}[problem]
    if problem == "mode 0755":
        path.mkdir()
        path.chmod(0o755)
    elif problem == "a symlink":
        path.symlink_to(real)
    elif problem == "a file":
        path.write_text("")
        path.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    assert resolve().runtime_dir == tmp_path / "state" / "pilothouse" / "run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(real))
    assert resolve().runtime_dir == real / "pilothouse"


@pytest.mark.parametrize("home", ["~/ph", "rel/ph", "{tmp}/a/../b/", "{tmp}/link"])
def test_a_home_is_what_pathlib_resolves_it_to(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               home: str) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PILOTHOUSE_CONFIG", raising=False)
    value = home.format(tmp=tmp_path)
    base = Path(value).expanduser().resolve()
    got = resolve(value)
    assert (got.data_dir, got.runtime_dir, got.runs_dir, got.log_dir, got.config_file) == (
        base / "data", base / "run", base / "runs", base / "log", base / "config.toml")
    assert got.text("operator_sock") == str(base / "run" / "operator.sock")


def test_paths_are_made_on_first_use_and_carry_no_pathlib(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from console.paths import resolve; "
            f"p = resolve({str(tmp_path)!r}); p.ensure(); print(p.text('operator_sock'), "
            "'pathlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == [str(tmp_path / "run" / "operator.sock"), "False"], done.stderr
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"


def test_the_user_places_load_neither_platformdirs_nor_pathlib(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("PILOTHOUSE_HOME", *XDG)}
    env["HOME"] = str(tmp_path)
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from console.paths import resolve; "
            "p = resolve(); print(p.text('operator_sock'), sorted({'platformdirs', 'pathlib'} "
            "& set(sys.modules)))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.stdout.split(" ", 1) == [
        str(tmp_path / ".local/state/pilothouse/run/operator.sock"), "[]\n"], done.stderr
