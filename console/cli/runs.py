"""`pilothouse run`, `ps`, `logs`, `stop`, `profiles` and `demo-workspace`: agents' runs."""

from __future__ import annotations

import os
import sys

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import colour_wanted, echo, fail, table, visible
from console.cli.parsing import BadParameter, argument, command, option, quick_exit
from console.cli.value_types import int_range, path

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from typing import Any

    from console.client.sync import Client


def _show_started(record: dict[str, Any]) -> None:
    echo(record["id"])
    if record.get("unsandboxed"):
        echo("warning: this run is NOT sandboxed (profile says sandbox = \"none\")", err=True)


@command()
@quick_exit
@argument("profile")
@argument("command", nargs="*")
@option("--workspace", "-w", metavar="DIR", type=path(),
        help="Folder the agent works in (default: the profile's, else here).")
@option("--wait", is_flag=True, help="Stream the output and exit with the agent's exit code.")
@json_option
@pass_ctx
@friendly
def run(c: Context, profile: str, command: tuple[str, ...], workspace: str | None, wait: bool) -> None:
    """Start PROFILE in its sandbox. `-- CMD ARGS...` replaces the profile's command."""
    with c.client() as client:
        # The profile's `env` names take their values from this shell, not the daemon's.
        names = next((p.get("env") or [] for p in client.call("profiles") if p["name"] == profile), [])
        record = client.call(
            "run.start", profile=profile, command=list(command) or None,
            workspace=workspace, cwd=os.getcwd(),
            env={n: os.environ[n] for n in names if n in os.environ},
        )
        if not wait:
            c.emit(record, _show_started)
            return
        c.say(f"[pilothouse] run {record['id']} ({record['profile']} in {record['backend']})", err=True)
        try:
            code = follow_output(client, record["id"], quiet=c.json)
        except KeyboardInterrupt:
            # Ctrl-C ends the following, not the run (the daemon's): say so, and how to end it.
            run_id = visible(record["id"])
            echo(f"pilothouse: stopped following run {run_id}; it goes on in the background",
                 err=True)
            echo(f"  `pilothouse logs -f {run_id}` follows it again, "
                 f"`pilothouse stop {run_id}` ends it", err=True)
            raise
        c.emit_for_scripts(lambda: client.call("run.get", run=record["id"]))
    sys.exit(code)


def _shown_lines(payload: dict[str, Any], raw: bool) -> str:
    """A run.output event's lines as printed: controls shown, colour kept where wanted, and an
    agent's line that starts as the daemon's notes do marked as the agent's."""
    if raw:
        return "".join(line + "\n" for line in payload["lines"])
    # Imported at the first line (its unicodedata is a shared library): a run that prints
    # nothing, and `ps --json`, never load it.
    from console.text import as_agents, neutralise

    colour, daemons = colour_wanted(), payload.get("stream") == "system"
    return "".join(neutralise(line if daemons else as_agents(line), colour=colour) + "\n"
                   for line in payload["lines"])


def follow_output(client: Client, run_id: str, *, quiet: bool = False, tail: int = 0,
           raw: bool = False) -> int:
    """Print a run's output until it ends; its exit code as a shell would give it."""
    result: dict[str, Any] = {}
    for kind, payload in client.stream("logs", run=run_id, follow=True, tail=tail):
        if kind == "event" and payload.get("kind") == "run.output" and not quiet:
            out = sys.stdout
            out.write(_shown_lines(payload, raw))
            out.flush()
        elif kind == "event" and payload.get("kind") == "bus.dropped":
            echo(f"[pilothouse] {payload['count']} output events skipped (slow reader)", err=True)
        elif kind == "result":
            result = payload
    say_dropped(result)
    if "exit_code" not in result:
        result = client.call("run.get", run=run_id)
    code = result.get("exit_code")
    state = result.get("state")
    if state in ("lost", "failed") and code is None:
        return 1
    if code is None:
        return 0
    return code if code >= 0 else 128 - code


def _show_runs(runs: list[dict[str, Any]], show_all: bool) -> None:
    from console.text import age

    if not runs:
        echo("no runs" + ("" if show_all else " (ps --all shows ended ones)"))
        return
    rows = []
    for r in runs:
        stats = r.get("stats") or {}
        mem = stats.get("rss_bytes")
        backend = (r.get("backend") or "-") + (" (UNSANDBOXED)" if r.get("backend") == "none" else "")
        rows.append([
            r["id"], r.get("profile") or "-", backend,
            (r.get("state") or "-") + (" (!)" if r.get("warning") else ""), age(r.get("started_at")),
            f"{stats['cpu_percent']:.0f}%" if stats.get("cpu_percent") is not None else "-",
            f"{mem / 2**20:.0f}M" if mem else "-",
            "-" if r.get("exit_code") is None else str(r["exit_code"]),
            " ".join(r.get("command") or [])[:40],
        ])
    table(rows, ["ID", "PROFILE", "BACKEND", "STATE", "AGE", "CPU", "MEM", "EXIT", "COMMAND"])
    for r in runs:  # (!): the row shown is not what the run's recorded events say
        if r.get("warning"):
            echo(f"WARNING (!): {visible(r['warning'])}: the file was edited; the recorded "
                 "events hold the truth (`pilothouse report RUN`, `pilothouse audit verify`)")


