"""`pilothouse policy check|rules|why|shadow`: test, explain and preview policy."""

from __future__ import annotations

from typing import Any

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import echo, fail, table, visible
from console.cli.parsing import argument, group, option
from console.cli.value_types import Choice
from console.text import clock


@group()
def policy() -> None:
    """Test, explain and preview policy."""


def _show_check(result: dict[str, Any]) -> None:
    echo(f"{visible(result['decision'])}: {visible(result['reason'])}")
    if result.get("addresses"):
        echo(f"  addresses: {visible(', '.join(result['addresses']))}")
    if result.get("note"):
        echo(f"  note: {visible(result['note'])}")


@policy.command("check")
@argument("profile")
@argument("subject", nargs="+")
@option("--host", "is_host", is_flag=True,
        help="SUBJECT is a destination: host[:port], [IPv6][:port] or an http:// URL.")
@option("--resolve", is_flag=True, help="Look the name up as the gate would and judge the addresses.")
@option("--exact", is_flag=True, help="Read SUBJECT exactly as a CONNECT line: a host without a port is rejected.")
@option("--run", "run_id", metavar="RUN",
        help="Decide for this live run of PROFILE: its grants (once, run, timed) count too.")
@json_option
@pass_ctx
@friendly
def policy_check(c: Context, profile: str, subject: tuple[str, ...], is_host: bool, resolve: bool,
                 exact: bool, run_id: str | None) -> None:
    """What PROFILE's policy decides for a command (or, with --host, a destination): the gate's
    and agent.sock's decision, with the grants in force for the profile (and, with --run, for
    that run). With --config FILE, that file's rules, evaluated here without the daemon."""
    if is_host:
        what = {"host": " ".join(subject)}
    elif resolve or exact:  # else dropped without a word: the answer would not be what was asked
        flag = "--resolve" if resolve else "--exact"
        fail(f"{flag} applies to a destination, and {' '.join(subject)!r} is read as a command",
             f"add --host to check a destination: `pilothouse policy check --host {flag} "
             f"{profile} HOST[:PORT]`", code=2, error="bad-args")
    else:  # read as the agent's `ph-ask exec -- WORDS` is: the same words, the same decision
        from console.sandbox.inside import command_line

        what = {"command": command_line(list(subject))}
    if c.config_file is not None:
        from console.gate.check import check_config_file

        if run_id is not None:
            fail("--run cannot be used with --config: a run's grants are in the running daemon, "
                 "not in a file", "drop --config to ask the daemon for that run's decision",
                 error="bad-args")

        result = check_config_file(c.config_file, profile, resolve=resolve, exact=exact,
                                   daemon_files=_daemon_config_files(c), **what)
    else:
        with c.client() as client:
            result = client.call("policy.check", profile=profile, resolve=resolve, exact=exact,
                                 run=run_id, **what)
    c.emit(result, _show_check)


def _daemon_config_files(c: Context) -> list[str] | None:
    """The config file a running daemon uses, or None when none runs (never starts one)."""
    from console.client.sync import Client, ClientError

    try:
        with Client(c.paths, autostart=False) as client:
            theirs = client.call("hello").get("config_file")
    except (ClientError, OSError):
        return None
    return [theirs] if theirs else ["built-in profiles only"]


def _show_rules(rows: list[dict[str, Any]]) -> None:
    for p in rows:
        echo(f"[{p['profile']}]  sandbox={p['sandbox']}  ({p['source']})")
        table([[r["section"], r["list"], r["rule"], r["source"]] for r in p["rules"]],
              ["SECTION", "LIST", "RULE", "FROM"])
        echo()


@policy.command("rules")
@argument("profile", nargs="?")
@json_option
@pass_ctx
@friendly
def policy_rules(c: Context, profile: str | None) -> None:
    """The rules in force, with the file and line each came from."""
    with c.client() as client:
        rows = client.call("policy.rules", profile=profile)
    c.emit(rows, _show_rules)


@policy.command("why")
@argument("request_id", metavar="REQUEST_ID")
@json_option
@pass_ctx
@friendly
def policy_why(c: Context, request_id: str) -> None:
    """Why a request was decided as it was."""
    with c.client() as client:
        result = client.call("policy.why", id=request_id)

    def show(result: dict[str, Any]) -> None:
        echo(f"{visible(request_id)}: {visible(result['state'])}: {visible(result['describe'])}")
        if result.get("earlier"):
            n = result["earlier"]
            echo(f"  ({n} earlier request{'s' if n > 1 else ''} had the id {visible(request_id)}, "
                 "before a daemon restart; this is the newest)")
        for e in result["events"]:
            echo(f"  {clock(e['ts'], date=True)}  {visible(e['kind']):20}  "
                 f"{visible(e.get('actor') or '-'):10}  {visible(e.get('text') or '')}")

    c.emit(result, show)


def _show_shadow(hits: list[dict[str, Any]]) -> None:
    if not hits:
        echo("no past request matches this rule")
        return
    for h in hits:
        change = f"{h['was']} -> {h['would']}" if h["changes"] else h["was"]
        echo(f"risk {h['risk']:>3}  {visible(change):16}  {visible(h['subject'])}  "
             f"({visible('; '.join(h['why']))})")


@policy.command("shadow")
@argument("rule")
@option("--kind", type=Choice(["exec", "network"]), default="exec", show_default=True)
@option("--effect", type=Choice(["allow", "ask", "deny", "forbid"]), default="allow", show_default=True)
@option("--profile", metavar="NAME", help="Read a host rule without a port with this profile's ports.")
@json_option
@pass_ctx
@friendly
def policy_shadow(c: Context, rule: str, kind: str, effect: str, profile: str | None) -> None:
    """Which past requests RULE would have decided, riskiest first."""
    with c.client() as client:
        hits = client.call("policy.shadow", rule=rule, kind=kind, effect=effect, profile=profile)
    c.emit(hits, _show_shadow)


COMMANDS = (policy,)
