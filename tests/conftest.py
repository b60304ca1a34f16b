"""Shared fixtures: a real daemon on a temporary PILOTHOUSE_HOME, and the CLI as a subprocess.

`make test` runs test files at the same time (pytest-xdist, -n, one file per worker): a test
looks only at what is its own on the machine (its home, run ids, owner label, a token it wrote),
never at all mounts, volumes, processes or images; a fixed name, address or port belongs to one
file only; and a machine-wide thing two files change (the second accounts) changes under a lock.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
BIN = Path(sys.executable).parent


def have_bwrap() -> bool:
    return shutil.which("bwrap") is not None


needs_bwrap = pytest.mark.skipif(not have_bwrap(), reason="bubblewrap is not installed (apt-get install bubblewrap)")


T = TypeVar("T")


# -- accounts ----------------------------------------------------------------------------------
# The tests' second users and groups are made on first use and shared by files that run in
# parallel workers (make test: pytest -n): one worker at a time checks and makes them, so two
# never race to `useradd` the same name (the loser failed "already exists").

@contextmanager
def machine_locked(name: str) -> Iterator[None]:
    """One test process at a time, on this machine, holds `name` (a file lock in /tmp)."""
    import fcntl

    fd = os.open(f"/tmp/pilothouse-tests-{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def accounts_locked() -> AbstractContextManager[None]:
    return machine_locked("accounts")


def ensure_group(group: str) -> None:
    with accounts_locked():
        subprocess.run(["groupadd", "-f", group], check=True, capture_output=True)


def ensure_user(user: str, *useradd_args: str) -> None:
    """Make the account `user` (useradd USERADD_ARGS... USER) unless it is there."""
    with accounts_locked():
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", *useradd_args, user], check=True, capture_output=True)


def remove_accounts(users: tuple[str, ...], groups: tuple[str, ...] = ()) -> None:
    with accounts_locked():
        for user in users:
            subprocess.run(["userdel", user], capture_output=True)
        for group in groups:
            subprocess.run(["groupdel", group], capture_output=True)




def read_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0,
               every: float = 0.1) -> T:
    """`read()` once `done` holds for what it read, or as it reads when `timeout` has passed:
    the test's assertions then say what did not happen, instead of a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(every)


@dataclass
class Daemon:
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    # Runs in the daemon's process before it starts (a lower fd limit, a mount namespace).
    preexec: Callable[[], None] | None = None

    @property
    def sock(self) -> Path:
        return self.home / "run" / "operator.sock"

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.home / "daemon-test.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console", "daemon"], env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=self.preexec,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log()}")
            if self.sock.exists() and self.answering_pid() == self.proc.pid:
                return
            time.sleep(0.01)  # hundreds of tests start a daemon: each waited ~25 ms more at 0.05
        raise RuntimeError(f"daemon did not start: {self.log()}")

    def answering_pid(self) -> int | None:
        """The pid of the daemon answering on operator.sock, asked without starting one: a
        readiness check through the CLI (`status` starts a daemon when none answers) raced
        this fixture's own daemon, and the one that took the lock was left running."""
        from console.client.sync import Client, ClientError
        from console.paths import resolve

        try:
            with Client(resolve(self.home), autostart=False) as client:
                return int(client.call("hello")["pid"])
        except (ClientError, OSError, ValueError):
            return None

    def log(self) -> str:
        try:
            return (self.home / "daemon-test.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / "pilothouse"), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, input=input, cwd=cwd,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pilothouse {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\ndaemon log: {self.log()}"
            )
        return result


