"""Where Pilothouse keeps its state.

Everything (database, HMAC key, sockets, run folders, logs) lives under one root when
PILOTHOUSE_HOME is set, which is what the tests and several parallel installs rely on.
Without it, the platformdirs locations of the user are used.
"""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

APP = "pilothouse"


class Paths(namedtuple("Paths", ["data_dir", "runtime_dir", "runs_dir", "log_dir", "config_file"])):
    """Where state lives (collections' namedtuple, not typing's NamedTuple nor a dataclass: every
    CLI start imports this, and typing or dataclasses' inspect costs milliseconds of it)."""

    __slots__ = ()
    data_dir: Path  # database and HMAC key
    runtime_dir: Path  # operator.sock, daemon lock and pid (0700; 0750 in team mode)
    runs_dir: Path  # one folder per run: agent.sock, gate.sock
    log_dir: Path
    config_file: Path  # the user's config file (may not exist)

    @property
    def db_file(self) -> Path:
        return self.data_dir / "pilothouse.db"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "audit.key"

    @property
    def operator_sock(self) -> Path:
        return self.runtime_dir / "operator.sock"

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "daemon.lock"

    @property
    def pid_file(self) -> Path:
        return self.runtime_dir / "daemon.pid"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "daemon.log"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def ensure(self, runtime_mode: int = 0o700) -> None:
        """Create the folders with private permissions (the runtime folder guards operator.sock)."""
        for d in (self.data_dir, self.runs_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=runtime_mode)
        os.chmod(self.runtime_dir, runtime_mode)
        os.chmod(self.data_dir, 0o700)


def _config_override() -> Path | None:
    value = os.environ.get("PILOTHOUSE_CONFIG")
    return Path(value).expanduser() if value else None


def resolve(home: str | os.PathLike[str] | None = None) -> Paths:
    """Paths for this process: explicit home, then PILOTHOUSE_HOME, then platformdirs."""
    root = home if home is not None else os.environ.get("PILOTHOUSE_HOME")
    override = _config_override()
    if root:
        base = Path(root).expanduser().resolve()
        return Paths(
            data_dir=base / "data",
            runtime_dir=base / "run",
            runs_dir=base / "runs",
            log_dir=base / "log",
            config_file=override or base / "config.toml",
        )
    import platformdirs  # only without a PILOTHOUSE_HOME; a CLI start pays it otherwise

    dirs = platformdirs.PlatformDirs(APP, appauthor=False)
    # Without XDG_RUNTIME_DIR (root, cron, some SSH set-ups) platformdirs falls back to a
    # shared /tmp path; keep the socket folder in the user's own state folder instead.
    if os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(dirs.user_runtime_dir)
    else:
        runtime = Path(dirs.user_state_dir) / "run"
    state = Path(dirs.user_state_dir)
    return Paths(
        data_dir=Path(dirs.user_data_dir),
        runtime_dir=runtime,
        runs_dir=state / "runs",
        log_dir=Path(dirs.user_log_dir),
        config_file=override or Path(dirs.user_config_dir) / "config.toml",
    )
