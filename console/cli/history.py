"""`pilothouse history`, `export`, `audit verify` and `prune`: the recorded history."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from console.cli.context import (
    Context,
    friendly,
    json_option,
    pass_ctx,
    since_epoch,
)
from console.cli.output import dumps, echo, open_output, table, visible
from console.cli.parsing import BadParameter, command, group, option
from console.cli.value_types import Choice, int_range, path
from console.text import clock, controls_shown, cut, neutralise


def _history_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for add in reversed([
        option("--run", "run_id", metavar="ID", help="Only this run."),
        option("--kind", metavar="K", help="Event kind, or a prefix such as net. or approval."),
        option("--search", metavar="TEXT", help="Full-text search."),
        option("--since", metavar="AGE", help="Only newer than AGE, e.g. 2h, 30m, 7d."),
        # A closed set: a misspelt one would match nothing and read as "none of those".
        option("--decision", metavar="D", type=Choice(["allow", "deny", "ask"]),
               help="allow, deny or ask."),
    ]):
        fn = add(fn)
    return fn


def _filter_args(run_id: str | None, kind: str | None, search: str | None, since: str | None,
                 decision: str | None) -> dict[str, Any]:
    return {"run": run_id, "kind": kind, "search": search, "since": since_epoch(since), "decision": decision}


TEXT_MAX = 70  # characters of an event's text in the table; a cut says how much (`--json`: all)


def _show_events(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("no events match")
        return
    table([[str(r["id"]), _time(r["ts"]), r.get("run_id") or "-", r["kind"],
            r.get("actor") or "-", neutralise(cut(r.get("text") or "", TEXT_MAX))] for r in rows],
          ["ID", "TIME", "RUN", "KIND", "BY", "TEXT"])


def _time(ts: Any) -> str:
    """An event's time; a value that is none (an altered file: `audit verify` names the row)
    as it is, not a traceback."""
    try:
        return clock(ts, date=True)
    except (TypeError, ValueError, OverflowError, OSError):
        return neutralise(repr(ts))


@command()
@_history_filters
@option("--limit", type=int_range(1), default=50, show_default=True)
@option("--before", "before_id", type=int_range(1), metavar="ID", help="Only events older than this id "
        "(page on from the last one shown).")
@json_option
@pass_ctx
@friendly
def history(c: Context, run_id: str | None, kind: str | None, search: str | None, since: str | None,
            decision: str | None, limit: int, before_id: int | None) -> None:
    """Search the recorded history, newest first."""
    filters = _filter_args(run_id, kind, search, since, decision)  # a bad --since: before connecting
    with c.client() as client:
        page = client.call("history", limit=limit, before_id=before_id, paged=True, **filters)
    rows = page["rows"]
    c.emit(rows, _show_events)
    if page["more"]:  # fewer than --limit when rows are large (2 MiB an answer): said either way
        echo(f"older events match too: add --before {rows[-1]['id']} for the next page", err=True)


@command()
@option("--format", "fmt", type=Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@_history_filters
@option("--output", "-o", metavar="FILE", type=path(),
        help="Write here instead of stdout.")
@pass_ctx
@friendly
def export(c: Context, fmt: str, run_id: str | None, kind: str | None, search: str | None,
           since: str | None, decision: str | None, output: str | None) -> None:
    """Export events, oldest first, as JSON lines or CSV."""
    import csv

    filters = _filter_args(run_id, kind, search, since, decision)
    out = open_output(output, newline="") if output else sys.stdout
    fields = ["id", "ts", "run_id", "kind", "actor", "text", "data", "hash"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    total = 0
    try:
        with c.client() as client:
            for kind_, payload in client.stream("export", **filters):
                if kind_ != "event" or payload.get("kind") != "export.rows":
                    continue
                for row in payload["rows"]:
                    total += 1
                    # Through output.dumps, as every --json: an agent's bidi override or C1
                    # control stays an escape, also when the export goes to a terminal.
                    if writer:
                        writer.writerow({**row, "text": controls_shown(row.get("text") or ""),
                                         "data": dumps(row.get("data"), one_line=True)})
                    else:
                        out.write(dumps(row, one_line=True) + "\n")
    finally:
        if output:
            out.close()
    if output:
        echo(f"{total} events written to {output}", err=True)


@group()
def audit() -> None:
    """Check the tamper-evident history."""


def _show_verify(result: dict[str, Any]) -> None:
    # The reason quotes names from the file (a row's run id, a planted trigger's name): shown
    # escaped, so an edited file cannot write `ok` over its own BROKEN line.
    reason = visible(result["reason"])
    if result["ok"]:
        echo(f"ok: {result['checked']} events verified ({reason})")
    else:
        echo(f"BROKEN at event {result['first_bad_id']}: {reason} "
             f"({result['checked']} verified before it)")


@audit.command("verify")
@json_option
@pass_ctx
@friendly
def audit_verify(c: Context) -> None:
    """Recompute the hash chain; report the first broken row."""
    with c.client() as client:
        result = client.call("audit.verify")
    c.emit(result, _show_verify)
    sys.exit(0 if result["ok"] else 1)


@command()
@option("--older-than", "older_than", required=True, metavar="AGE", help="e.g. 30d")
@option("--yes", "confirm", is_flag=True, help="Confirm pruning recent history "
        "(younger than [limits] prune_confirm_age, 7 days by default).")
@json_option
@pass_ctx
@friendly
def prune(c: Context, older_than: str, confirm: bool) -> None:
    """Delete history older than AGE; a signed anchor keeps `audit verify` green."""
    from console.config.units import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise BadParameter(str(exc), param_hint="--older-than") from None
    with c.client() as client:
        result = client.call("prune", older_than_s=seconds, confirm=confirm)
    c.emit(result, lambda r: echo(f"pruned {r['pruned']} events"))


COMMANDS = (history, export, audit, prune)
