"""`pilothouse`: the console (default), the daemon, and commands for people and scripts.

Every listing command has --json. Expected failures print what happened, why and what to do,
and exit non-zero without a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from console import paths as paths_mod
from console.client.sync import Client, ClientError, dumps
from console.config.units import parse_duration
from console.text import neutralise


class Context:
    def __init__(self, config: str | None) -> None:
        if config:
            os.environ["PILOTHOUSE_CONFIG"] = str(Path(config).expanduser().resolve())
        self.paths = paths_mod.resolve()
        self.config_file = Path(os.environ["PILOTHOUSE_CONFIG"]) if config else None

    def client(self, autostart: bool = True) -> Client:
        client = Client(self.paths, autostart=autostart, config_file=self.config_file)
        if self.config_file is not None:
            self._warn_if_daemon_uses_another_file(client)
        return client

    def _warn_if_daemon_uses_another_file(self, client: Client) -> None:
        """--config reaches a daemon only when it starts one: say so when one already ran."""
        try:
            theirs = client.call("hello").get("config_file")
        except ClientError:
            return
        if theirs is None or Path(theirs).expanduser().resolve() != self.config_file:
            click.echo(f"pilothouse: warning: --config {self.config_file} is not what the running "
                       f"daemon uses ({theirs or 'built-in profiles only'}); its answers come from "
                       "that. Stop it (`pilothouse daemon stop`) to use this file.", err=True)


def fail(message: str, hint: str = "", code: int = 1) -> None:
    click.echo(f"pilothouse: {message}", err=True)
    if hint:
        for line in hint.splitlines():
            click.echo(f"  {line}", err=True)
    sys.exit(code)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into a message and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            fail(exc.message, exc.hint)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(0)
        except Exception as exc:
            # Imported here: the config module is not needed by most commands' start-up.
            from console.config.load import ConfigError

            if isinstance(exc, ConfigError):
                fail(f"bad config: {exc}", "fix the file and try again", code=2)
            raise

    return wrapper


pass_ctx = click.make_pass_decorator(Context)


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(line.rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def since_epoch(value: str | None) -> float | None:
    """A `--since 2h` option as the epoch time it names (None when not given)."""
    if value is None:
        return None
    try:
        return time.time() - parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="FILE", help="Config file (else PILOTHOUSE_CONFIG, else the user file).")
@click.version_option("0.1.0", prog_name="pilothouse")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Pilothouse: a terminal control room for coding agents."""
    ctx.obj = Context(config)
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


# --- console and daemon ------------------------------------------------------------------------


@main.command()
@pass_ctx
@friendly
def tui(c: Context) -> None:
    """Open the console (the default command)."""
    from console.tui.app import run_app

    run_app(c.paths, c.config_file)


@main.group(invoke_without_command=True)
@click.pass_context
def daemon(ctx: click.Context) -> None:
    """Run the daemon in the foreground (for systemd); `daemon stop` stops it."""
    if ctx.invoked_subcommand is None:
        from console.daemon.server import run_foreground

        c: Context = ctx.obj
        sys.exit(run_foreground(c.paths, c.config_file or c.paths.config_file))


@daemon.command("stop")
@pass_ctx
@friendly
def daemon_stop(c: Context) -> None:
    """Stop the daemon: runs are stopped cleanly and the store is flushed."""
    try:
        client = c.client(autostart=False)
    except ClientError as exc:
        if exc.code == "no-daemon":
            click.echo("the daemon is not running")
            return
        raise
    with client:
        pid = client.call("hello")["pid"]
        client.call("daemon.stop")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    click.echo(f"daemon {pid} stopped" if not _alive(pid) else f"daemon {pid} is still stopping")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
@friendly
def status(c: Context, as_json: bool) -> None:
    """Is the daemon up, and who am I to it."""
    with c.client() as client:
        info = client.call("hello")
    if as_json:
        click.echo(dumps(info))
        return
    click.echo(f"daemon {info['daemon']} pid {info['pid']} up {info['uptime_s']}s, "
               f"you are {info['user']} ({info['role']})")
    if info.get("config_error"):
        click.echo(f"config not loaded: {info['config_error']['text']}; the previous policy "
                   "stays in force (fix the file; it reloads when saved)", err=True)


