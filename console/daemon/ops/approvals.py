"""Operations on the inbox and the policy, served on operator.sock.

Deciding is for operators and approvers only (`decides=True`); the decider recorded is the
peer's user from SO_PEERCRED. A profile-scope decision writes its rule into the user's config
file (under a lock, atomically) and reloads the config; `approval.preview` shows that exact edit
first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.daemon.ops.operator import Send, _arg, op
from console.policy import Provenance, parse_scope
from console.protocol import Failure

if TYPE_CHECKING:
    from console.daemon.peers import Peer
    from console.daemon.server import Daemon

DECISION_KINDS = ("approval.decided", "policy.decision", "net.decision")


def _sockets(daemon: Daemon) -> Any:
    return daemon.services.run_sockets


def _config_path(daemon: Daemon) -> Path:
    return Path(daemon.cfg.user_file or daemon.paths.config_file)


@op("approvals.list")
async def approvals_list(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    inbox = _sockets(daemon).inbox
    rows = []
    for req in inbox.pending(_arg(args, "run", str, None)):
        row = req.to_dict()
        row["expires_in"] = max(0.0, (req.timeout_s or inbox.timeout_s) - row["age"])
        rows.append(row)
    return rows


def _profile_plan(daemon: Daemon, req: Any, allow: bool, pattern: str | None) -> Any:
    """The rules a profile-scope decision writes (all of them), the file edit, and the stricter
    rule that would override them. The same plan makes the preview and the save."""
    from console.config.edit import PolicyEditError, preview
    from console.config.profile_rules import overridden_by, plan

    patterns = [pattern] if pattern else list(req.grant_patterns)
    if not patterns:
        raise Failure("no-rule", f"request {req.id} cannot become a rule: its command could not be "
                      "split into rule words", "decide it once, or pass --pattern WORDS")
    try:
        planned = plan(req.profile, req.kind, patterns, allow)
    except ValueError as exc:
        raise Failure("bad-pattern", f"pattern {patterns[0]!r}: {exc}") from None
    path = _config_path(daemon)
    try:
        edits = [preview(path, p.profile, p.section, p.list_name, p.rule) for p in planned]
    except PolicyEditError as exc:
        raise Failure("cannot-save-rule", str(exc)) from None
    override = overridden_by(daemon.cfg.profile(req.profile), req.kind, req.subject, planned)
    return planned, edits, override


def _preview_result(planned: Any, edits: Any, override: Any) -> dict[str, Any]:
    first = edits[0]
    return {"file": str(first.path), "profile": first.profile, "section": first.section,
            "list": first.list_name, "rule": first.rule, "changed": any(e.changed for e in edits),
            "diff": "".join(e.diff for e in edits), "lines": [p.line() for p in planned],
            "overridden_by": override.to_dict() if override else None}


def _refuse_overridden(override: Any) -> None:
    raise Failure("rule-overridden", f"this rule would never take effect: {override.describe()} is "
                  "stricter and still decides it, so nothing was saved",
                  "decide with --scope run, a duration or global (a grant outranks an ask rule), "
                  "or change that rule in your config")


@op("approval.preview")
async def approval_preview(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Every rule a profile-scope decision would write, and where, before it is saved; and the
    stricter rule that would override them, if one would."""
    req = _request(daemon, _arg(args, "id", str))
    return _preview_result(*_profile_plan(daemon, req, _arg(args, "allow", bool),
                                          _arg(args, "pattern", str, None)))


def _request(daemon: Daemon, request_id: str) -> Any:
    req = _sockets(daemon).inbox.get(request_id)
    if req is None:
        raise Failure("unknown-request", f"no approval request {request_id!r}",
                      "`pilothouse approvals` lists the pending ones")
    return req


