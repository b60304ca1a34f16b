"""Value types for options and arguments: what argparse calls on each word, a refusal naming
the value and the bound (`--tail x`, `--port 70000`, a file given where a folder is wanted)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def _refused(message: str) -> Exception:
    """argparse's refusal of a value. Imported only then: a word that is fine (`run -w DIR`,
    read without argparse) must not pay for importing it (15 ms of a 40 ms CLI start here)."""
    from argparse import ArgumentTypeError

    return ArgumentTypeError(message)


class Choice:
    def __init__(self, values: Sequence[str]) -> None:
        self.values = list(values)


class Range:
    """A number within bounds (either may be None); int or float."""

    def __init__(self, kind: type, low: float | None = None, high: float | None = None) -> None:
        self.kind, self.low, self.high = kind, low, high
        self.__name__ = kind.__name__  # argparse's "invalid int value: 'x'"

    def __call__(self, text: str) -> Any:
        value = self.kind(text)
        if value != value or value in (float("inf"), float("-inf")):  # NaN passes every bound
            raise _refused(f"{text} is not a finite number")
        if self.kind is int and not -(2**63) <= value < 2**63:  # what the store can hold
            raise _refused(f"{text} is past what a 64-bit integer holds")
        if self.low is not None and value < self.low:
            raise _refused(f"{text} is smaller than the minimum {self.low}")
        if self.high is not None and value > self.high:
            raise _refused(f"{text} is larger than the maximum {self.high}")
        return value


def int_range(low: int | None = None, high: int | None = None) -> Range:
    return Range(int, low, high)


def float_range(low: float | None = None, high: float | None = None) -> Range:
    return Range(float, low, high)


class PathType:
    """A path that need not exist; where it does, it must be the right kind."""

    __name__ = "path"

    def __init__(self, *, file_okay: bool = True, dir_okay: bool = True) -> None:
        self.file_okay, self.dir_okay = file_okay, dir_okay

    def __call__(self, text: str) -> str:
        if not text:  # an unset "$DIR": read as "not given", it would mean the current folder
            raise _refused("an empty path names no file or folder (the current one is .)")
        if not self.file_okay and os.path.isfile(text):
            raise _refused(f"{text!r} is a file (give a folder)")
        if not self.dir_okay and os.path.isdir(text):
            raise _refused(f"{text!r} is a folder (give a file)")
        return text


def path(*, file_okay: bool = True, dir_okay: bool = True) -> PathType:
    return PathType(file_okay=file_okay, dir_okay=dir_okay)
