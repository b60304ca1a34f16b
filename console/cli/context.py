"""What every command is handed: the Context (paths, --config, --json), and `friendly`, which
turns expected failures into a message and an exit code."""

from __future__ import annotations

import sys
import time

from console.cli.output import could_not_write, dumps, echo, fail, interrupted, visible
from console.cli.parsing import BadParameter, option, pass_obj

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from console.client.sync import Client
    from console.paths import Paths


def _full_path(text: str) -> Path:
    from pathlib import Path  # here, not at the top: pathlib costs every start 5 ms (re, fnmatch)

    return Path(text).expanduser().resolve()


class Context:
    """This invocation's settings. Reads the environment, never writes it: a daemon this
    process starts gets --config through its own environment (console.client.sync)."""

    def __init__(self, config: str | None) -> None:
        self.config_file = _full_path(config) if config else None
        self.json = False  # set by --json (json_option)
        self._paths: Paths | None = None

    @property
    def paths(self) -> Paths:
        """Where state lives; resolved on first use (`--version` and `--help` never need it)."""
        if self._paths is None:
            from console import paths

            found = paths.resolve()
            if self.config_file is not None:
                if not self.config_file.is_file():
                    # A daemon started with it would run on the built-in defaults alone, none
                    # of the rules the person meant in force, and say nothing.
                    fail(f"--config {visible(self.config_file)}: "
                         f"{'not a file' if self.config_file.exists() else 'no such file'}",
                         "check the path (without --config, PILOTHOUSE_CONFIG or the user "
                         "file is read)", code=2, error="bad-config")
                found = found.with_config_file(self.config_file)
            self._paths = found
        return self._paths

    def emit(self, value: Any, render: Callable[[Any], Any], *, one_line: bool = False) -> None:
        """The one place output is chosen: JSON with --json, else render(value) for a person."""
        if self.json:
            echo(dumps(value, one_line=one_line))
        else:
            render(value)

    def emit_for_scripts(self, fetch: Callable[[], Any]) -> None:
        """Output only a script wants (a person has just read it all): with --json, fetch()
        printed as JSON; otherwise nothing, and fetch (a round trip to the daemon) is not run."""
        if self.json:
            echo(dumps(fetch()))

    def say(self, text: str, *, err: bool = False) -> None:
        """A line only a person needs (progress, a preview): nothing with --json."""
        if not self.json:
            echo(text, err=err)

    def client(self, autostart: bool = True) -> Client:
        from console.client.sync import Client

        client = Client(self.paths, autostart=autostart, config_file=self.config_file)
        if self.config_file is not None:
            self._warn_if_daemon_uses_another_file(client)
        return client

    def _warn_if_daemon_uses_another_file(self, client: Client) -> None:
        """--config reaches a daemon only when it starts one: say so when one already ran."""
        from console.client.sync import ClientError

        try:
            theirs = client.call("hello").get("config_file")
        except ClientError:
            return
        if theirs is None or _full_path(theirs) != self.config_file:
            echo(f"pilothouse: warning: --config {self.config_file} is not what the running "
                 f"daemon uses ({theirs or 'built-in profiles only'}); its answers come from "
                 "that. Stop it (`pilothouse daemon stop`) to use this file.", err=True)


# A command that takes the Context as its first parameter (the one main's setup made).
pass_ctx = pass_obj


def _set_json(c: Context, value: bool) -> None:
    if value:
        c.json = True


def json_option(fn: Callable[..., Any] | None = None, *,
                help: str = "Machine-readable output (JSON).") -> Any:
    """--json: machine-readable output through Context.emit (`@json_option` or, with its own
    help text, `@json_option(help=...)`)."""
    decorate = option("--json", is_flag=True, expose=False, then=_set_json, help=help)
    return decorate(fn) if fn is not None else decorate


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a message and an exit code, never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Here, not at the top: `--version` and `--help` never load the client.
        from console.client.sync import ClientError
        from console.paths import UnusableSetting

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            fail(exc.message, exc.hint, error=exc.code, data=exc.data)
        except UnusableSetting as exc:
            fail(exc.message, exc.hint, code=2, error="bad-home")
        except KeyboardInterrupt:
            interrupted()
        except BrokenPipeError:
            sys.exit(0)
        except OSError as exc:
            could_not_write(exc)
        except UnicodeEncodeError as exc:
            # Bytes in an argument that are not UTF-8 (Python keeps them as lone surrogates):
            # neither the daemon's protocol nor the store can carry them.
            fail(f"{ascii(exc.object[exc.start:exc.end])} is not UTF-8 text, so it cannot be "
                 "sent to the daemon or stored",
                 "give arguments and paths as UTF-8 text, and run it from a folder whose "
                 "path is UTF-8", code=2, error="bad-args")
        except Exception as exc:
            # Imported here: the config module is not needed by most commands' start-up.
            from console.config.load import ConfigError

            if isinstance(exc, ConfigError):
                fail(f"bad config: {exc}", "fix the file and try again", code=2, error="bad-config")
            raise

    return _wraps(wrapper, fn)


def _wraps(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """functools.wraps without importing functools (a CLI start pays for every import): the
    name, the docstring and the attributes the decorators above set (cli_params...)."""
    for name in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__"):
        setattr(wrapper, name, getattr(fn, name, None))
    wrapper.__dict__.update(fn.__dict__)
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def since_epoch(value: str | None) -> float | None:
    """A `--since 2h` option as the epoch time it names (None when not given)."""
    if value is None:
        return None
    from console.config.units import parse_duration

    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise BadParameter(str(exc), param_hint="--since") from None
