"""Commands declared with decorators, parsed by the standard library's argparse.

A command is a function decorated with @command (or @group), its options and arguments declared
above it with @option and @argument; @pass_obj hands it the object its group's setup made (the
CLI's Context). A group dispatches on its first word and builds only the parser of the command
named, so `pilothouse ps --json` builds one small parser and imports one command module.

Why not click: importing it costs about as much as starting Python (issue 17). argparse costs a
fraction and is imported only to parse a command's words (not for `--version`, `--help`).

Usage errors (an unknown option, a missing argument, a bad value) print one line that says
what went wrong and where to look (`see pilothouse ps --help`) and exit 2, never a traceback."""

from __future__ import annotations

import os
import sys

from console.cli.output import failure_for_scripts, failures_as_json, interrupted
from console.cli.plain_words import NOT_GIVEN, dash_value_said, read_plainly

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, NoReturn

USAGE_EXIT = 2
HELP_NAMES = ("-h", "--help")


class UsageError(Exception):
    """The words do not make a command: exit 2 with one line that says where to look. `prog`
    (the words naming the command) is filled in by the group that ran the command."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.message, self.prog = message, prog

    def __str__(self) -> str:
        if self.prog is None:
            return self.message
        return f"{self.prog}: {self.message}; see {self.prog} --help"


class BadParameter(UsageError):
    """A value the command itself refuses once parsed (a duration it cannot read, ...)."""

    def __init__(self, message: str, param_hint: str = "") -> None:
        super().__init__(f"invalid value for {param_hint}: {message}" if param_hint else message)


# -- parameters --------------------------------------------------------------------------------

class Param:
    """One option or argument. `then(obj, value)` runs once parsed; with expose=False the value
    goes only there, not to the command's function (how --json reaches the Context)."""

    def __init__(self, decls: Sequence[str], *, help: str | None = None,
                 metavar: str | None = None, default: Any = None, type: Any = None,
                 nargs: str | None = None, required: bool = False, is_flag: bool = False,
                 show_default: bool = False, expose: bool = True,
                 then: Callable[[Any, Any], None] | None = None) -> None:
        self.flags = [d for d in decls if d.startswith("-")]
        names = [d for d in decls if not d.startswith("-")]
        longest = max(self.flags, key=len) if self.flags else ""
        self.dest = names[0] if names else longest.lstrip("-").replace("-", "_")
        self.help, self.metavar, self.default, self.type = help, metavar, default, type
        self.nargs, self.required, self.is_flag = nargs, required, is_flag
        self.show_default, self.expose, self.then = show_default, expose, then

    @property
    def takes_value(self) -> bool:
        return not self.is_flag

    def add_to(self, parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
        """optional: an argument that the words after `--` may fill (run -- PROFILE CMD...,
        logs -- -x) may be missing before the `--` (then it is NOT_GIVEN)."""
        from console.cli.value_types import Choice  # with argparse: not for `ps --json`

        kw: dict[str, Any] = {}
        text = (self.help or "").replace("%", "%%")
        if self.show_default and self.default is not None:
            text = f"{text} [default: {self.default}]".strip()
        if self.flags:
            kw |= {"dest": self.dest, "help": text or None}
            if self.is_flag:
                parser.add_argument(*self.flags, action="store_true", **kw)
                return
            kw["required"] = self.required
        elif self.help:
            kw["help"] = text
        if isinstance(self.type, Choice):
            kw["choices"] = self.type.values
        elif self.type is not None:
            kw["type"] = self.type
        if self.metavar or not self.flags:
            kw["metavar"] = self.metavar or self.dest.upper()
        if optional and not self.flags:
            kw["nargs"] = "*" if self.nargs in ("*", "+") else "?"
        elif self.nargs is not None:
            kw["nargs"] = self.nargs
        kw["default"] = NOT_GIVEN if optional and not self.flags else self.default
        parser.add_argument(*(self.flags or [self.dest]), **kw)

    def convert(self, word: str) -> Any:
        """A word after `--` as argparse would have taken it for this argument."""
        from console.cli.value_types import Choice

        name = self.metavar or self.dest.upper()
        if isinstance(self.type, Choice):
            if word not in self.type.values:
                raise UsageError(f"argument {name}: invalid choice: {word!r}")
            return word
        if self.type is None:
            return word
        try:
            return self.type(word)
        except (TypeError, ValueError):
            kind = getattr(self.type, "__name__", "")
            raise UsageError(f"argument {name}: invalid {kind} value: {word!r}") from None
        except Exception as exc:
            # A type's refusal imports argparse to make it (value_types): a word that is fine
            # does not pay for the import, so argparse is looked for only now.
            argparse = sys.modules.get("argparse")
            if argparse is not None and isinstance(exc, argparse.ArgumentTypeError):
                raise UsageError(f"argument {name}: {exc}") from None
            raise


def _params(fn: Any) -> list[Param]:
    if not hasattr(fn, "cli_params"):
        fn.cli_params = []
    return fn.cli_params


def option(*decls: str, **kw: Any) -> Callable[[Any], Any]:
    """`@option("--run", "run_id", metavar="ID", help=...)`: the names with dashes are the
    option's, a bare name is the function's keyword (else the longest name, dashes as _)."""
    def decorate(fn: Any) -> Any:
        _params(fn).insert(0, Param(decls, **kw))
        return fn
    return decorate


def argument(name: str, **kw: Any) -> Callable[[Any], Any]:
    """`@argument("run_id", metavar="RUN")`; nargs as argparse reads it: "?", "*" or "+"."""
    return option(name, **kw)


def quick_exit(fn: Any) -> Any:
    """The command leaves nothing behind once it returns (no thread, no open file, no exit
    handler): the installed program ends right after flushing what it wrote (Group.script)."""
    fn.cli_quick_exit = True
    return fn


def pass_obj(fn: Any) -> Any:
    """The function takes its group's object (the Context) first."""
    fn.cli_pass_obj = True
    return fn


# -- commands and groups ----------------------------------------------------------------------

def _cleandoc(doc: str | None) -> str:
    """A docstring without its indentation (inspect.cleandoc's job; inspect costs ms to import)."""
    if not (lines := (doc or "").expandtabs().strip().splitlines()):
        return ""
    rest = [line for line in lines[1:] if line.strip()]
    indent = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    return "\n".join([lines[0].strip(), *(line[indent:].rstrip() for line in lines[1:])])


class Command:
    def __init__(self, name: str, callback: Callable[..., Any]) -> None:
        self.name, self.callback = name, callback
        self.params: list[Param] = list(getattr(callback, "cli_params", []))
        self.pass_obj = bool(getattr(callback, "cli_pass_obj", False))
        self.quick_exit = bool(getattr(callback, "cli_quick_exit", False))
        self.doc = _cleandoc(callback.__doc__)

    @property
    def short_help(self) -> str:
        """The first sentence of the docstring: the line `--help` of the group lists."""
        first = " ".join(self.doc.split("\n\n", 1)[0].split())
        end = first.find(". ")
        return first if end < 0 else first[: end + 1]

    def parser(self, prog: str, *, tail_given: bool = False) -> argparse.ArgumentParser:
        parser = new_parser(prog, self.doc)
        for param in self.params:
            param.add_to(parser, optional=tail_given)
        return parser

    def run(self, argv: list[str], obj: Any, prog: str) -> Any:
        tail: list[str] | None = None
        if "--" in argv:
            # Everything after `--` is arguments, options and `--` included: the ones not given
            # before it, then the variadic one (argparse's intermixed parse would drop them).
            cut = argv.index("--")
            argv, tail = argv[:cut], argv[cut + 1:]
        values = self.read_plainly(argv, tail_given=tail is not None)
        if values is None:
            parser = self.parser(prog, tail_given=tail is not None)
            values = vars(parser.parse_intermixed_args(argv))
        if tail is not None:
            self.fill(values, tail)
        kwargs = {}
        for param in self.params:
            value = values.get(param.dest)
            if param.then is not None:
                param.then(obj, value)
            if param.expose:
                kwargs[param.dest] = value
        return self.invoke(obj, **kwargs)

    def read_plainly(self, argv: list[str], *, tail_given: bool = False) -> dict[str, Any] | None:
        """argparse's values for plain words without argparse (console.cli.plain_words)."""
        return read_plainly(self.params, argv, tail_given=tail_given)

    def fill(self, values: dict[str, Any], tail: list[str]) -> None:
        """The arguments not given before `--` from the words after it, in order."""
        rest, missing = list(tail), []
        for param in (p for p in self.params if not p.flags):
            value = values.get(param.dest, NOT_GIVEN)
            if param.nargs in ("*", "+"):
                got = [*(value if isinstance(value, list) else []),
                       *(param.convert(word) for word in rest)]
                rest = []
                if not got and param.nargs == "+":
                    missing.append(param.metavar or param.dest.upper())
                values[param.dest] = got if got or param.default is None else param.default
            elif value is NOT_GIVEN:
                if rest:
                    values[param.dest] = param.convert(rest.pop(0))
                elif param.nargs == "?":
                    values[param.dest] = param.default
                else:
                    missing.append(param.metavar or param.dest.upper())
        if missing:
            raise UsageError(f"the following arguments are required: {', '.join(missing)}")
        if rest:
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}")

    def invoke(self, obj: Any, **kwargs: Any) -> Any:
        return self.callback(*((obj,) if self.pass_obj else ()), **kwargs)