@command()
@quick_exit
@option("--all", "-a", "show_all", is_flag=True, help="Include ended runs.")
@option("--limit", type=int_range(1), default=50, show_default=True,
        help="With --all, at most this many ended runs, newest first (the daemon answers at "
        "most its cap, docs/protocol.md).")
@json_option
@pass_ctx
@friendly
def ps(c: Context, show_all: bool, limit: int) -> None:
    """List runs."""
    with c.client() as client:
        runs = client.call("runs.list", all=show_all, limit=limit)
    c.emit(runs, lambda rows: _show_runs(rows, show_all))


@command()
@quick_exit
@argument("run_id", metavar="RUN")
@option("--follow", "-f", is_flag=True, help="Keep printing new output until the run ends.")
@option("--tail", "-n", type=int_range(0), default=0, help="Only the last N lines.")
@option("--search", "-s", metavar="TEXT", help="Only lines matching TEXT (full-text search).")
@option("--raw", is_flag=True, help="The bytes as the run wrote them, terminal control "
        "sequences included (default: only colour passes; other controls are shown, "
        "not obeyed).")
@pass_ctx
@friendly
def logs(c: Context, run_id: str, follow: bool, tail: int, search: str | None, raw: bool) -> None:
    """Print a run's output."""
    if follow and search is not None:  # a search reads the stored lines once
        raise BadParameter("a search reads the output stored so far, once; drop --search to "
                           "follow the run, or --follow to search it", param_hint="--follow")
    with c.client() as client:
        if follow:
            follow_output(client, run_id, tail=tail, raw=raw)
            return
        for kind, payload in client.stream("logs", run=run_id, tail=tail, search=search):
            if kind == "event" and payload.get("kind") == "run.output":
                sys.stdout.write(_shown_lines(payload, raw))
            elif kind == "result":
                sys.stdout.flush()
                say_dropped(payload)
        sys.stdout.flush()


def say_dropped(result: dict[str, Any]) -> None:
    """The output shown has a hole: lines the store never kept (its chained end counts them)."""
    n = result.get("output_dropped")
    if isinstance(n, int) and n > 0:
        lines = "1 output line was" if n == 1 else f"{n} output lines were"
        echo(f"[pilothouse] {lines} dropped (the store's queue was full): the output above is "
             "not all the run printed; the run's record counts them", err=True)


@command()
@quick_exit
@argument("run_id", metavar="RUN")
@option("--kill", is_flag=True, help="SIGKILL at once instead of SIGTERM, then SIGKILL after 2s.")
@json_option
@pass_ctx
@friendly
def stop(c: Context, run_id: str, kill: bool) -> None:
    """Stop a run."""
    with c.client() as client:
        record = client.call("run.stop", run=run_id, kill=kill)
        final = client.call("run.get", run=run_id)
    c.emit({**final, "stop_recorded": record.get("stop_recorded", True)},
           lambda f: echo(f"{record['id']}: {f.get('state')}"))
    if record.get("stop_recorded") is False:  # it stopped: a warning, not a failure
        echo(f"warning: run {record['id']} was stopped, but the history could not record the "
             f"stop ({record.get('unrecorded_because')}); the history cannot be written: see "
             "`pilothouse doctor` for the disk, and the daemon log", err=True)
    elif "stop_recorded" in record and record["stop_recorded"] is None:  # may yet land
        echo(f"warning: run {record['id']} was stopped, but the stop is not confirmed as "
             f"recorded ({record.get('unrecorded_because')}); the daemon log says why the "
             "store is stuck", err=True)


@command()
@quick_exit
@json_option
@pass_ctx
@friendly
def profiles(c: Context) -> None:
    """List the profiles in force."""
    with c.client() as client:
        rows = client.call("profiles")
    c.emit(rows, lambda rows: table(
        [[p["name"], p["sandbox"], " ".join(p["command"])[:40], p["source"]] for p in rows],
        ["PROFILE", "SANDBOX", "COMMAND", "DEFINED AT"]))


@command("demo-workspace")
@argument("path", nargs="?", default="pilothouse-demo", type=path(file_okay=False))
@option("--no-git", is_flag=True, help="Do not make it a git repository.")
def demo_workspace(path: str, no_git: bool) -> None:
    """Write a tiny Python project with a bug and its tests, for `pilothouse run demo`."""
    from console.agents.demo_project import make_demo_workspace

    try:
        root = make_demo_workspace(path, git=not no_git)
    except OSError as exc:  # FileExistsError included: never overwrites other files
        fail(f"cannot write the demo workspace: {exc}", "pick another folder")
    import shlex

    # The path is the person's words: escaped (no escape sequence reaches the terminal), and
    # quoted in the command so it can be pasted as it is.
    echo(visible(os.path.realpath(root)))
    echo(f"next: pilothouse run demo -w {visible(shlex.quote(str(root)))} --wait", err=True)


COMMANDS = (run, ps, logs, stop, profiles, demo_workspace)
