"""How commands print: JSON for scripts, tables through rich for people, and the one way an
expected failure ends a command (what happened, why, what to do; never a traceback).

rich is imported only when a table is printed (`--json` and `--version` never load it); JSON
is written by console.wire, without the json package.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, NoReturn, TextIO


def echo(text: Any = "", *, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed at once: a script reading `gpu --watch --json`
    line by line, or a person watching `run --wait`, sees each line as it is written."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # started with it closed (`>&-`): nothing to write to
        return
    stream.write(f"{text}\n")
    stream.flush()


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; anything but y/yes (end of input included) is no."""
    sys.stdout.write(f"{question} [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        sys.stdout.write("\n")
    return answer.strip().lower() in ("y", "yes")


def colour_wanted() -> bool:
    """A run's colours pass to stdout: a terminal, and NO_COLOR not set (no-color.org: set and
    not empty). A pipe, or a person who asked for none, gets plain text."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def clear_screen() -> None:
    """Clear a terminal before the next frame (`gpu --watch`); a pipe gets nothing."""
    if sys.stdout.isatty():
        sys.stdout.write("\x1b[2J\x1b[1;1H")
        sys.stdout.flush()


def dumps(value: Any, *, one_line: bool = False) -> str:
    """What json.dumps(value, indent=2 or None, ensure_ascii=False, default=str) writes,
    without importing json (console.wire), except that every character a person cannot see
    as itself is a \\u escape: JSON escapes only U+0000-U+001F, and `--json` is read on a
    terminal too, where a bidi override or a C1 control from an agent's command would act."""
    from console import wire

    text = wire.dumps(value, compact=False, default=str) if one_line else \
        wire.dumps_indented(value, default=str)
    if text.isascii() and "\x7f" not in text:
        return text
    from console.text import hides

    # Outside strings JSON has ASCII only, so every such character is inside a string, where
    # its escape means the same character.
    return "".join(_json_escape(ch) if ch > "~" and hides(ch) else ch for ch in text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes a character past the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


FAIL_LINE_MAX = 2000  # characters of one line of an error: an argument may be 100k long


def bounded_line(line: str) -> str:
    if len(line) <= FAIL_LINE_MAX:
        return line
    return f"{line[:FAIL_LINE_MAX]}... ({len(line) - FAIL_LINE_MAX} more characters)"


# --json asks for failures as JSON too (docs/protocol.md, "The CLI's --json failures"). Set once,
# from the command's words, before anything can fail (parsing.Group): a usage error comes before
# the command's own options are read.
_json_failures = False


def failures_as_json(words: list[str]) -> None:
    """The program's words (parsing.Group) hold `--json` before any `--`: failures as JSON too."""
    global _json_failures
    _json_failures = "--json" in (words[:words.index("--")] if "--" in words else words)


def fail(message: str, hint: str = "", code: int = 1, *, error: str = "failed",
         data: dict[str, Any] | None = None) -> NoReturn:
    """The one way an expected failure ends a command: what happened, why, what to do, on
    stderr; with --json also, as the last line of stdout, the object the daemon answers a
    failure with, `{"ok": false, "error": {"code": error, "message", "hint"[, "data"]}}`, so a
    script reads the code and the hint without parsing prose. `code` is the exit status.

    Messages and hints often carry the daemon's words: each line is shown `visible`, and
    cut at FAIL_LINE_MAX characters (it quotes what was given, which may be of any size)."""
    first, *more = str(message).splitlines() or [""]
    echo(f"pilothouse: {bounded_line(visible(first))}", err=True)
    for line in more:
        echo(bounded_line(visible(line)), err=True)
    if hint:
        for line in hint.splitlines():
            echo(f"  {bounded_line(visible(line))}", err=True)
    failure_for_scripts(error, message, hint, data)
    sys.exit(code)


def failure_for_scripts(error: str, message: str, hint: str = "",
                        data: dict[str, Any] | None = None) -> None:
    """With --json, the failure as one JSON line on stdout (nothing otherwise). Written after
    the lines on stderr: standard output may be what failed (could_not_write)."""
    if not _json_failures:
        return
    said: dict[str, Any] = {"code": error, "message": _bounded(message), "hint": _bounded(hint)}
    if data:
        said["data"] = data
    try:
        echo(dumps({"ok": False, "error": said}, one_line=True))
    except (OSError, ValueError):  # stdout gone or closed: the exit status and stderr say it
        pass


def _bounded(text: str) -> str:
    return "\n".join(bounded_line(line) for line in str(text).split("\n"))


def interrupted() -> NoReturn:
    """Ctrl-C: exit 130 as a shell gives it, silent for a person (who pressed it); with --json a
    script is told the command did not finish, whatever it printed before."""
    failure_for_scripts("interrupted", "interrupted (SIGINT, Ctrl-C) before the command finished",
                        "the command stopped there: what it printed before this line is all its output")
    sys.exit(130)


def say_usage_error(exc: Any, message: str, status: int) -> NoReturn:
    """Words that make no command (a parsing.UsageError, its message given with the words it
    quotes said plainly): its one line, escaped and bounded; with --json also its object,
    code `bad-args`, the help to look at as its hint."""
    exc.message = message
    sys.stderr.write(f"{bounded_line(visible(exc))}\n")
    failure_for_scripts("bad-args", message, f"see {exc.prog or 'pilothouse'} --help")
    sys.exit(status)


DEVICE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# The output cannot be written at all: a terminal hung up (an SSH link dropped), standard
# output closed or opened for reading only (`1</dev/null`), a file system that fails.
OUTPUT_GONE = (errno.EIO, errno.EBADF, errno.ENXIO, errno.EROFS)


def could_not_write(exc: OSError) -> NoReturn:
    """Where the output goes is full or gone (an OSError of DEVICE_FULL or OUTPUT_GONE; any
    other is raised again): one line, and the status Python gives for output it could not
    write. Saying so may fail the same way (stderr on the same device or terminal)."""
    if exc.errno not in DEVICE_FULL + OUTPUT_GONE:
        raise exc
    hint = ("free space there, or send the output elsewhere" if exc.errno in DEVICE_FULL else
            "send the output to a file or a terminal that can take it")
    try:
        fail(f"could not write {exc.filename or 'the output'}: {exc.strerror}", hint, code=120,
             error="output-failed")
    except OSError:
        sys.exit(120)


def open_output(path: str, newline: str | None = None) -> TextIO:
    """The -o FILE of an export, opened for writing, or a one-line failure saying why. No link
    an agent could have made is followed, as the file or as a folder on the way
    (console.paths): an agent may leave `events.csv -> /etc/shadow`, or `out -> ~/.ssh`, in
    its workspace for a person, or root, to write through. `-o /dev/stdout` still works."""
    from console.paths import LinkOnTheWay, open_output_fd

    try:
        fd = open_output_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        return open(fd, "w", encoding="utf-8", newline=newline)  # noqa: SIM115 - the caller closes it
    except LinkOnTheWay as exc:
        fail(f"cannot write {path}: {exc.link} is a link",
             "give -o the path the link leads to, with no link on the way (a link in a "
             "workspace may be the agent's, leading to a folder of yours)", error="cannot-write")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            fail(f"cannot write {path}: it is a link", "give -o the file itself, not a link "
                 "(a link in a workspace may be the agent's, leading to a file of yours)",
                 error="cannot-write")
        fail(f"cannot write {path}: {exc.strerror or exc}",
             "give -o a file in a folder that exists and that you may write to",
             error="cannot-write")


def visible(text: Any) -> str:
    """Text from the daemon as it may reach a terminal: unchanged when every character is
    printable (text already escaped with console.text.shown stays as it is), else escaped with
    shown, so no escape sequence, bidi override or line separator reaches the terminal. The
    daemon may be a teammate's (another PILOTHOUSE_HOME) and cells carry a sandbox's words."""
    raw = "" if text is None else str(text)
    if raw.isprintable() and raw.isascii():
        return raw
    from console.text import hides, shown

    # Printable is not enough: letters drawn as nothing (U+3164 HANGUL FILLER, variation
    # selectors) are printable, and `curl\u3164x.invalid` read as `curl x.invalid`.
    return raw if raw.isprintable() and not any(map(hides, raw)) else shown(raw)


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> None:
    """Columns under their headers. Cells are plain text (never rich markup: they may
    come from a sandbox) with every character visible (`visible`); a pipe gets whole lines without colour, a terminal its own width."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from console.wrapping import Wrapped

    terminal = sys.stdout.isatty()
    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False,
                 header_style="bold" if terminal else "")
    for header in headers:
        grid.add_column(Text(header), no_wrap=not terminal, overflow="fold")
    for row in rows:
        # Wrapped: a space where a cell breaks is drawn (review h162)
        grid.add_row(*(Wrapped(Text(visible(cell))) for cell in row))
    console = Console(highlight=False, soft_wrap=False, force_terminal=terminal or None,
                      width=None if terminal else 100_000, color_system="auto" if terminal else None)
    with console.capture() as captured:
        console.print(grid)
    for line in captured.get().splitlines():
        echo(line.rstrip())


def labelled(rows: Iterable[tuple[str, list[str]]], indent: int = 2, label_width: int = 12) -> None:
    """Rows of a label and its lines, as `pilothouse approve` shows a request. At a terminal
    each line is wrapped to its width under its label (console.wrapping): a space a break
    takes is drawn `␣`, and where a label has several lines (a diff), each later row of one
    has `⟩` before it, as on the console's card. Left to the
    terminal, the space a line wraps at was a blank cell at the 80th column, which cannot be
    seen: `rm -rf DIR/ ..` read as `rm -rf DIR/..` (review h174). A pipe gets whole lines."""
    rows = list(rows)
    if not sys.stdout.isatty():
        for label, lines in rows:
            for i, line in enumerate(lines or [""]):
                echo(f"{' ' * indent}{label if i == 0 else '':<{label_width}} {line}")
        return
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    from console.wrapping import CONTINUED, Wrapped

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=label_width)
    grid.add_column(overflow="fold")
    for label, lines in rows:
        for i, line in enumerate(lines or [""]):
            grid.add_row(Text(label if i == 0 else ""),
                         Wrapped(Text(line), continued=CONTINUED if len(lines) > 1 else ""))
    console = Console(highlight=False, soft_wrap=False, force_terminal=True, color_system=None)
    with console.capture() as captured:
        console.print(Padding(grid, (0, 0, 0, indent)))
    for line in captured.get().splitlines():
        echo(line.rstrip())