# --- runs --------------------------------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("profile")
@click.argument("command", nargs=-1)
@click.option("--workspace", "-w", metavar="DIR", help="Folder the agent works in (default: the profile's, else here).")
@click.option("--wait", is_flag=True, help="Stream the output and exit with the agent's exit code.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@pass_ctx
@friendly
def run(c: Context, profile: str, command: tuple[str, ...], workspace: str | None, wait: bool, as_json: bool) -> None:
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
            if as_json:
                click.echo(dumps(record))
            else:
                click.echo(record["id"])
                if record.get("unsandboxed"):
                    click.echo("warning: this run is NOT sandboxed (profile says sandbox = \"none\")", err=True)
            return
        if not as_json:
            click.echo(f"[pilothouse] run {record['id']} ({record['profile']} in {record['backend']})", err=True)
        code = _follow(client, record["id"], quiet=as_json)
        if as_json:
            click.echo(dumps(client.call("run.get", run=record["id"])))
    sys.exit(code)


def _follow(client: Client, run_id: str, *, quiet: bool = False, tail: int = 0,
            raw: bool = False) -> int:
    result: dict[str, Any] = {}
    for kind, payload in client.stream("logs", run=run_id, follow=True, tail=tail):
        if kind == "event" and payload.get("kind") == "run.output" and not quiet:
            out = sys.stdout
            colour = out.isatty()  # a pipe gets plain text, as click.echo gave it
            for line in payload["lines"]:
                out.write((line if raw else neutralise(line, colour=colour)) + "\n")
            out.flush()
        elif kind == "event" and payload.get("kind") == "bus.dropped":
            click.echo(f"[pilothouse] {payload['count']} output events skipped (slow reader)", err=True)
        elif kind == "result":
            result = payload
    if "exit_code" not in result:
        result = client.call("run.get", run=run_id)
    code = result.get("exit_code")
    state = result.get("state")
    if state in ("lost", "failed") and code is None:
        return 1
    if code is None:
        return 0
    return code if code >= 0 else 128 - code


@main.command()
@click.option("--all", "-a", "show_all", is_flag=True, help="Include ended runs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
@friendly
def ps(c: Context, show_all: bool, as_json: bool) -> None:
    """List runs."""
    with c.client() as client:
        runs = client.call("runs.list", all=show_all)
    if as_json:
        click.echo(dumps(runs))
        return
    if not runs:
        click.echo("no runs" + ("" if show_all else " (ps --all shows ended ones)"))
        return
    rows = []
    for r in runs:
        stats = r.get("stats") or {}
        mem = stats.get("rss_bytes")
        backend = r["backend"] + (" (UNSANDBOXED)" if r.get("backend") == "none" else "")
        rows.append([
            r["id"], r["profile"], backend, r["state"], _ago(r.get("started_at")),
            f"{stats['cpu_percent']:.0f}%" if stats.get("cpu_percent") is not None else "-",
            f"{mem / 2**20:.0f}M" if mem else "-",
            "-" if r.get("exit_code") is None else str(r["exit_code"]),
            " ".join(r.get("command") or [])[:40],
        ])
    _table(rows, ["id", "profile", "backend", "state", "age", "cpu", "mem", "exit", "command"])


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the run ends.")
@click.option("--tail", "-n", type=int, default=0, help="Only the last N lines.")
@click.option("--search", "-s", metavar="TEXT", help="Only lines matching TEXT (full-text search).")
@click.option("--raw", is_flag=True, help="The bytes as the run wrote them, terminal control "
              "sequences included (default: only colour passes; other controls are shown, "
              "not obeyed).")
@pass_ctx
@friendly
def logs(c: Context, run_id: str, follow: bool, tail: int, search: str | None, raw: bool) -> None:
    """Print a run's output."""
    with c.client() as client:
        if follow and not search:
            _follow(client, run_id, tail=tail, raw=raw)
            return
        colour = sys.stdout.isatty()  # a pipe gets plain text, as click.echo gave it
        for kind, payload in client.stream("logs", run=run_id, tail=tail, search=search):
            if kind == "event" and payload.get("kind") == "run.output":
                sys.stdout.write("".join((line if raw else neutralise(line, colour=colour)) + "\n"
                                         for line in payload["lines"]))
        sys.stdout.flush()


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--kill", is_flag=True, help="SIGKILL at once instead of SIGTERM, then SIGKILL after 2s.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def stop(c: Context, run_id: str, kill: bool, as_json: bool) -> None:
    """Stop a run."""
    with c.client() as client:
        record = client.call("run.stop", run=run_id, kill=kill)
        final = client.call("run.get", run=run_id)
    if as_json:
        click.echo(dumps(final))
    else:
        click.echo(f"{record['id']}: {final.get('state')}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def profiles(c: Context, as_json: bool) -> None:
    """List the profiles in force."""
    with c.client() as client:
        rows = client.call("profiles")
    if as_json:
        click.echo(dumps(rows))
        return
    _table([[p["name"], p["sandbox"], " ".join(p["command"])[:40], p["source"]] for p in rows],
           ["profile", "sandbox", "command", "defined at"])


# --- approvals and policy ----------------------------------------------------------------------


@main.command()
@click.option("--run", "run_id", metavar="ID", help="Only this run's requests.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def approvals(c: Context, run_id: str | None, as_json: bool) -> None:
    """Pending approval requests, oldest first."""
    with c.client() as client:
        rows = client.call("approvals.list", run=run_id)
    if as_json:
        click.echo(dumps(rows))
        return
    if not rows:
        click.echo("no pending requests")
        return
    from console.text import request_line

    _table([[r["id"], f"{r['age']:.0f}s", f"{r['expires_in']:.0f}s", r["run_id"], r["kind"],
             request_line(r, 100)] for r in rows],
           ["id", "age", "expires", "run", "kind", "request"])


def _decide(c: Context, request_id: str, allow: bool, scope: str, pattern: str | None,
            yes: bool, as_json: bool, preview_only: bool = False) -> None:
    with c.client() as client:
        if scope == "profile":
            edit = client.call("approval.preview", id=request_id, allow=allow, pattern=pattern)
            if preview_only:
                click.echo(dumps(edit) if as_json else _preview_text(edit))
                return
            if not as_json:
                click.echo(_preview_text(edit))
            if edit.get("overridden_by"):
                fail(f"this rule would never take effect: {edit['overridden_by']['text']} is "
                     "stricter and still decides it; nothing was saved",
                     "decide with --scope run, a duration or global (a grant outranks an ask rule), "
                     "or change that rule in your config")
            if not yes:
                if not sys.stdin.isatty():
                    fail("a profile rule is saved only when confirmed", "add --yes to confirm")
                click.confirm("save these rules?", abort=True)
        elif preview_only:
            fail("--preview shows what --scope profile would write", "add --scope profile")
        result = client.call("approval.decide", id=request_id, allow=allow, scope=scope, pattern=pattern)
    if as_json:
        click.echo(dumps(result))
        return
    verb = "approved" if allow else "denied"
    click.echo(f"{verb} {result['request_id']} ({result['describe']})")
    for g in result["grants"]:
        click.echo(f"  grant {g['id']}: {g['effect']} {g['kind']} {g['pattern']!r} ({g['scope']})")
    if result.get("note"):
        click.echo(f"  note: {result['note']}")
    if result.get("also_decided"):
        click.echo(f"  also answered: {', '.join(result['also_decided'])}")
    saved = result.get("saved") or {}
    if saved.get("file"):
        click.echo(f"  saved to {saved['file']}")
    if saved.get("error") or saved.get("reload_error"):
        click.echo(f"  warning: {saved.get('error') or saved.get('reload_error')}", err=True)


def _preview_text(edit: dict[str, Any]) -> str:
    lines = [f"this writes to {edit['file']}:", *(f"  {line}" for line in edit["lines"])]
    lines.append(edit["diff"] or "(the rules are already there)")
    if edit.get("overridden_by"):
        lines.append(f"but it would never take effect: {edit['overridden_by']['text']} is stricter")
    return "\n".join(lines)


_SCOPE_HELP = "once, run, a duration (10m, 2h), profile (saved to the config) or global"
_PREVIEW_HELP = "With --scope profile: show every rule it would write, and save nothing."


@main.command()
@click.argument("request_id", metavar="ID")
@click.option("--scope", default="once", show_default=True, help=_SCOPE_HELP)
@click.option("--pattern", metavar="WORDS", help="The rule to grant, instead of the request's own exact command; it covers added words too.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before saving a profile rule.")
@click.option("--preview", "preview_only", is_flag=True, help=_PREVIEW_HELP)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def approve(c: Context, request_id: str, scope: str, pattern: str | None, yes: bool, preview_only: bool,
            as_json: bool) -> None:
    """Approve a pending request."""
    _decide(c, request_id, True, scope, pattern, yes, as_json, preview_only)


@main.command()
@click.argument("request_id", metavar="ID")
@click.option("--scope", default="once", show_default=True, help=_SCOPE_HELP)
@click.option("--pattern", metavar="WORDS", help="The rule to deny, instead of the request's own.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before saving a profile rule.")
@click.option("--preview", "preview_only", is_flag=True, help=_PREVIEW_HELP)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def deny(c: Context, request_id: str, scope: str, pattern: str | None, yes: bool, preview_only: bool,
         as_json: bool) -> None:
    """Deny a pending request."""
    _decide(c, request_id, False, scope, pattern, yes, as_json, preview_only)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def grants(c: Context, as_json: bool) -> None:
    """Grants in force (decisions that outlive one request)."""
    with c.client() as client:
        rows = client.call("grants.list")
    if as_json:
        click.echo(dumps(rows))
        return
    if not rows:
        click.echo("no grants in force")
        return
    _table([[g["id"], g["effect"], g["kind"], g["pattern"], g["scope"], g.get("run_id") or "-",
             g.get("profile") or "-", g.get("decided_by") or "-"] for g in rows],
           ["id", "effect", "kind", "pattern", "scope", "run", "profile", "by"])


@main.group()
def policy() -> None:
    """Test, explain and preview policy."""


@policy.command("check")
@click.argument("profile")
@click.argument("subject", nargs=-1, required=True)
@click.option("--host", "is_host", is_flag=True,
              help="SUBJECT is a destination: host[:port], [IPv6][:port] or an http:// URL.")
@click.option("--resolve", is_flag=True, help="Look the name up as the gate would and judge the addresses.")
@click.option("--exact", is_flag=True, help="Read SUBJECT exactly as a CONNECT line: a host without a port is rejected.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def policy_check(c: Context, profile: str, subject: tuple[str, ...], is_host: bool, resolve: bool,
                 exact: bool, as_json: bool) -> None:
    """What PROFILE's policy decides for a command (or, with --host, a destination): the gate's
    and agent.sock's decision. With --config FILE, that file's, evaluated here without the daemon."""
    from console.gate.check import check_config_file

    what = {"host" if is_host else "command": " ".join(subject)}
    if c.config_file is not None:
        result = check_config_file(c.config_file, profile, resolve=resolve, exact=exact,
                                   daemon_files=_daemon_config_files(c), **what)
    else:
        with c.client() as client:
            result = client.call("policy.check", profile=profile, resolve=resolve, exact=exact, **what)
    if as_json:
        click.echo(dumps(result))
        return
    click.echo(f"{result['decision']}: {result['reason']}")
    if result.get("addresses"):
        click.echo(f"  addresses: {', '.join(result['addresses'])}")
    if result.get("note"):
        click.echo(f"  note: {result['note']}")


def _daemon_config_files(c: Context) -> list[str] | None:
    """The config file a running daemon uses, or None when none runs (never starts one)."""
    try:
        with Client(c.paths, autostart=False) as client:
            theirs = client.call("hello").get("config_file")
    except (ClientError, OSError):
        return None
    return [theirs] if theirs else ["built-in profiles only"]


@policy.command("rules")
@click.argument("profile", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def policy_rules(c: Context, profile: str | None, as_json: bool) -> None:
    """The rules in force, with the file and line each came from."""
    with c.client() as client:
        rows = client.call("policy.rules", profile=profile)
    if as_json:
        click.echo(dumps(rows))
        return
    for p in rows:
        click.echo(f"[{p['profile']}]  sandbox={p['sandbox']}  ({p['source']})")
        _table([[r["section"], r["list"], r["rule"], r["source"]] for r in p["rules"]],
               ["section", "list", "rule", "from"])
        click.echo()


@policy.command("why")
@click.argument("request_id", metavar="REQUEST_ID")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def policy_why(c: Context, request_id: str, as_json: bool) -> None:
    """Why a request was decided as it was."""
    with c.client() as client:
        result = client.call("policy.why", id=request_id)
    if as_json:
        click.echo(dumps(result))
        return
    click.echo(f"{request_id}: {result['state']}: {result['describe']}")
    for e in result["events"]:
        click.echo(f"  {_clock(e['ts'])}  {e['kind']:20}  {e.get('actor') or '-':10}  {e.get('text') or ''}")


@policy.command("shadow")
@click.argument("rule")
@click.option("--kind", type=click.Choice(["exec", "network"]), default="exec", show_default=True)
@click.option("--effect", type=click.Choice(["allow", "ask", "deny", "forbid"]), default="allow", show_default=True)
@click.option("--profile", metavar="NAME", help="Read a host rule without a port with this profile's ports.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def policy_shadow(c: Context, rule: str, kind: str, effect: str, profile: str | None, as_json: bool) -> None:
    """Which past requests RULE would have decided, riskiest first."""
    with c.client() as client:
        hits = client.call("policy.shadow", rule=rule, kind=kind, effect=effect, profile=profile)
    if as_json:
        click.echo(dumps(hits))
        return
    if not hits:
        click.echo("no past request matches this rule")
        return
    for h in hits:
        change = f"{h['was']} -> {h['would']}" if h["changes"] else h["was"]
        click.echo(f"risk {h['risk']:>3}  {change:16}  {h['subject']}  ({'; '.join(h['why'])})")


# --- history and audit -------------------------------------------------------------------------


def _history_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--run", "run_id", metavar="ID", help="Only this run."),
        click.option("--kind", metavar="K", help="Event kind, or a prefix such as net. or approval."),
        click.option("--search", metavar="TEXT", help="Full-text search."),
        click.option("--since", metavar="AGE", help="Only newer than AGE, e.g. 2h, 30m, 7d."),
        click.option("--decision", metavar="D", help="allow, deny or ask."),
    ]):
        fn = option(fn)
    return fn


def _filter_args(run_id: str | None, kind: str | None, search: str | None, since: str | None,
                 decision: str | None) -> dict[str, Any]:
    return {"run": run_id, "kind": kind, "search": search, "since": since_epoch(since), "decision": decision}


@main.command()
@_history_filters
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def history(c: Context, run_id: str | None, kind: str | None, search: str | None, since: str | None,
            decision: str | None, limit: int, as_json: bool) -> None:
    """Search the recorded history, newest first."""
    with c.client() as client:
        rows = client.call("history", limit=limit, **_filter_args(run_id, kind, search, since, decision))
    if as_json:
        click.echo(dumps(rows))
        return
    if not rows:
        click.echo("no events match")
        return
    _table([[str(r["id"]), _clock(r["ts"]), r.get("run_id") or "-", r["kind"], r.get("actor") or "-",
             neutralise((r.get("text") or "")[:70])] for r in rows],
           ["id", "time", "run", "kind", "by", "text"])


@main.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@_history_filters
@click.option("--output", "-o", metavar="FILE", help="Write here instead of stdout.")
@pass_ctx
@friendly
def export(c: Context, fmt: str, run_id: str | None, kind: str | None, search: str | None,
           since: str | None, decision: str | None, output: str | None) -> None:
    """Export events, oldest first, as JSON lines or CSV."""
    import csv

    out = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    fields = ["id", "ts", "run_id", "kind", "actor", "text", "data", "hash"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    total = 0
    try:
        with c.client() as client:
            for kind_, payload in client.stream("export", **_filter_args(run_id, kind, search, since, decision)):
                if kind_ != "event" or payload.get("kind") != "export.rows":
                    continue
                for row in payload["rows"]:
                    total += 1
                    if writer:
                        writer.writerow({**row, "text": neutralise(row.get("text") or ""),
                                         "data": json.dumps(row.get("data"), ensure_ascii=False)})
                    else:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"{total} events written to {output}", err=True)


@main.group()
def audit() -> None:
    """Check the tamper-evident history."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def audit_verify(c: Context, as_json: bool) -> None:
    """Recompute the hash chain; report the first broken row."""
    with c.client() as client:
        result = client.call("audit.verify")
    if as_json:
        click.echo(dumps(result))
    elif result["ok"]:
        click.echo(f"ok: {result['checked']} events verified ({result['reason']})")
    else:
        click.echo(f"BROKEN at event {result['first_bad_id']}: {result['reason']} "
                   f"({result['checked']} verified before it)")
    sys.exit(0 if result["ok"] else 1)


@main.command()
@click.option("--older-than", "older_than", required=True, metavar="AGE", help="e.g. 30d")
@click.option("--yes", "confirm", is_flag=True, help="Confirm pruning recent history "
              "(younger than [limits] prune_confirm_age, 7 days by default).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def prune(c: Context, older_than: str, confirm: bool, as_json: bool) -> None:
    """Delete history older than AGE; a signed anchor keeps `audit verify` green."""
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    with c.client() as client:
        result = client.call("prune", older_than_s=seconds, confirm=confirm)
    click.echo(dumps(result) if as_json else f"pruned {result['pruned']} events")


# --- GPU and reports ---------------------------------------------------------------------------


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if isinstance(value, int | float):
        return fmt.format(value)
    return "n/a" if value is None or str(value).startswith("n/a") else str(value)


def _print_gpu(snap: dict[str, Any]) -> None:
    click.echo(snap["status"])
    if snap["gpus"]:
        _table([[str(g["index"]), str(g["name"])[:22], _num(g.get("power_w")),
                 _num(g.get("power_limit_w"), "{:.0f}"), _num(g.get("util_gpu"), "{:.0f}%"),
                 f"{_num(g.get('mem_used_mib'), '{:.0f}')}/{_num(g.get('mem_total_mib'), '{:.0f}')}",
                 _num(g.get("temp_c"), "{:.0f}C"), _num(g.get("sm_clock_mhz"), "{:.0f}"),
                 "LOST" if g.get("lost") else ""]
                for g in snap["gpus"]],
               ["gpu", "name", "watts", "limit", "util", "mem MiB", "temp", "sm MHz", ""])
    live = snap.get("live") or {}
    click.echo(f"tokens/s {_num(live.get('tok_s'))}  output tokens/s {_num(live.get('tok_s_out'))}  "
               f"J/token {_num(live.get('j_per_token'), '{:.3f}')}  "
               f"$/Mtok {_num(live.get('usd_per_mtok'), '{:.4f}')}  (board power)")
    runs = snap.get("runs") or {}
    if runs:
        _table([[run_id, _num(r.get("tok_s")), _num(r.get("j_per_token"), "{:.3f}"),
                 str(r.get("total_tokens_in", 0)), str(r.get("total_tokens_out", 0)),
                 _num(r.get("total_energy_j")), _num(r.get("total_cost_usd"), "{:.6f}"),
                 _num(r.get("gpu_memory_mib"), "{:.0f}")] for run_id, r in runs.items()],
               ["run", "tok/s", "J/token", "tokens in", "tokens out", "energy J", "cost $", "GPU MiB"])


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", is_flag=True, help="Refresh every second until interrupted.")
@pass_ctx
@friendly
def gpu(c: Context, as_json: bool, watch: bool) -> None:
    """GPUs like nvidia-smi, plus tokens/s, J/token and cost per agent."""
    with c.client() as client:
        while True:
            snap = client.call("gpu")
            if as_json:
                click.echo(json.dumps(snap, ensure_ascii=False, default=str))
            else:
                if watch:
                    click.clear()
                _print_gpu(snap)
            if not watch:
                return
            time.sleep(1)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def report(c: Context, run_id: str, as_json: bool) -> None:
    """One run: tokens, energy, cost, approvals and network."""
    with c.client() as client:
        rep = client.call("report", run=run_id)
    if as_json:
        click.echo(dumps(rep))
        return
    run, m, a = rep["run"], rep["metering"] or {}, rep["activity"]
    click.echo(f"run {run['id']}  {run['profile']} in {run['backend']}  {run['state']}"
               f"  exit {run.get('exit_code')}")
    click.echo(f"  command   {' '.join(run.get('command') or [])}")
    click.echo(f"  tokens    in {m.get('tokens_in', run.get('tokens_in', 0))}"
               f"  out {m.get('tokens_out', run.get('tokens_out', 0))}")
    click.echo(f"  energy    {_num(m.get('energy_j', run.get('energy_j')), '{:.1f}')} J"
               f"  cost ${_num(m.get('cost_usd', run.get('cost')), '{:.6f}')}"
               f"  J/token {_num(m.get('j_per_token'), '{:.3f}')}")
    click.echo(f"  approvals asked {a['approvals_asked']}, approved {a['approved']}, denied "
               f"{a['denied_by_person']}; by policy: allowed {a['policy_allowed']}, denied {a['policy_denied']}")
    net = ", ".join(f"{k} {v}" for k, v in sorted(a["net"].items())) or "none"
    conns = a["connections"]
    click.echo(f"  network   decisions: {net}; {conns['count']} connections, "
               f"{conns['bytes_up']} bytes up, {conns['bytes_down']} down")


@main.command("demo-workspace")
@click.argument("path", default="pilothouse-demo", type=click.Path(file_okay=False))
@click.option("--no-git", is_flag=True, help="Do not make it a git repository.")
def demo_workspace(path: str, no_git: bool) -> None:
    """Write a tiny Python project with a bug and its tests, for `pilothouse run demo`."""
    from console.agents.demo import make_demo_workspace

    try:
        root = make_demo_workspace(path, git=not no_git)
    except OSError as exc:  # FileExistsError included: never overwrites other files
        fail(f"cannot write the demo workspace: {exc}", "pick another folder")
    click.echo(str(Path(root).resolve()))
    click.echo(f"next: pilothouse run demo -w {root} --wait", err=True)


# --- machine -----------------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@friendly
def doctor(c: Context, as_json: bool) -> None:
    """Check sandboxes, Docker, cgroups, NVML and disk; say how to fix what is missing."""
    from console.sandbox.doctor import run_checks

    findings = run_checks(c.paths)
    if as_json:
        click.echo(dumps([f.__dict__ if hasattr(f, "__dict__") else f for f in findings]))
    else:
        for f in findings:
            click.echo(f"[{f.status:7}] {f.name}: {f.detail}")
            if f.fix and f.status != "ok":
                click.echo(f"          fix: {f.fix}")
    sys.exit(1 if any(f.status == "error" for f in findings) else 0)


import console.cli.workload  # noqa: E402, F401 - adds trace, replay and replay-report to main

if __name__ == "__main__":
    main()


from console.cli.reload import reload as _reload  # noqa: E402 - needs the names above

main.add_command(_reload)
