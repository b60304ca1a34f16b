"""`pilothouse policy check`: the decision the gate and agent.sock would give, as data.

The daemon's `policy.check` op and the CLI's `--config FILE` path both build their answer here,
from the same readers the gate uses (CONNECT targets, absolute-form URLs) and the same decision
functions (decide_network, evaluate_exec). Input the gate would refuse is a `reject` with the
gate's reason, never an error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from console.gate.own import but_this_machine
from console.policy import Decision, ExecRules, GrantTable, evaluate_exec, subject_too_long
from console.policy.hosts import (
    BadTarget,
    IPAddress,
    Target,
    address_text,
    loopback_addresses,
    parse_absolute_url,
    parse_connect_target,
)
from console.policy.netrules import NetworkRules
from console.policy.network import decide_network

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
NOT_RESOLVED = ("the name was not resolved (pass --resolve to look it up as the gate would); "
                "the gate also denies a name that resolves to a non-global address")

LOOPBACK_NAME = ("localhost and names under it are loopback by definition (RFC 6761): the gate "
                 "never looks them up and judges 127.0.0.1 and ::1, whatever /etc/hosts says")

DEFAULT_PORT = 443
BARE_HOST_NOTE = ("no port given: checked as {host}:443, the CONNECT an https:// client sends; "
                  "the gate itself refuses a CONNECT without a port")


def read_destination(text: str, *, exact: bool = False) -> tuple[Target, str | None]:
    """A destination as the gate reads it: a CONNECT target (`host:port`, `[v6]:port`) or an
    `http://` absolute URL. Unless `exact`, a bare host or `[v6]` (what a person types) is read
    as port 443, with a note saying so. Raises BadTarget with the gate's reason."""
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme != "http":
            raise BadTarget(f"the gate reads only http:// absolute URLs; a {scheme}:// client "
                            "sends CONNECT host:port, so check that instead")
        return parse_absolute_url(text)[0], None
    try:
        return parse_connect_target(text), None
    except BadTarget as exc:
        bare = text.startswith("[") and text.endswith("]") or (text and ":" not in text)
        if exact or not bare:
            raise
        try:
            return parse_connect_target(f"{text}:{DEFAULT_PORT}"), BARE_HOST_NOTE.format(host=text)
        except BadTarget:
            raise exc from None


def as_result(kind: str, subject: str, decision: Decision, **extra: Any) -> dict[str, Any]:
    """The JSON answer (docs/protocol.md, policy.check)."""
    prov = decision.provenance
    reason = prov.describe()
    return {"kind": kind, "subject": subject, "decision": decision.action.value,
            "rule": prov.rule, "source": prov.source, "reason": reason,
            "provenance": prov.to_dict(), **extra,
            # older names, kept for the console's test box and scripts written against them
            "action": decision.action.value, "describe": reason}


def rejected(kind: str, subject: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "decision": "reject", "rule": None, "source": None,
            "reason": reason, "provenance": {"kind": "error", "detail": reason, "text": reason},
            "action": "reject", "describe": reason}


def check_exec(rules: ExecRules, command: str, *, grants: GrantTable | None = None,
               run_id: str | None = None, profile: str | None = None) -> dict[str, Any]:
    if too_long := subject_too_long(command):  # an agent's ask this long never reaches a rule
        return rejected("exec", command, f"{too_long}: an agent's request this long is refused "
                                         "before any rule reads it")
    decision = evaluate_exec(command, rules, grants, run_id=run_id, profile=profile, consume=False)
    return as_result("exec", command, decision)


async def check_network(
    rules: NetworkRules, text: str, *, resolver: Resolver | None = None, exact: bool = False,
    grants: GrantTable | None = None, run_id: str | None = None, profile: str | None = None,
) -> dict[str, Any]:
    """The gate's decision for a destination. With a resolver, names are looked up as the gate
    does: only when the rules do not already deny the name, and the verdict covers every address."""
    try:
        target, read_note = read_destination(text, exact=exact)
    except BadTarget as exc:
        return rejected("network", text, exc.reason)
    result = await _decide_target(rules, target, resolver, grants, run_id, profile)
    if read_note:
        result["note"] = f"{read_note}; {result['note']}" if result.get("note") else read_note
    return result


async def _decide_target(rules: NetworkRules, target: Target, resolver: Resolver | None,
                         grants: GrantTable | None, run_id: str | None,
                         profile: str | None) -> dict[str, Any]:

    def decide(addresses: Sequence[IPAddress] | None) -> Decision:
        decision = decide_network(rules, target.host, target.port, addresses, grants=grants,
                                  run_id=run_id, profile=profile, consume=False)
        return but_this_machine(decision, rules, target, list(addresses or ()))  # as the gate

    if target.ip is not None:
        return as_result("network", target.authority, decide([target.ip]),
                         addresses=[address_text(target.ip)])
    local = loopback_addresses(target.host)
    if local is not None:  # as the gate: loopback by definition, never looked up
        return as_result("network", target.authority, decide(local),
                         addresses=[address_text(a) for a in local], note=LOOPBACK_NAME)
    before = decide(None)
    if resolver is None or before.action == "deny":
        note = NOT_RESOLVED if resolver is None else "denied by name: the gate never looks it up"
        return as_result("network", target.authority, before, addresses=[], note=note)
    try:
        addresses = await resolver(target.host, target.port)
    except (OSError, ValueError) as exc:
        addresses, error = [], f"{type(exc).__name__}: {exc}"
    else:
        error = "no addresses"
    if not addresses:
        return as_result("network", target.authority, before, addresses=[],
                         note=f"could not resolve {target.host} ({error}); the gate would "
                              "ask if the rules ask, else answer 502")
    return as_result("network", target.authority, decide(addresses),
                     addresses=[address_text(a) for a in addresses])


def check_config_file(
    path: Any, profile_name: str, *, command: str | None = None, host: str | None = None,
    resolve: bool = False, exact: bool = False, daemon_files: list[str] | None = None,
) -> dict[str, Any]:
    """`policy check --config FILE`: that file's decision, without the daemon (so without its
    grants). `daemon_files` (what a running daemon loaded, if one runs) goes into the note when
    it differs, so nobody mistakes one file's answer for the other's. Raises ConfigError."""
    import asyncio

    from console.config.load import load_explicit
    from console.gate.common import system_resolver

    cfg = load_explicit(path)
    prof = cfg.profile(profile_name)
    if command is not None:
        out = check_exec(ExecRules.from_config(prof.exec), command)
    else:
        net = prof.network
        rules = NetworkRules([(r.text, r.source) for r in net.allow],
                             [(r.text, r.source) for r in net.deny], net.default,  # type: ignore[arg-type]
                             net.ports)
        out = asyncio.run(check_network(rules, host or "", exact=exact,
                                        resolver=system_resolver if resolve else None))
    note = f"evaluated from {path} by the CLI, without the daemon (grants not included)"
    if daemon_files and str(path) not in daemon_files:
        note += f"; the running daemon uses another file: {', '.join(daemon_files)}"
    out["note"] = f"{out['note']}; {note}" if out.get("note") else note
    return {**out, "config": str(path), "config_files": cfg.files}
