"""The inbox and grants, served on operator.sock.

Deciding is for operators and approvers only (`decides=True`); the decider recorded is the
peer's user from SO_PEERCRED. A standing decision (scope profile or global), and revoking a
standing grant, is the daemon owner's alone. A profile-scope decision writes its rule into the user's config
file (under a lock, atomically, in a thread: the flock may wait on another writer and the fsync
on the disk, and the loop must not) and loads the config again; `approval.preview` shows that
exact edit first. A rule whose policy.changed record fails is taken out of the file again (fail
closed): unrecorded, it would take effect at the next reload.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from console.config.edit import PolicyEditError, RuleEdit, apply_all, preview_all, undo
from console.config.profile_rules import PlannedRule, overridden_by, plan
from console.daemon.core import Core
from console.daemon.ops.base import Args, Op, OpTable, Send, arg, record_denied
from console.daemon.peers import Peer
from console.daemon.requests import Request
from console.policy import Provenance, Scope, parse_scope
from console.protocol import Failure
from console.text import printable
from store.waits import StoreUncertain

log = logging.getLogger("pilothouse.approvals")

Plan = tuple[list[PlannedRule], list[RuleEdit], Provenance | None]


def _config_path(core: Core) -> Path:
    return Path(core.config.cfg.user_file or core.paths.config_file)


def _unapplied_edit(core: Core, path: Path) -> str | None:
    """Why the config file is not the one in force, or None. A rule saved into it loads the
    whole file: an edit the daemon has not taken on the record yet (a reload not yet run, or
    one whose record failed) would come into force with it, unrecorded (review s33)."""
    try:
        now: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        now = None
    if now == core.config.cfg.user_file_sha256:
        return None
    return (f"{path} has changes that are not in force yet (a reload is pending, or its record "
            "failed: `pilothouse status` says which); saving a rule into it now would put them "
            "in force unrecorded")


async def approvals_list(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    rows = []
    for req in core.inbox.pending(arg(args, "run", str, None)):
        row = req.to_dict()
        row["expires_in"] = max(0.0, (req.timeout_s or core.inbox.timeout_s) - row["age"])
        rows.append(row)
    return rows


def _profile_plan(core: Core, req: Request, allow: bool, pattern: str | None) -> Plan:
    """The rules a profile-scope decision writes (all of them), the file edit, and the stricter
    rule that would override them. The same plan makes the preview and the save. Reads the
    config file: call it in a thread."""
    if why := req.why_no_grants(pattern):  # the same reasons a grant is not made
        raise Failure("no-rule", f"request {req.id} cannot become rules: {why}",
                      "decide it once, or pass --pattern WORDS")
    patterns = [pattern] if pattern else list(req.grant_patterns)
    try:
        planned = plan(req.profile, req.kind, patterns, allow)
    except ValueError as exc:
        raise Failure("bad-pattern", f"pattern {patterns[0]!r}: {exc}") from None
    path = _config_path(core)
    try:
        edits = [preview_all(path, [(p.profile, p.section, p.list_name, p.rule) for p in planned])]
    except PolicyEditError as exc:
        raise Failure("cannot-save-rule", str(exc)) from None
    if why := _unapplied_edit(core, path):  # after the preview: a file that would not load says so
        raise Failure("cannot-save-rule", why, "run `pilothouse reload` (or undo the edit), "
                      "then decide again")
    override = overridden_by(core.config.cfg.profile(req.profile), req.kind, req.subject, planned)
    return planned, edits, override


def _preview_result(planned: list[PlannedRule], edits: list[RuleEdit],
                    override: Provenance | None, owner: bool = True) -> dict[str, Any]:
    first = edits[0]
    return {"file": str(first.path), "profile": first.profile, "section": first.section,
            "list": first.list_name, "rule": first.rule, "changed": any(e.changed for e in edits),
            "diff": "".join(e.diff_with(3) if owner else e.for_approver() for e in edits),
            "lines": [p.line() for p in planned],
            "overridden_by": override.to_dict() if override else None}


def _refuse_overridden(override: Provenance) -> None:
    raise Failure("rule-overridden", f"this rule would never take effect: {override.describe()} is "
                  "stricter and still decides it, so nothing was saved",
                  "decide with --scope run, a duration or global (a grant outranks an ask rule), "
                  "or change that rule in your config")


def _pattern(args: Args, what: str, scope: Scope | None = None) -> str | None:
    """The words a grant or rule holds instead of the request's own (None: its own). Refused
    where they would not be what was given (h192): an empty pattern was read as none, and made
    the request's own grant cover added words too (exact only without one); scope once makes
    no grant, and dropped a pattern unsaid."""
    pattern = arg(args, "pattern", str, None)
    if pattern is not None and not pattern.strip():
        raise Failure("bad-pattern", f"an empty pattern names no command; {what}",
                      "leave --pattern out to decide the request's own command, or give the "
                      "words to grant")
    if pattern is not None and scope is not None and scope.kind == "once":
        raise Failure("bad-pattern", "a pattern is kept by a grant, and scope once makes none, "
                      f"so it would be dropped; {what}",
                      "add --scope run (or a duration, profile or global) to keep it, or leave "
                      "--pattern out to decide this request alone")
    return pattern


async def approval_preview(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """Every rule a profile-scope decision would write, and where, before it is saved; and the
    stricter rule that would override them, if one would."""
    # The diff quotes the owner's config file around the edit (a setenv value, [audit] targets):
    # a watcher, who may not save a rule, gets no preview (the table: approvers_only), and an
    # approver sees only the lines the edit changes (review h135: a watcher read
    # `OWNER_TOKEN = "..."` in its context).
    req = _shown_request(core, args, "nothing was previewed")
    allow, pattern = arg(args, "allow", bool), _pattern(args, "nothing was previewed")
    planned, edits, override = await asyncio.to_thread(_profile_plan, core, req, allow, pattern)
    return _preview_result(planned, edits, override, peer.role == "operator")


async def approval_covers(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    """The other pending requests a decision with this scope (and pattern) would answer too,
    before it is made: each whole, with whether it would be allowed."""
    req = _shown_request(core, args, "nothing was listed")
    covered = core.inbox.would_answer(req.id, arg(args, "allow", bool),
                                      arg(args, "scope", str, "once"),
                                      _pattern(args, "nothing was listed"))
    return [{**req.to_dict(), "allow": allow} for req, allow in covered]


def _shown_request(core: Core, args: Args, what: str) -> Request:
    """The request under args' id, and the one the person was shown: with `created_at` (when
    the shown one was asked), another request that has taken its id since is refused. Ids are
    four letters and come back (review s21); a preview or a list of what a grant covers must
    not be about the new one either (review h186)."""
    request_id = arg(args, "id", str)
    shown_at = arg(args, "created_at", (int, float), None)
    req = _request(core, request_id)
    if shown_at is not None and shown_at != req.created_at:
        raise Failure("unknown-request", f"request {request_id} is not the one you were shown: that "
                      f"one is closed, and its id now names another request; {what}",
                      "read the new one (`pilothouse approvals`), then decide it")
    return req


def _request(core: Core, request_id: str) -> Request:
    req = core.inbox.get(request_id)
    if req is None:
        raise Failure("unknown-request", f"no approval request {request_id!r}",
                      "`pilothouse approvals` lists the pending ones")
    return req


def write_rules(path: Path, planned: Sequence[PlannedRule], in_force: str | None) -> RuleEdit:
    """Every planned rule into the file in one write, under the file's lock, fsynced: all of
    them or none (blocking), and only into the file in force (sha256 `in_force`, read again
    under the lock). Returns the edit, for `undo`."""
    return apply_all(path, [(p.profile, p.section, p.list_name, p.rule) for p in planned],
                     expect_sha256=in_force)


async def _take_back(edit: RuleEdit, why: Exception) -> str:
    """Undo a written rule whose record failed; what to tell the person either way."""
    if isinstance(why, StoreUncertain):  # it may yet land: the history may show it saved
        unrecorded = (f"its record in the audit history is not confirmed ({why}); the history "
                      "may yet show the rule saved though it is not in the file")
    else:
        unrecorded = f"the change could not be recorded in the audit history ({why})"
    try:
        await asyncio.to_thread(undo, edit)
    except PolicyEditError as exc:
        return (f"the rule is in {edit.path} but {unrecorded}, and {exc}; it is not in force, "
                "and would be at the next reload")
    return (f"the rule was not saved: {unrecorded}, so {edit.path} is back as it was. The "
            "decision and its grant were recorded and stand. The daemon's log says why the store "
            "failed; once it records again (room on its disk, then a restart), save the rule "
            "again")


async def _save_planned(core: Core, peer: Peer, planned: list[PlannedRule],
                        request_id: str) -> dict[str, Any]:
    """Write exactly the planned rules, record one policy.changed (the same shape a reload
    records), then load the file again. Reported saved only once the file is durable."""
    path = _config_path(core)
    saved: dict[str, Any] = {"file": str(path), "lines": [p.line() for p in planned]}
    async with core.reloader.lock:  # the file watcher waits: this is one change, not two
        if why := await asyncio.to_thread(_unapplied_edit, core, path):  # edited since the plan
            return saved | {"error": f"the rule was not saved: {why}; run `pilothouse reload`, "
                                     "then save it again"}
        try:
            edit = await asyncio.to_thread(write_rules, path, planned,
                                           core.config.cfg.user_file_sha256)
        except PolicyEditError as exc:
            return saved | {"error": str(exc)}
        try:
            await core.store.record_security(  # recorded before it takes effect
                "policy.changed", actor=peer.user,
                text=f"{peer.user} saved {len(planned)} rule(s) to {path}: " + "; ".join(saved["lines"]),
                data={"cause": "profile-rule", "files": [str(path)], "diff": saved["lines"],
                      "profile": planned[0].profile, "request_id": request_id},
            )
        except Exception as exc:  # not recorded, or not confirmed: fail closed either way
            log.error("policy.changed for a saved rule not recorded (or not confirmed); taking "
                      "it out: %s", exc)
            return {"lines": saved["lines"], "error": await _take_back(edit, exc)}
        try:
            await core.reloader.take_written_file(edit.new_text)
        except Exception as exc:  # the grant is in force anyway; say why the file did not load
            saved["reload_error"] = str(exc)
    return saved


async def approval_decide(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    request_id = arg(args, "id", str)
    allow = arg(args, "allow", bool)
    scope = arg(args, "scope", str, "once")
    try:
        parsed = parse_scope(scope)
    except ValueError as exc:
        raise Failure("bad-scope", str(exc)) from None
    pattern = _pattern(args, "nothing was decided", parsed)
    made = ("saves a rule into the daemon owner's config" if parsed.kind == "profile"
            else "makes a grant over every run, the owner's too")
    await _standing_is_owners(
        core, peer, "approval.decide", parsed,
        f"decide with scope {parsed.kind}", f"it {made}", "nothing was decided",
        "decide it once, for this run (--scope run) or for a while (--scope 10m), or ask the "
        "owner to make the rule")
    # The request as the person was shown it (the console sends when it was asked).
    req = _shown_request(core, args, "nothing was decided")
    planned: list[PlannedRule] | None = None
    if parsed.kind == "profile" and req.state == "pending":
        # Refuse before deciding. The plan reads the file: in a thread, like the save.
        planned, _, override = await asyncio.to_thread(_profile_plan, core, req, allow, pattern)
        if override is not None:
            _refuse_overridden(override)
    if core.inbox.get(request_id) is not req:  # closed and replaced while the rule was planned
        raise Failure("unknown-request", f"request {request_id} closed while its rule was "
                      "planned, and its id may name another request now; nothing was decided")
    result = await core.inbox.decide(request_id, allow, peer.user, scope, pattern=pattern)
    saved = None
    if planned:
        saved = await _save_planned(core, peer, planned, request_id)
    return {
        "request_id": result.request_id, "allow": result.allow, "actor": result.actor,
        "scope": result.scope, "decided_at": result.decided_at,
        "provenance": result.provenance.to_dict(), "describe": result.provenance.describe(),
        "grants": [g.to_dict() for g in result.grants], "note": result.note,
        "also_decided": list(result.also_decided), "saved": saved,
    }


async def grants_list(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    return [g.to_dict() for g in core.grants.list()]


async def grant_revoke(core: Core, peer: Peer, args: Args, send: Send) -> Any:
    grant_id = arg(args, "id", str)
    # Looked for before the record: any id at all was recorded as revoked (review s17).
    found = next((g for g in core.grants.list() if g.id == grant_id), None)
    if found is None:
        raise Failure("unknown-grant", f'no live grant "{printable(grant_id, 40)}"',
                      "`pilothouse grants` lists them")
    # Unmaking the owner's standing policy is changing it, as making it is: an approver
    # revoked a global deny, and the owner's later runs were asked again (h183).
    await _standing_is_owners(
        core, peer, "grant.revoke", Scope(found.scope), f"revoke grant {grant_id}",
        f"its scope is {found.scope}", "it still applies",
        "ask the owner to revoke it; a grant of one run or for a while you may")
    try:
        await core.store.record_security("grant.revoked", actor=peer.user,
                                         text=f"{peer.user} revoked grant {grant_id}",
                                         data={"grant_id": grant_id})
    except StoreUncertain as exc:  # its row may still land, or may not
        grant = next((g for g in core.grants.list() if g.id == grant_id), None)
        if grant is not None and grant.effect == "deny":  # revoking a deny gives power
            raise Failure("record-failed", f"grant {grant_id} still applies: it is a deny grant, "
                          f"and the record of its revoke is not confirmed ({exc}); the history "
                          "may yet show it revoked", "revoke it again once the store records "
                          "(the daemon log says why it is stuck)") from None
        core.grants.revoke(grant_id)  # taking an allow away needs no record to be safe
        raise Failure("record-failed", f"grant {grant_id} was revoked, but the record of it "
                      f"is not confirmed and may still land ({exc})",
                      "the daemon log says why the store is stuck") from None
    grant = core.grants.revoke(grant_id)
    if grant is None:  # it ended while the revoke was recorded (its run, its time)
        raise Failure("unknown-grant", f"grant {grant_id} ended before it was revoked",
                      "`pilothouse grants` lists the live ones")
    return grant.to_dict()


async def _standing_is_owners(core: Core, peer: Peer, op: str, scope: Scope, act: str,
                              why: str, kept: str, hint: str) -> None:
    """A rule in the owner's file or a grant over every run is the owner's policy, theirs to
    make and take away, as reloading it is (h179, h183); an approver answers requests, runs
    and whiles. Anyone else's try is refused and recorded."""
    if scope.standing and peer.role != "operator":
        await record_denied(core, peer, op, scope.kind)
        raise Failure("not-allowed", f"{peer.user} may not {act} (role: {peer.role}): {why}, "
                      f"and standing rules are the daemon owner's alone; {kept}", hint)


OPS: OpTable = {
    "approvals.list": Op(approvals_list),
    "approval.preview": Op(approval_preview, approvers_only=True),
    "approval.covers": Op(approval_covers),
    "approval.decide": Op(approval_decide, decides=True),
    "grants.list": Op(grants_list),
    "grant.revoke": Op(grant_revoke, decides=True),
}

