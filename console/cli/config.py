"""`pilothouse reload`: the daemon reads its config file again, validating first."""

from __future__ import annotations

from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo, visible
from console.cli.parsing import command


def _show_reload(result: dict[str, Any]) -> None:
    echo(f"reloaded {visible(', '.join(result['files']))}: "
         f"{len(result['diff'])} change(s)" if result["diff"] else "reloaded: no policy change")
    for line in result["diff"]:  # a rule's words may be an agent's (a saved profile rule)
        echo(f"  {visible(line)}")


@command()
@json_option
@pass_ctx
@friendly
def reload(c: Context) -> None:
    """Reload the daemon's config (as SIGHUP and a change of the file do). A bad file is refused
    with file, line and reason, and the policy in force stays."""
    with c.client(autostart=False) as client:
        result = client.call("config.reload")
    c.emit(result, _show_reload)


COMMANDS = (reload,)
