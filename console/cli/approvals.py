"""`pilothouse approvals`, `approve`, `deny`, `grants` and `revoke`: the approval inbox from a
shell."""

from __future__ import annotations

import sys

from console.cli.context import Context, friendly, json_option, pass_ctx
from console.cli.output import confirm, echo, fail, labelled, table, visible
from console.cli.parsing import argument, command, option, quick_exit
from console.cli.value_types import float_range

TYPE_CHECKING = False  # typing's, without importing typing: every CLI start would pay for it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


REQUEST_COLUMN = 100  # the table's request column; a longer request is cut there, and said so


def _show_pending(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("no pending requests")
        return
    from console.text import request_line

    table([[r["id"], f"{r['age']:.0f}s", f"{r['expires_in']:.0f}s", r["run_id"], r["kind"],
            request_line(r, REQUEST_COLUMN)] for r in rows],
          ["ID", "AGE", "EXPIRES", "RUN", "KIND", "REQUEST"])
    cut = sum(1 for r in rows if len(request_line(r)) > REQUEST_COLUMN)
    if cut:
        echo(f"{cut} of {len(rows)} requests are cut to fit here: `pilothouse approvals --full` "
             "shows each whole, and `pilothouse approve ID` shows its request whole before "
             "deciding")


def show_request(req: dict[str, Any]) -> None:
    """One request whole, as the console's approval card shows it (console.text.review_rows): what a
    person decides from a shell is what will run, never a line cut to fit."""
    from console.text import review_rows

    echo(f"request {visible(req.get('id'))}  run {visible(req.get('run_id'))}  "
         f"profile {visible(req.get('profile'))}")
    labelled((row.label, row.value.split("\n")) for row in review_rows(req))


def _show_full(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("no pending requests")
    for i, req in enumerate(rows):
        echo() if i else None
        show_request(req)


@command()
@quick_exit
@option("--run", "run_id", metavar="ID", help="Only this run's requests.")
@option("--full", is_flag=True, help="Each request whole (the change, every input), not a table.")
@json_option
@pass_ctx
@friendly
def approvals(c: Context, run_id: str | None, full: bool) -> None:
    """Pending approval requests, oldest first."""
    with c.client() as client:
        rows = client.call("approvals.list", run=run_id)
    c.emit(rows, _show_full if full else _show_pending)


def preview_text(edit: dict[str, Any]) -> str:
    """What a profile rule would write, every line escaped where it holds anything unprintable:
    the rule's words are the agent's (a bidi override would show one rule and save another)."""
    lines = [f"this writes to {visible(edit['file'])}:", *(f"  {visible(line)}" for line in edit["lines"])]
    # The file's lines end at \n only: splitlines() also cut at U+2028 and such, which a rule's
    # words may hold, and showed one rule as two.
    diff = (edit["diff"] or "(the rules are already there)").removesuffix("\n")
    lines.extend(visible(line) for line in diff.split("\n"))
    if edit.get("section") == "exec" and edit.get("list") == "allow":
        from console.text import RULE_IS_WIDER  # here: `approvals --json` never loads it

        lines.append(f"({RULE_IS_WIDER})")
    if edit.get("overridden_by"):
        lines.append(f"but it would never take effect: {visible(edit['overridden_by']['text'])} is stricter")
    return "\n".join(lines)


def _show_decision(result: dict[str, Any], allow: bool) -> None:
    verb = "approved" if allow else "denied"
    echo(f"{verb} {visible(result['request_id'])} ({visible(result['describe'])})")
    for g in result["grants"]:
        echo(f"  grant {visible(g['id'])}: {visible(g['effect'])} {visible(g['kind'])} "
             f"{visible(repr(g['pattern']))} ({visible(g['scope'])})")
    if result.get("note"):
        echo(f"  note: {visible(result['note'])}")
    if result.get("also_decided"):
        echo(f"  also answered: {visible(', '.join(result['also_decided']))}")
    saved = result.get("saved") or {}
    if saved.get("file"):
        echo(f"  saved to {visible(saved['file'])}")
    if saved.get("error") or saved.get("reload_error"):
        echo(f"  warning: {visible(saved.get('error') or saved.get('reload_error'))}", err=True)


def _show_covered(covered: list[dict[str, Any]], allow: bool) -> None:
    if not covered:
        return
    from console.text import COVERED_BY_DENY

    echo(f"\nthis also {'allows' if allow else 'denies'} {len(covered)} other pending "
         f"request{'s' if len(covered) > 1 else ''}, each as shown:")
    for req in covered:
        echo()
        show_request(req)
        if req["allow"] != allow:  # a deny grant in force outranks this approval for it
            echo(f"  {'':<12} ({COVERED_BY_DENY})")


def _review(c: Context, client: Any, request_id: str, allow: bool, yes: bool,
            scope: str, pattern: str | None) -> float | None:
    """Show the request whole before deciding it. A person at a terminal confirms an approval
    of what they now see (a denial needs no question: it is the safe answer; a profile rule
    asks once, after its preview); a program, or --yes, decides without the question.
    Returns when the shown request was made, for the decision to name it."""
    if c.json:
        return None
    pending = {r["id"]: r for r in client.call("approvals.list")}
    req = pending.get(request_id)
    if req is None:
        _not_pending(client, request_id)
    show_request(req)
    if pattern is not None:  # wider than the request: the person sees what else it covers
        echo(f"  {'rule':<12} {visible(pattern)} (instead of the request's own; scope {visible(scope)})")
    covered = []
    if scope != "once":  # a grant answers the other pending requests it covers, unasked
        covered = client.call("approval.covers", id=request_id, allow=allow, scope=scope,
                              pattern=pattern, created_at=req["created_at"])
        _show_covered(covered, allow)
    question = (f"approve these {len(covered) + 1} requests, exactly as shown?" if covered
                else "approve this request, exactly as shown?")
    if allow and not yes and scope != "profile" and sys.stdin.isatty() and not confirm(question):
        fail("not confirmed: nothing was decided", "answer y to approve it, or add --yes",
             error="not-confirmed")
    return req["created_at"]


def _not_pending(client: Any, request_id: str) -> NoReturn:
    """ID named no pending request when this command looked: nothing was shown, so nothing is
    decided. Sent by the id alone, the decision decided whatever held the id by then: an
    agent's next request, given it meanwhile (ids come back), allowed unseen (review h186)."""
    from console.client.sync import ClientError

    if client.call("hello").get("role") not in ("operator", "approver"):
        # A watcher is told (and the daemon records the try) as for any decision: the daemon
        # refuses it by role before it looks at the id; no request was asked at -1.
        client.call("approval.decide", id=request_id, allow=False, scope="once", created_at=-1.0)
    try:
        why = client.call("policy.why", id=request_id)
    except ClientError:
        why = {}
    prov = why.get("provenance") or {}
    if why.get("state") == "pending":  # asked after the look: perhaps another request
        said = f"request {request_id} was not pending when this command looked"
    elif prov.get("kind") == "person":
        said = f"request {request_id} was already decided by {prov.get('person')} ({why['state']})"
    elif why:
        said = f"request {request_id} was already closed: {why.get('describe')}"
    else:
        said = f"no pending request {request_id}"
    fail(f"{said}; nothing was decided",
         "`pilothouse approvals` lists the pending ones; run this again to see one and decide it",
         error="unknown-request")


# The scope words that make a standing rule: the daemon owner's alone (review h179); console.
# protocol's STANDING_SCOPES and "everywhere", parse_scope's word for global. Spelled here: the
# listing commands' start loads no enum (tests/core/test_cli_start.py); a test holds it to them.
STANDING_SCOPE_WORDS = ("profile", "global", "everywhere")


def _owners_scope(client: Any, scope: str) -> None:
    """Refuse a standing scope to a teammate before the request is reviewed or a rule previewed:
    the daemon would refuse the decision (and records the try); nothing here is asked first."""
    if scope.strip().lower() not in STANDING_SCOPE_WORDS:
        return
    me = client.call("hello")
    if me.get("role") != "operator":
        fail(f"scope {scope} is the daemon owner's alone: it makes a standing rule (profile: "
             "saved to the owner's config; global: over every run), and you are "
             f"{visible(me.get('user'))} ({visible(me.get('role'))}); nothing was decided",
             "decide it once, for this run (--scope run) or for a while (--scope 10m), "
             "or ask the owner to make the rule", error="not-allowed")


def _decide(c: Context, request_id: str, allow: bool, scope: str, pattern: str | None,
            yes: bool, preview_only: bool, asked_at: float | None) -> None:
    shown_at = None
    if pattern is not None and scope.strip().lower() == "once":
        # Said before the request is shown and a person asked to confirm it: the daemon
        # refuses it too (a pattern with no grant to keep it was dropped unsaid).
        fail("--pattern is kept by a grant, and --scope once makes none, so it would be "
             "dropped; nothing was decided",
             "add --scope run (or a duration, profile or global) to keep it, or leave --pattern "
             "out to decide this request alone", code=2, error="bad-args")
    with c.client() as client:
        if not preview_only:  # a preview writes nothing: an approver may show the owner a rule
            _owners_scope(client, scope)
            # The decision names the request shown: while the person read it, it may have
            # closed (timed out, cancelled) and its four-letter id come back on another one.
            shown_at = _review(c, client, request_id, allow, yes, scope, pattern)
            if asked_at is not None and shown_at not in (None, asked_at):
                fail(f"request {request_id} was asked at {shown_at}, not at {asked_at}: it is "
                     "another request under the same id; nothing was decided",
                     "`pilothouse approvals --json` gives each request's created_at",
                     error="unknown-request")
            # A program (--json) saw the request in `approvals --json`: --asked-at names it.
            shown_at = asked_at if shown_at is None else shown_at
        if scope == "profile":
            edit = client.call("approval.preview", id=request_id, allow=allow, pattern=pattern,
                               created_at=shown_at)  # None: the daemon takes it as not given
            if preview_only:
                c.emit(edit, lambda e: echo(preview_text(e)))
                return
            c.say(preview_text(edit))
            if edit.get("overridden_by"):
                fail(f"this rule would never take effect: {edit['overridden_by']['text']} is "
                     "stricter and still decides it; nothing was saved",
                     "decide with --scope run, a duration or global (a grant outranks an ask rule), "
                     "or change that rule in your config", error="rule-overridden")
            if not yes:
                # With --json the preview is not shown, and a question would land in the JSON.
                if c.json or not sys.stdin.isatty():
                    fail("a profile rule is saved only when confirmed",
                         "add --yes to confirm; `--preview` shows the rules it would write",
                         error="confirm")
                if not confirm("save these rules?"):
                    fail("not confirmed: nothing was saved", "answer y to save, or add --yes",
                         error="not-confirmed")
        elif preview_only:
            fail("--preview shows what --scope profile would write", "add --scope profile",
                 error="bad-args")
        result = client.call("approval.decide", id=request_id, allow=allow, scope=scope,
                             pattern=pattern, created_at=shown_at)
    c.emit(result, lambda r: _show_decision(r, allow))


_SCOPE_HELP = ("once, run, a duration (10m, 2h), profile (saved to the config) or global (every "
               "run until the daemon stops); profile and global are the daemon owner's only")
_PREVIEW_HELP = "With --scope profile: show every rule it would write, and save nothing."
_ASKED_AT_HELP = ("The request's created_at from `approvals --json`: decide only that request, "
                  "not another that took its id since (for programs; --json decides by the id "
                  "alone without it).")


def _decision_options(pattern_help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The arguments approve and deny share (they differ in what --pattern does)."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        for add in (friendly, pass_ctx, json_option, quick_exit,
                    option("--preview", "preview_only", is_flag=True, help=_PREVIEW_HELP),
                    option("--yes", "-y", is_flag=True,
                           help="Do not ask (at a terminal, approving asks first; so does "
                                "saving a profile rule)."),
                    option("--pattern", metavar="WORDS", help=pattern_help),
                    option("--scope", default="once", show_default=True, help=_SCOPE_HELP),
                    # A time since the epoch: NaN was sent on, refused as 'created_at'.
                    option("--asked-at", metavar="TIME", type=float_range(0),
                           help=_ASKED_AT_HELP),
                    argument("request_id", metavar="ID"), command()):
            fn = add(fn)
        return fn
    return wrap


@_decision_options("The rule to grant, instead of the request's own exact command; it covers "
                   "added words too.")
def approve(c: Context, request_id: str, scope: str, pattern: str | None, yes: bool,
            preview_only: bool, asked_at: float | None) -> None:
    """Approve a pending request."""
    _decide(c, request_id, True, scope, pattern, yes, preview_only, asked_at)


@_decision_options("The rule to deny, instead of the request's own.")
def deny(c: Context, request_id: str, scope: str, pattern: str | None, yes: bool,
         preview_only: bool, asked_at: float | None) -> None:
    """Deny a pending request."""
    _decide(c, request_id, False, scope, pattern, yes, preview_only, asked_at)


def _show_grants(rows: list[dict[str, Any]]) -> None:
    if not rows:
        echo("no grants in force")
        return
    table([[g["id"], g["effect"], g["kind"], g["pattern"], g["scope"], g.get("run_id") or "-",
            g.get("profile") or "-", g.get("decided_by") or "-"] for g in rows],
          ["ID", "EFFECT", "KIND", "PATTERN", "SCOPE", "RUN", "PROFILE", "BY"])


@command()
@quick_exit
@json_option
@pass_ctx
@friendly
def grants(c: Context) -> None:
    """Grants in force (decisions that outlive one request); `revoke ID` ends one."""
    with c.client() as client:
        rows = client.call("grants.list")
    c.emit(rows, _show_grants)


@command()
@quick_exit
@argument("grant_id", metavar="GRANT")
@json_option
@pass_ctx
@friendly
def revoke(c: Context, grant_id: str) -> None:
    """End a grant now (its id from `pilothouse grants`); recorded with who did it."""
    with c.client() as client:
        grant = client.call("grant.revoke", id=grant_id)
    c.emit(grant, lambda g: echo(
        f"revoked grant {g['id']}: {g['effect']} {g['kind']} {visible(g['pattern'])} "
        f"({g['scope']}); what it answered is asked again"))


COMMANDS = (approvals, approve, deny, grants, revoke)