class Group(Command):
    """Names its commands: the first word picks one, the rest are that command's. The group's
    own options (before the command's name) go to setup(), whose result the commands are handed;
    with alone=True the group's function runs when no command is named."""

    def __init__(self, name: str, callback: Callable[..., Any], *,
                 commands: Mapping[str, Command] | None = None, alone: bool = False,
                 setup: Callable[..., Any] | None = None, version: str | None = None) -> None:
        super().__init__(name, callback)
        self.commands: Any = {} if commands is None else commands
        self.alone, self.setup, self.version = alone, setup, version
        self.done_quickly = False  # what ran may end without the interpreter's teardown

    def command(self, name: str | None = None) -> Callable[[Callable[..., Any]], Command]:
        def decorate(fn: Callable[..., Any]) -> Command:
            found = Command(name or fn.__name__.replace("_", "-"), fn)
            self.commands[found.name] = found
            return found
        return decorate

    def __call__(self, args: list[str] | None = None, prog_name: str | None = None) -> NoReturn:
        """The program: run the command the words name, then exit (always by SystemExit)."""
        prog = prog_name or self.name
        for name in ("stdin", "stdout", "stderr"):  # started with it closed (`>&-`): Python
            if getattr(sys, name) is None:  # leaves None there, which no command should check for
                setattr(sys, name, open(os.devnull, "r" if name == "stdin" else "w"))  # noqa: SIM115 - the process's own
        # --json: failures as JSON too, usage errors included (set or reset for these words)
        failures_as_json(words := sys.argv[1:] if args is None else list(args))
        try:
            try:
                self.run(words, None, prog)
            finally:  # a full device is said here, once: at teardown it was a traceback
                sys.stdout.flush()
        except UsageError as exc:  # its words may hold an agent's escapes, of any size
            from console.cli.output import say_usage_error

            say_usage_error(exc, dash_value_said(exc.message, words), USAGE_EXIT)
        except KeyboardInterrupt:  # before a command's own @friendly (which says it alike) ran
            interrupted()
        except BrokenPipeError:
            # The reader went away (`| head`): stop, and leave nothing for the flush at exit
            # to fail on (what the Python docs advise for SIGPIPE).
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())
            except (AttributeError, OSError, ValueError):
                pass
            sys.exit(1)
        except OSError as exc:  # --help, --version or a command without @friendly
            from console.cli.output import could_not_write

            could_not_write(exc)
        except Exception as exc:  # a bug: its traceback for a person, an object for a script
            failure_for_scripts("internal", f"pilothouse failed: {type(exc).__name__}: {exc}",
                                "a bug in pilothouse: report it with the traceback on stderr")
            raise
        sys.exit(0)

    def script(self) -> NoReturn:
        """The installed program ([project.scripts] in pyproject.toml): the group called on
        sys.argv, except that after a @quick_exit command (or --help, --version) the process
        ends once its output is flushed, without the interpreter's teardown. Clearing every
        module a command loaded took 2-8 ms of a 30 ms `ps --json` (issue 17). Anything still
        running in another thread gets the ordinary exit. Tests call the group itself."""
        if blocked := _block_output():
            import atexit  # after other threads end (they may still write), before the last flush

            atexit.register(_hand_back, blocked)
        try:
            self()
        except SystemExit as done:
            if not self.done_quickly or _other_threads():
                raise
            _hand_back(blocked)
            _exit_now(done.code)

    def split_options(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """The group's own options (before the command's name) and the rest."""
        takes_value = {f for p in self.params if p.takes_value for f in p.flags}
        i = 0
        while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
            if argv[i] == "--":
                return argv[:i], argv[i + 1:]
            i += 2 if argv[i] in takes_value else 1
        return argv[:i], argv[i:]

    def run(self, argv: list[str], obj: Any, prog: str) -> Any:
        own, rest = self.split_options(argv)
        # --help and --version first, whatever else the words say (no parser is built for them).
        if any(word in HELP_NAMES for word in own):
            self.print_help(prog)
            self.done_quickly = True
            sys.exit(0)
        if self.version and "--version" in own:
            sys.stdout.write(f"{self.name}, version {self.version}\n")
            self.done_quickly = True
            sys.exit(0)
        values = {p.dest: p.default for p in self.params}
        if own:
            try:
                parsed = self.read_plainly(own) or vars(self.parser(prog).parse_args(own))
            except UsageError as exc:
                exc.prog = prog
                raise
            values = {dest: parsed[dest] for dest in values}
        if self.setup is not None:
            obj = self.setup(**values)
        if not rest:
            if not self.alone:
                raise UsageError(f"name a command ({', '.join(sorted(self.commands))})", prog)
            return self.invoke(obj)
        name, words = rest[0], rest[1:]
        if name not in self.commands:
            raise UsageError(f"no command {name!r}{_did_you_mean(name, self.commands)}", prog)
        chosen = self.commands[name]
        try:
            return chosen.run(words, obj, f"{prog} {name}")
        except UsageError as exc:
            if exc.prog is None:
                exc.prog = f"{prog} {name}"
            raise
        finally:
            self.done_quickly = chosen.quick_exit

    def parser(self, prog: str, *, tail_given: bool = False) -> argparse.ArgumentParser:
        parser = super().parser(prog)
        if self.version:
            parser.add_argument("--version", action="store_true",
                                help="show the version and exit")
        return parser

    def print_help(self, prog: str) -> None:
        parser = self.parser(prog)
        parser.usage = f"{prog} [options] {'[COMMAND]' if self.alone else 'COMMAND'} [ARGS]..."
        width = min(columns(), 100)
        names = sorted(self.commands)
        pad = max(map(len, names), default=0) + 2
        lines = []
        for name in names:
            text = self.commands[name].short_help
            room = max(width - pad - 2, 20)
            if len(text) > room:
                text = text[: room - 3].rsplit(" ", 1)[0] + "..."
            lines.append(f"  {name:<{pad}}{text}")
        parser.epilog = "commands:\n" + "\n".join(lines)
        sys.stdout.write(parser.format_help())


def _block_output() -> list[int]:
    """Standard output and error made blocking (those changed are returned): a parent may hand
    them over non-blocking (node does), and CPython drops what the pipe cannot take at once."""
    changed = []
    for fd in (1, 2):
        try:
            if not os.get_blocking(fd):
                os.set_blocking(fd, True)
                changed.append(fd)
        except OSError:  # closed, or not a file that has the flag
            pass
    return changed


def _hand_back(blocked: list[int]) -> None:
    """Output flushed, then non-blocking again: the flag is on the file shared with the parent,
    and one that set it (node's event loop) relies on it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # said already, or by the exit status
            pass
    for fd in blocked:
        try:
            os.set_blocking(fd, False)
        except OSError:
            pass


def _other_threads() -> bool:
    threading = sys.modules.get("threading")  # never imported: there are none
    return threading is not None and threading.active_count() > 1


def _exit_now(code: object) -> NoReturn:
    """End the process as SystemExit(code) would, minus the teardown: the status it gives,
    standard output and error flushed (a failed flush gives 120, as the interpreter's own)."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    for stream in (sys.stdout, sys.stderr):  # never None here: __call__ saw to that
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120
    os._exit(status & 0xFF)


def _did_you_mean(name: str, names: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Command]:
    def decorate(fn: Callable[..., Any]) -> Command:
        return Command(name or fn.__name__.replace("_", "-"), fn)
    return decorate


def group(name: str | None = None, **kw: Any) -> Callable[[Callable[..., Any]], Group]:
    def decorate(fn: Callable[..., Any]) -> Group:
        return Group(name or fn.__name__.replace("_", "-"), fn, **kw)
    return decorate


def columns() -> int:
    """The terminal's width, as shutil.get_terminal_size gives it, without importing shutil
    (argparse would, for every parser: it costs more than argparse itself)."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser whose errors become a UsageError (one line, said by the group) instead
    of a usage block and an exit. Made here, not at import: `--version` never imports argparse."""
    import argparse

    class OneLineErrors(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(message)

        def print_help(self, file: Any = None) -> None:
            # argparse's own drops an OSError: help to a full device ended 0, having said nothing
            out = file or sys.stdout
            out.write(self.format_help())
            out.flush()

    def formatter(prog: str) -> argparse.HelpFormatter:
        return argparse.RawDescriptionHelpFormatter(prog, width=columns() - 2)

    return OneLineErrors(prog=prog, description=description or None, allow_abbrev=False,
                         formatter_class=formatter)