async def _save_planned(daemon: Daemon, peer: Peer, planned: Any, request_id: str) -> dict[str, Any]:
    """Write exactly the planned rules, record one policy.changed (the same shape a reload
    records), then load the file again."""
    from console.config.edit import PolicyEditError, apply

    path = _config_path(daemon)
    saved: dict[str, Any] = {"file": str(path), "lines": [p.line() for p in planned]}
    async with daemon.reloader.lock:  # the file watcher waits: this is one change, not two
        try:
            for p in planned:
                apply(path, p.profile, p.section, p.list_name, p.rule)
        except PolicyEditError as exc:
            return saved | {"error": str(exc)}
        await daemon.services.record_security(  # recorded before it takes effect
            "policy.changed", actor=peer.user,
            text=f"{peer.user} saved {len(planned)} rule(s) to {path}: " + "; ".join(saved["lines"]),
            data={"cause": "profile-rule", "files": [str(path)], "diff": saved["lines"],
                  "profile": planned[0].profile, "request_id": request_id},
        )
        try:
            daemon.reload_config()
            _sockets(daemon).reload()
        except Exception as exc:  # the grant is in force anyway; say why the file did not load
            saved["reload_error"] = str(exc)
    return saved


@op("approval.decide", decides=True)
async def approval_decide(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    request_id = _arg(args, "id", str)
    allow = _arg(args, "allow", bool)
    scope = _arg(args, "scope", str, "once")
    pattern = _arg(args, "pattern", str, None)
    try:
        parsed = parse_scope(scope)
    except ValueError as exc:
        raise Failure("bad-scope", str(exc)) from None
    req = _request(daemon, request_id)
    planned: Any = None
    if parsed.kind == "profile" and req.state == "pending":
        planned, _, override = _profile_plan(daemon, req, allow, pattern)  # refuse before deciding
        if override is not None:
            _refuse_overridden(override)
    result = await _sockets(daemon).inbox.decide(request_id, allow, peer.user, scope, pattern=pattern)
    saved = None
    if planned:
        saved = await _save_planned(daemon, peer, planned, request_id)
    return {
        "request_id": result.request_id, "allow": result.allow, "actor": result.actor,
        "scope": result.scope, "decided_at": result.decided_at,
        "provenance": result.provenance.to_dict(), "describe": result.provenance.describe(),
        "grants": [g.to_dict() for g in result.grants], "note": result.note,
        "also_decided": list(result.also_decided), "saved": saved,
    }


@op("grants.list")
async def grants_list(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    return [g.to_dict() for g in _sockets(daemon).grants.list()]


@op("grant.revoke", decides=True)
async def grant_revoke(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    grant_id = _arg(args, "id", str)
    await daemon.services.record_security("grant.revoked", actor=peer.user,
                                          text=f"{peer.user} revoked grant {grant_id}",
                                          data={"grant_id": grant_id})
    grant = _sockets(daemon).grants.revoke(grant_id)
    if grant is None:
        raise Failure("unknown-grant", f"no live grant {grant_id!r}", "`pilothouse grants` lists them")
    return grant.to_dict()


# --- policy ----------------------------------------------------------------------------------


@op("policy.rules")
async def policy_rules(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """The rules in force, per profile, each with the file and line it came from."""
    wanted = _arg(args, "profile", str, None)
    out = []
    for prof in sorted(daemon.cfg.profiles.values(), key=lambda p: p.name):
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
        daemon.cfg.profile(wanted)  # raises with the known names
    return out


async def check_policy(daemon: Daemon, profile_name: str, command: str | None, host: str | None,
                       run_id: str | None = None, resolve: bool = False,
                       exact: bool = False) -> dict[str, Any]:
    """One decision by the same code the agent socket and the gate use (console.gate.check)."""
    from console.config.load import ConfigError
    from console.daemon.channels import network_rules
    from console.gate.check import check_exec, check_network
    from console.gate.common import system_resolver
    from console.policy import ExecRules

    try:
        prof = daemon.cfg.profile(profile_name)
    except ConfigError as exc:
        raise Failure("no-such-profile", str(exc)) from None
    sockets = _sockets(daemon)
    common = {"grants": sockets.grants, "run_id": run_id, "profile": prof.name}
    where = {"config": daemon.cfg.user_file, "config_files": daemon.cfg.files}
    if command is not None:
        return {**check_exec(ExecRules.from_config(prof.exec), command, **common), **where}
    assert host is not None
    return {**await check_network(network_rules(prof), host, exact=exact,
                                  resolver=system_resolver if resolve else None, **common), **where}


@op("policy.check")
async def policy_check(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    command = _arg(args, "command", str, None)
    host = _arg(args, "host", str, None)
    if (command is None) == (host is None):
        raise Failure("bad-args", "give a command or a host, not both")
    return await check_policy(daemon, _arg(args, "profile", str), command, host,
                              _arg(args, "run", str, None), bool(_arg(args, "resolve", bool, False)),
                              bool(_arg(args, "exact", bool, False)))


def _events_for_request(db: Any, request_id: str) -> list[dict[str, Any]]:
    # A request's own events carry its id; the rule a profile-scope decision saved carries it
    # as request_id. Kind conditions first, so the kind index narrows before any JSON is read.
    rows = db.execute(
        "SELECT id, ts, run_id, kind, actor, text, data FROM events "
        "WHERE (kind >= 'approval.' AND kind < 'approval/' AND json_extract(data, '$.id') = ?) "
        "OR (kind = 'policy.changed' AND json_extract(data, '$.request_id') = ?) ORDER BY id",
        (request_id, request_id),
    ).fetchall()
    return [{"id": r[0], "ts": r[1], "run_id": r[2], "kind": r[3], "actor": r[4], "text": r[5],
             "data": json.loads(r[6]) if r[6] else None} for r in rows]


@op("policy.why")
async def policy_why(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    """Why a request was decided as it was: its recorded events, and the provenance."""
    request_id = _arg(args, "id", str)
    await daemon.services.flush()
    events = await daemon.services.read(lambda db: _events_for_request(db, request_id))
    if not events:
        raise Failure("unknown-request", f"no request {request_id!r} in the history",
                      "request ids are shown by `pilothouse approvals` and `pilothouse history`")
    final = next((e for e in reversed(events) if e["kind"] != "approval.requested"), None)
    prov = (final or {}).get("data", {}).get("provenance") if final else None
    return {
        "request_id": request_id, "events": events,
        "state": "pending" if final is None else ("allowed" if final["data"].get("allow") else "denied"),
        "describe": Provenance.from_dict(prov).describe() if prov else "still pending",
        "provenance": prov,
    }


def _past_requests(db: Any, limit: int = 20000) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT kind, data FROM events WHERE kind IN (?, ?, ?) ORDER BY id DESC LIMIT ?",
        (*DECISION_KINDS, limit),
    ).fetchall()
    out = []
    for kind, raw in rows:
        data = json.loads(raw) if raw else {}
        if kind == "net.decision":
            if data.get("action") == "ask":
                continue
            out.append({"kind": "network", "subject": f"{data.get('host')}:{data.get('port')}",
                        "decision": data.get("action"), "run_id": data.get("run_id")})
        else:
            decision = data.get("action") or ("allow" if data.get("allow") else "deny")
            out.append({"kind": data.get("kind"), "subject": data.get("subject"),
                        "decision": decision, "run_id": data.get("run_id")})
    return out


@op("policy.shadow")
async def policy_shadow(daemon: Daemon, peer: Peer, args: dict[str, Any], send: Send) -> Any:
    from console.config.load import NetworkConfig
    from console.policy.shadow import shadow

    rule = _arg(args, "rule", str)
    kind = _arg(args, "kind", str, "exec")
    effect = _arg(args, "effect", str, "allow")
    profile = _arg(args, "profile", str, None)
    # A host rule without a port covers the profile's ports; with no profile named, the default.
    ports = daemon.cfg.profile(profile).network.ports if profile else NetworkConfig().ports
    await daemon.services.flush()
    past = await daemon.services.read(_past_requests)
    try:
        hits = shadow(rule, past, kind=kind, effect=effect, ports=ports)
    except ValueError as exc:
        raise Failure("bad-rule", str(exc)) from None
    return [{"subject": h.request.get("subject"), "kind": h.request.get("kind"),
             "run_id": h.request.get("run_id"), "was": h.was, "would": h.would,
             "changes": h.changes, "risk": h.risk, "why": list(h.reasons)} for h in hits]
