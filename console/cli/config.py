"""`pilothouse reload`: the daemon reads its config file again, validating first."""

from __future__ import annotations

import time
from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo, visible
from console.cli.parsing import command
from console.text import duration

# How a change the daemon took by itself came about, as the reload's answer names it.
_TAKEN_HOW = {"file-change": "when the file changed", "sighup": "on SIGHUP"}


def _show_reload(result: dict[str, Any]) -> None:
    diff, taken = result["diff"], result.get("taken")
    if diff:
        echo(f"reloaded {visible(', '.join(result['files']))}: {len(diff)} change(s)")
    elif taken:  # the watcher (or a SIGHUP) was first: this file is in force, with this change
        diff = taken["diff"]
        how = _TAKEN_HOW.get(taken["cause"], f"({visible(taken['cause'])})")
        echo(f"already in force: taken {how} {_ago(taken['at'])} ago, {len(diff)} change(s) "
             f"(history #{taken['event_id']})")
    else:
        echo("reloaded: no policy change")
    for line in diff:  # a rule's words may be an agent's (a saved profile rule)
        echo(f"  {visible(line)}")


def _ago(ts: float) -> str:
    secs = max(0.0, time.time() - ts)
    return f"{secs:.1f} s" if secs < 60 else duration(secs)


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
