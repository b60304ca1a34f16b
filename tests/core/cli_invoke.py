"""Run the real `pilothouse` entry point in this process, as a shell would, and keep what it
printed and how it exited (for tests that need no subprocess: a --help check, a policy check
against a config file)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass


@dataclass
class Invoked:
    exit_code: int
    stdout: str
    stderr: str
    output: str  # both streams, in the order they were written (what a terminal shows)


class _Tee(io.StringIO):
    """One stream's own copy, and every write also into the shared terminal view."""

    def __init__(self, shared: io.StringIO) -> None:
        super().__init__()
        self.shared = shared

    def write(self, text: str) -> int:
        self.shared.write(text)
        return super().write(text)


def _set_environment(env: Mapping[str, str | None]) -> None:
    """Each name set to its value, or removed where the value is None."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def _environment(env: Mapping[str, str | None]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in env}
    try:
        _set_environment(env)
        yield
    finally:
        _set_environment(before)


def invoke(main: Callable[..., object], args: Sequence[str],
           env: Mapping[str, str | None] | None = None) -> Invoked:
    """main(args) with stdout and stderr captured, stdin empty, `env` set for the call (None
    unsets a name). Exceptions other than SystemExit propagate: a test sees the traceback."""
    terminal = io.StringIO()
    out, err = _Tee(terminal), _Tee(terminal)
    code: int | str | None = 0
    stdin = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        with _environment(env or {}), redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.stdin = stdin
    if isinstance(code, str):  # sys.exit("message"): printed on stderr, exit status 1
        err.write(code + "\n")
        code = 1
    return Invoked(code or 0, out.getvalue(), err.getvalue(), terminal.getvalue())
