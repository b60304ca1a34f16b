"""The policy: the rules in force, a check by the same code the agent socket and the gates use,
why a request was decided as it was, and what a candidate rule would have changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from console.config.load import ConfigError, NetworkConfig
from console.daemon.core import Core
from console.daemon.evaluation import network_rules
from console.daemon.ops.base import Args, Op, OpTable, Send, arg
from console.daemon.peers import Peer
from console.gate.check import check_exec, check_network
from console.gate.common import system_resolver
from console.policy import ExecRules, Provenance
from console.policy.shadow import shadow
from console.protocol import LIVE_STATES, Failure
from store.decisions import events_for_request, final_decision, past_requests


async def policy_rules(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """The rules in force, per profile, each with the file and line it came from."""
    wanted = arg(args, "profile", str, None)
    cfg = core.config.cfg
    out = []
    for prof in sorted(cfg.profiles.values(), key=lambda p: p.name):
        if wanted and prof.name != wanted:
            continue
        rules = []
        for section, table in (("exec", prof.exec), ("network", prof.network)):
            for list_name in ("forbid", "deny", "ask", "allow"):
                for rule in getattr(table, list_name, []):
                    rules.append({"section": section, "list": list_name, "rule": rule.text,
                                  "source": rule.source})
            rules.append({"section": section, "list": "default", "rule": table.default,
                          "source": prof.source})
        out.append({"profile": prof.name, "source": prof.source, "sandbox": prof.sandbox,
                    "ports": prof.network.ports, "rules": rules})
    if wanted and not out:
        try:
            cfg.profile(wanted)  # raises with the known names
        except ConfigError as exc:
            raise Failure("no-such-profile", str(exc)) from None
    return out


async def check_policy(core: Core, profile_name: str, command: str | None, host: str | None,
                       run_id: str | None = None, resolve: bool = False,
                       exact: bool = False) -> dict[str, Any]:
    """One decision by the same code the agent socket and the gate use (console.gate.check)."""
    cfg = core.config.cfg
    try:
        prof = cfg.profile(profile_name)
    except ConfigError as exc:
        raise Failure("no-such-profile", str(exc)) from None
    if run_id is not None:  # that run's grants count: only a live run of this profile has any
        run = core.runs.runs.get(run_id)
        if run is None or run.state not in LIVE_STATES:
            raise Failure("no-such-run", f"no live run {run_id!r}",
                          "list runs with: pilothouse ps")
        if run.profile != prof.name:
            raise Failure("bad-args", f"run {run_id} is of profile {run.profile}, not {prof.name}",
                          f"check with: pilothouse policy check {run.profile} --run {run_id} ...")
    common = {"grants": core.grants, "run_id": run_id, "profile": prof.name}
    where = {"config": cfg.user_file, "config_files": cfg.files}
    if command is not None:
        # A 4 KiB command of 2,000 parts is half a second of CPU (more under a large config):
        # off the loop, on a copy of the grants the loop may change meanwhile (review s17).
        checked = await asyncio.to_thread(
            check_exec, ExecRules.from_config(prof.exec), command,
            grants=core.grants.trial(()), run_id=run_id, profile=prof.name)
        return {**checked, **where}
    assert host is not None
    return {**await check_network(network_rules(prof), host, exact=exact,
                                  resolver=system_resolver if resolve else None, **common), **where}


async def policy_check(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    command = arg(args, "command", str, None)
    host = arg(args, "host", str, None)
    if (command is None) == (host is None):
        raise Failure("bad-args", "give a command or a host, not both")
    # One at a time per user, as policy.shadow: each holds a thread of the pool the store's
    # reads use, and a watcher may open 16 connections of 256 requests.
    with _one_per_user(core.life.checking, peer, "policy check"):
        return await check_policy(core, arg(args, "profile", str), command, host,
                                  arg(args, "run", str, None),
                                  bool(arg(args, "resolve", bool, False)),
                                  bool(arg(args, "exact", bool, False)))


@contextlib.contextmanager
def _one_per_user(computing: set[int], peer: Peer, what: str) -> Iterator[None]:
    """One `what` of a user's computed at a time (off the loop, on a thread of the shared
    pool); another meanwhile is answered busy."""
    if peer.uid in computing:
        raise Failure("busy", f"a {what} of {peer.user}'s is still being computed",
                      "wait for its answer, then ask again")
    computing.add(peer.uid)
    try:
        yield
    finally:
        computing.discard(peer.uid)


async def policy_why(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Why a request was decided as it was: its recorded events, and the provenance."""
    request_id = arg(args, "id", str)
    await core.store.flush(searchable=False, lines_of=())  # its events by id: no search
    request = await core.store.read(lambda db: events_for_request(db, request_id))
    events = request.events
    if not events:
        raise Failure("unknown-request", f"no request {request_id!r} in the history",
                      "request ids are shown by `pilothouse approvals` and `pilothouse history`")
    final, unapplied = final_decision(events)
    prov = (final or {}).get("data", {}).get("provenance") if final else None
    state = "pending" if final is None else ("allowed" if final["data"].get("allow") else "denied")
    describe = Provenance.from_dict(prov).describe() if prov else "still pending"
    if unapplied:
        state = "not applied"
        describe = (f"{describe}; its record was committed after the daemon had stopped waiting "
                    "for it, so it was not applied")
    return {
        "request_id": request_id, "events": events, "state": state, "describe": describe,
        "provenance": prov,
        "earlier": request.earlier,
    }


async def policy_shadow(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    rule = arg(args, "rule", str)
    kind = arg(args, "kind", str, "exec")
    effect = arg(args, "effect", str, "allow")
    profile = arg(args, "profile", str, None)
    # A host rule without a port covers the profile's ports; with no profile named, the default.
    try:
        ports = core.config.cfg.profile(profile).network.ports if profile else NetworkConfig().ports
    except ConfigError as exc:
        raise Failure("no-such-profile", str(exc)) from None
    # Matching a rule against 20,000 past requests is seconds of CPU: off the loop (it ran on
    # it, and a watcher's 64 of them held every run, gate and console for minutes, review
    # s13b2), and one at a time per user, so a teammate holds at most one thread on it.
    with _one_per_user(core.life.shadowing, peer, "policy shadow"):
        try:
            await core.store.flush(lines_of=())  # past requests: events
            past = await core.store.read(past_requests)
            hits = await asyncio.to_thread(shadow, rule, past, kind=kind, effect=effect,
                                           ports=ports)
        except ValueError as exc:
            raise Failure("bad-rule", str(exc)) from None
    return [{"subject": h.request.get("subject"), "kind": h.request.get("kind"),
             "run_id": h.request.get("run_id"), "was": h.was, "would": h.would,
             "changes": h.changes, "risk": h.risk, "why": list(h.reasons)} for h in hits]


OPS: OpTable = {
    "policy.rules": Op(policy_rules),
    "policy.check": Op(policy_check),
    "policy.why": Op(policy_why),
    "policy.shadow": Op(policy_shadow),
}