def daemon_with_sitecustomize(home: Path, env: dict[str, str], folder: Path, code: str,
                              config: str) -> Daemon:
    """A real daemon (not started) whose Python runs `code` as its sitecustomize, to hold a
    race's window open every time, with `config` as its config file."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    env = {**env, "PYTHONPATH": str(folder)}
    Path(env["PILOTHOUSE_CONFIG"]).write_text(config)
    return Daemon(home, env)


@contextmanager
def history_writer(home: Path) -> Iterator[object]:
    """The store writer of a daemon's history at `home`, before that daemon starts: what it
    records there is the history the daemon finds (as a busy daemon would have left it)."""
    from console import paths as paths_mod
    from console.daemon.storage import witness_file
    from store import StoreWriter, load_or_create_key

    old = os.environ.get("PILOTHOUSE_HOME")
    os.environ["PILOTHOUSE_HOME"] = str(home)
    try:
        paths = paths_mod.resolve()
    finally:
        if old is None:
            os.environ.pop("PILOTHOUSE_HOME")
        else:
            os.environ["PILOTHOUSE_HOME"] = old
    paths.ensure()
    w = StoreWriter(paths.db_file, load_or_create_key(paths.key_file),
                    witness=witness_file(paths)).start()
    try:
        yield w
        w.flush()
    finally:
        w.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "ph-home"
    h.mkdir()
    return h


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.txt").write_text("a workspace\n")
    return ws


@pytest.fixture
def daemon_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    env["PILOTHOUSE_CONFIG"] = str(home / "config.toml")
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.fixture
def daemon(home: Path, daemon_env: dict[str, str]) -> Iterator[Daemon]:
    d = Daemon(home, daemon_env)
    d.start()
    yield d
    d.stop()


# -- run cgroups the suite leaves behind --------------------------------------------------------
# A test that kills its daemon (or whose daemon dies) and never starts it again leaves that
# daemon's run cgroups: only the daemon's next start reconciles them (cgroups.remove_leftovers).
# The session removes them at its end, with the same function, and says which: only those of the
# homes under its own temporary folder (another session's runs on this machine, live ones
# included, are not its to touch: review s30).

def _run_cgroup_owners() -> set[str]:
    """The owner part of every run cgroup (OWNER-RUNID) this process can see."""
    from console.sandbox.cgroups import Limiter

    owners: set[str] = set()
    for root in Limiter.detect().run_parents():
        if root.is_dir():
            for d in root.iterdir():
                owner, dash, _run_id = d.name.partition("-")
                if dash and d.is_dir():
                    owners.add(owner)
    return owners


def _owners_under(base: Path, depth: int = 4) -> set[str]:
    """Owner keys of the runs folders (HOME/runs) within `depth` levels under `base`."""
    from console.sandbox.base import owner_key

    owners: set[str] = set()
    for root, dirs, _files in os.walk(base):
        if "runs" in dirs:
            owners.add(owner_key(Path(root) / "runs"))
        if len(Path(root).relative_to(base).parts) >= depth:
            dirs[:] = []
    return owners


@pytest.fixture(scope="session", autouse=True)
def _remove_left_run_cgroups(request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    import asyncio

    from console.sandbox.cgroups import Limiter, remove_leftovers

    owners = _run_cgroup_owners() & _owners_under(tmp_path_factory.getbasetemp())
    limiter, removed = Limiter.detect(), []
    for owner in sorted(owners):
        removed += [f"{owner}-{run_id}"
                    for run_id in asyncio.run(remove_leftovers(limiter, owner, set()))]
    request.config.stash[_CGROUPS_REMOVED] = removed
    # Under pytest-xdist (make test: -n) this runs in each worker, for the homes under its own
    # temporary folder; the controller prints the summary, so the worker hands it the list.
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_CGROUPS_REMOVED_KEY] = removed


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist: a worker finished; keep the run cgroups it removed for the summary."""
    removed = getattr(node, "workeroutput", {}).get(_CGROUPS_REMOVED_KEY, [])
    config = node.config  # type: ignore[attr-defined]
    config.stash[_CGROUPS_REMOVED] = config.stash.get(_CGROUPS_REMOVED, []) + removed


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    removed = config.stash.get(_CGROUPS_REMOVED, [])
    if removed:
        terminalreporter.write_line(
            f"pilothouse: removed {len(removed)} run cgroup(s) the tests left behind: "
            + ", ".join(removed))


_CGROUPS_REMOVED = pytest.StashKey[list[str]]()
_CGROUPS_REMOVED_KEY = "pilothouse_run_cgroups_removed"
