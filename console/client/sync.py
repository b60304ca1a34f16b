"""The blocking side of the operator client, and what both sides share: opening operator.sock
(starting the daemon detached when nobody answers), reading an answer, the error a person sees.
"""

from __future__ import annotations

import _socket
import itertools
import os
import sys
import time

from console import wire

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from console.paths import Paths

START_TIMEOUT_S = 20.0
# An answer this late is said on a terminal, once: a daemon that is stopped (SIGSTOP, a
# suspended VM) or stuck takes connections and never answers, and the command looked hung.
SLOW_ANSWER_S = 10.0


class ClientError(Exception):
    """An error response, or a daemon that cannot be reached. Carries what a person needs."""

    def __init__(self, code: str, message: str, hint: str = "", data: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.data = code, message, hint, data or {}

    @classmethod
    def from_wire(cls, err: dict[str, Any]) -> ClientError:
        return cls(err.get("code", "error"), err.get("message", "unknown error"),
                   err.get("hint", ""), err.get("data"))


def outcome(msg: dict[str, Any]) -> Any:
    """A response's result, or its error raised as a ClientError (both clients read answers so)."""
    if not msg.get("ok"):
        raise ClientError.from_wire(msg.get("error", {}))
    return msg.get("result")


def closed(paths: Paths | None = None) -> ClientError:
    return ClientError("disconnected", "the daemon closed the connection",
                       f"see {paths.text('daemon_log')}" if paths is not None else "")


def open_socket(path: str | Path) -> _socket.socket:
    # The C socket type itself: the `socket` module builds its enums at import, a couple of
    # milliseconds of every CLI start, for nothing a unix stream client needs.
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError:
        sock.close()
        raise
    return sock


def _package_root() -> str | None:
    """The folder holding this package when only the current folder (sys.path's '' or the
    folder itself) reaches it, as in a checkout run in place; None when it is installed."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    here = os.getcwd()
    if any(p and os.path.abspath(p) == root and os.path.abspath(p) != here for p in sys.path):
        return None
    return root


def start_daemon(paths: Paths, config_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `pilothouse daemon` detached (own session), logging to the daemon log."""
    import subprocess  # only when no daemon answers: most commands never start one

    paths.ensure()
    env = dict(os.environ)
    if config_file is not None:
        env["PILOTHOUSE_CONFIG"] = os.path.abspath(config_file)  # the daemon starts in /
    if (root := _package_root()) is not None:  # found only through the current folder
        env["PYTHONPATH"] = os.pathsep.join(x for x in (env.get("PYTHONPATH", ""), root) if x)
    log = open(paths.text("daemon_log"), "ab")  # noqa: SIM115 - handed to the child
    try:
        # -P, in /: `-m` would put the current folder (a workspace an agent wrote) first on
        # the daemon's sys.path, and its modules ran as the person at the start (review h138).
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "console", "daemon"], cwd="/",
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    finally:
        log.close()


def _log_size(paths: Paths) -> int:
    try:
        return os.stat(paths.text("daemon_log")).st_size
    except OSError:
        return 0


def _log_tail(paths: Paths, since: int = 0, lines: int = 8) -> str:
    """The log's last lines written after offset `since` (this start's, not an earlier
    failure's), reading at most its last 64 KiB."""
    try:
        with open(paths.text("daemon_log"), "rb") as log:
            end = log.seek(0, os.SEEK_END)
            log.seek(max(since, end - 65536))
            text = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def unusable_home(path: str, exc: OSError) -> ClientError:
    return ClientError(
        "bad-home", f"cannot use {path}: {exc.strerror or exc}",
        "PILOTHOUSE_HOME (else the XDG folders) must name a folder you may write, with a path "
        "short enough for a socket in it (operator.sock's whole path under 108 bytes)")


def not_utf8(paths: Paths, config_file: Path | None = None) -> ClientError | None:
    """A place that is not UTF-8 text (a Latin-1 home folder): a daemon there could not answer,
    its answers (JSON, UTF-8) name its files. None when every place is UTF-8."""
    places = [(paths.text(name), "PILOTHOUSE_HOME (else the XDG folders)")
              for name in ("data_dir", "runtime_dir", "runs_dir", "log_dir")]
    places.append((os.fspath(config_file) if config_file is not None else
                   paths.text("config_file"), "PILOTHOUSE_CONFIG (or --config)"))
    for text, named in places:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return ClientError("bad-home", f"{text} is not UTF-8 text, and the daemon names its "
                               "files in its answers, which are UTF-8",
                               f"set {named} to a path that is UTF-8 text")
    return None


def connect(paths: Paths, *, autostart: bool = True, config_file: Path | None = None) -> _socket.socket:
    """A connected operator.sock; with autostart, the daemon is started when nobody answers."""
    if (problem := not_utf8(paths, config_file)) is not None:
        raise problem
    sock_path = paths.text("operator_sock")
    if (problem := _open_to_others(paths)) is not None:
        raise problem
    try:
        return open_socket(sock_path)
    except PermissionError:
        raise ClientError(
            "not-allowed", f"permission denied on {sock_path}",
            "this daemon belongs to another user; ask them to add you to its [team] group",
        ) from None
    except (FileNotFoundError, ConnectionRefusedError):
        if not autostart:
            raise ClientError("no-daemon", "the Pilothouse daemon is not running",
                              "start it with: pilothouse daemon (or run any command)") from None
    except OSError as exc:  # a home that is a file, a path too long for a socket (108 bytes)
        raise unusable_home(sock_path, exc) from None
    since = _log_size(paths)
    try:
        proc = start_daemon(paths, config_file)
    except OSError as exc:  # its folders cannot be made (a read-only place, one under a file)
        raise unusable_home(exc.filename or sock_path, exc) from None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            return open_socket(sock_path)
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        code = proc.poll()
        if code is not None and code != 3:  # 3: another daemon won the race; keep trying
            raise ClientError(
                "daemon-failed", f"the daemon exited at start (code {code})",
                f"its log says:\n{_log_tail(paths, since)}",
            )
        time.sleep(0.05)
    raise ClientError("daemon-timeout", f"the daemon did not answer within {START_TIMEOUT_S:.0f}s",
                      f"see {paths.text('daemon_log')}")


def _open_to_others(paths: Paths) -> ClientError | None:
    """Another user who may write a folder on the way to operator.sock could have put a socket
    of their own there: it would list what it likes as pending and hear every decision and
    every key `pilothouse run` sends (review h164). Nothing is sent through such a folder."""
    from console.home_trust import OPEN_HOME_HINT, open_to_others

    try:
        why = open_to_others(paths.text("runtime_dir"), its_owner=True)
    except OSError:  # a folder this user cannot look at: connecting says what is wrong
        return None
    if why is None:
        return None
    return ClientError("bad-home", f"not connecting to {paths.text('operator_sock')}: {why}",
                       OPEN_HOME_HINT)


class Client:
    """Blocking client: one request at a time on one connection."""

    def __init__(self, paths: Paths, *, autostart: bool = True, config_file: Path | None = None) -> None:
        self.paths = paths
        self.sock = connect(paths, autostart=autostart, config_file=config_file)
        self.file = open(self.sock.fileno(), "rb", closefd=False)  # noqa: SIM115 - closed in close()
        self._ids = itertools.count(1)

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, op: str, args: dict[str, Any]) -> int:
        req_id = next(self._ids)
        try:
            self.sock.sendall(wire.encode(wire.request(req_id, op, args)))
        except (BrokenPipeError, ConnectionResetError):
            raise closed(self.paths) from None
        return req_id

    def _read(self) -> dict[str, Any]:
        try:
            line = self.file.readline(wire.OPERATOR_MAX_LINE + 1)
        except ConnectionResetError:  # the daemon went away with our request unread
            raise closed(self.paths) from None
        if not line:
            raise closed(self.paths)
        return wire.decode(line)

    def call(self, op: str, **args: Any) -> Any:
        """One request and its answer. A stream (`stream`) may rightly be quiet for long; an
        answer is not, so a late one is said (SlowAnswerNotice) while the call goes on waiting."""
        result = None
        with SlowAnswerNotice(op, self.paths):
            for kind, payload in self.stream(op, **args):
                if kind == "result":
                    result = payload
        return result

    def stream(self, op: str, **args: Any) -> Iterator[tuple[str, Any]]:
        """Yields ("event", event) for streamed events, then ("result", result)."""
        req_id = self._send(op, args)
        while True:
            msg = self._read()
            if "event" in msg:
                yield "event", msg["event"]
                continue
            if msg.get("id") not in (req_id, None):
                continue
            yield "result", outcome(msg)
            return


class SlowAnswerNotice:
    """While a call waits: after SLOW_ANSWER_S, one line on stderr when it is a terminal, saying
    what is awaited and what to look at. A timer signal, so the read itself is left as it is
    (the kernel restarts it); only in the main thread, where Python runs signal handlers."""

    def __init__(self, op: str, paths: Paths) -> None:
        self.op, self.paths, self.old, self.armed = op, paths, None, False

    def __enter__(self) -> SlowAnswerNotice:
        if not sys.stderr.isatty():
            return self
        import _signal

        try:
            self.old = _signal.signal(_signal.SIGALRM, self._say)
        except ValueError:  # not the main thread
            return self
        _signal.setitimer(_signal.ITIMER_REAL, SLOW_ANSWER_S)
        self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.armed:
            import _signal

            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, _signal.SIG_DFL if self.old is None else self.old)

    def _say(self, *_: object) -> None:
        sys.stderr.write(
            f"pilothouse: still waiting for the daemon to answer {self.op} "
            f"({SLOW_ANSWER_S:g} s so far). It may be busy; if it is stopped or stuck, see "
            f"{self.paths.text('daemon_log')} (ctrl-c stops waiting)\n")
        sys.stderr.flush()
