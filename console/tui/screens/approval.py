"""One approval request in full, and the keys to decide it.

y once · r this run · t N minutes · p an allow rule for the profile · e everywhere · n deny once ·
N a forbid (exec) or deny (network) rule for the profile (p, e, N: the daemon owner's alone). The
key labels name the list the rule is written to; a profile rule is previewed first, every line of
it, and one that a stricter rule would override is named with that rule, offering a decision that
does take effect instead. After a decision: the next pending request, or back. If someone else
decides it first (another console, the CLI), this screen says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from console.client.sync import ClientError
from console.text import COVERED_BY_DENY, shown
from console.tui.decided import decision_toast, scope_words
from console.tui.notes import NotesLine
from console.tui.preview import preview_body
from console.tui.screens.base import PilotScreen, ScrollsBody
from console.tui.screens.dialogs import ConfirmScreen, PromptScreen
from console.tui.seen import PAGED, SeenRows
from console.tui.state import Change
from widgets.format import printable
from widgets.panels import ApprovalCard, review_grid

MAX_MINUTES = 7 * 24 * 60
# The command in the N-minutes prompt: wrapped whole up to here, past it cut with a mark (the
# card behind shows it whole), so the minutes field and the buttons stay on an 80x24 screen.
PROMPT_SUBJECT_MAX = 300
DENY_LIST = {"exec": "forbid", "network": "deny"}  # where "deny for the profile" writes its rule


def check_minutes(value: str) -> str | None:
    if not value.isdigit() or not 1 <= int(value) <= MAX_MINUTES:
        return f"a whole number of minutes from 1 to {MAX_MINUTES}"
    return None


class ApprovalScreen(ScrollsBody, PilotScreen):
    SCROLL_BODY = "#approval-body"
    BINDINGS = [
        Binding("y", "decide('once', True)", "Allow once", id="approve_once"),
        Binding("r", "decide('run', True)", "This run", id="approve_run"),
        Binding("t", "timed", "N min", id="approve_timed", show=False),
        Binding("p", "profile(True)", "Allow rule for the profile", id="approve_profile", show=False),
        Binding("e", "everywhere", "Everywhere", id="approve_global", show=False),
        Binding("n", "decide('once', False)", "Deny", id="deny_once"),
        Binding("N", "profile(False)", "Forbid (exec) or deny (network) rule for the profile",
                id="deny_profile", show=False),
        Binding("c", "copy", "Copy the command or host", id="approval_copy", show=False),
        # j and k only: down and up scroll the card (as the help says), and on a card that fit
        # the screen they switched to another request (review h198).
        Binding("j", "move(1)", "Next request", id="approval_next", show=False),
        Binding("k", "move(-1)", "Previous request", id="approval_prev", show=False),
        Binding("g", "scroll_body('home')", "Top of the card", id="approval_top", show=False),
        Binding("G", "scroll_body('end')", "Bottom of the card", id="approval_bottom", show=False),
        Binding("escape", "back", "Back", id="back"),
    ]

    def __init__(self, request_id: str | None = None) -> None:
        super().__init__()
        self.request_id = request_id
        self._decided: set[str] = set()  # by this console, so their resolution is no surprise
        # The request the card moved on to by itself (the one shown was closed elsewhere, or
        # withdrawn by its agent): a y aimed at the one that went must not allow it.
        self._unchosen: str | None = None
        # The card's rows that have been on the screen for the request shown: it is allowed
        # only once every row has been (its end may be 50 rows down).
        self._seen = SeenRows()
        # The request y paged through (it showed more instead of deciding): the key that then
        # allows it is one beat of a rhythm, and the next beat is not about the next request.
        self._paged: str | None = None
        self._busy = False
        self._keys_shown = ""
        # A second ask (a row's y typed ahead of the card) can come before the widgets exist:
        # it names the request, and on_ready shows it (CI s39: NoMatches stopped the console).
        self._ready = False

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="approval-body"):
            yield ApprovalCard(id="card")
        yield NotesLine(id="approval-notes")  # every note while the card shows: never over it
        yield Static(id="approval-keys")
        yield Static(id="approval-status")

    def on_ready(self) -> None:
        named = self.request_id
        if named not in self.ph.state.approvals:
            oldest = self._next()
            self.request_id = oldest["id"] if oldest else self.request_id
            if named is not None and oldest is not None:
                # Closed before this card listened (between its push and its compose): moved
                # on by itself, as on_change does, not as if the person had chosen this one.
                self._unchosen = self.request_id
                self.notify(f"Request {printable(named)} is no longer pending: it closed before "
                            "its card opened. This is another request.", severity="warning")
        body = self.query_one("#approval-body", VerticalScroll)
        body.border_title = "Approval request"
        self.query_one(ApprovalCard).on_drawn = self._seen.drew
        self._ready = True
        self._show()

    # --- showing -------------------------------------------------------------------------------

    @property
    def request(self) -> dict[str, Any] | None:
        return self.ph.state.approvals.get(self.request_id or "")

    def _show(self) -> None:
        if not self._ready:
            return
        state = self.ph.state
        req = self.request
        now = self.ph.now()
        ids = list(state.approvals)
        pos = (ids.index(req["id"]) + 1, len(ids)) if req else (0, len(ids))
        self.query_one(ApprovalCard).show(
            req, now=now, expires_in=state.expires_in(req, now) if req else None,
            position=pos, timeout=state.timeout_s)
        self._keys_help(req)
        self.sub_title = f"approval {self.request_id}" if req else "no approval pending"

    def _keys_help(self, req: dict[str, Any] | None) -> None:
        """The profile keys are labelled by the list their rule is written to."""
        k = self.ph.key_for
        stricter = DENY_LIST.get(str((req or {}).get("kind")), "deny")
        own = "" if self.ph.state.standing_refused() is None else " (owner's)"
        text = Text()
        for key, words in ((k("approve_once", "y"), "allow once"), (k("approve_run", "r"), "this run"),
                           (k("approve_timed", "t"), "N minutes"),
                           (k("approve_profile", "p"), f"profile: allow rule{own}"),
                           (k("approve_global", "e"), f"everywhere{own}"),
                           (k("deny_once", "n"), "deny once"),
                           (k("deny_profile", "N"), f"profile: {stricter} rule{own}"), ("esc", "back")):
            text.append(f" {key} ", style="bold reverse")
            text.append(f" {words}  ")
        if text.plain != self._keys_shown:  # called every second: repaint only on a change
            self._keys_shown = text.plain
            self.query_one("#approval-keys", Static).update(text)

    def _status(self, text: str) -> None:
        if not self._ready:
            return
        self.query_one("#approval-status", Static).update(Text(printable(text)))

    def on_tick(self, now: float) -> None:
        self._show()

    def on_change(self, change: Change) -> None:
        if change.topic == "resolved" and change.key == self.request_id and change.key not in self._decided:
            req = (change.event or {}).get("request") or {}
            # Who, or else how: "cancelled by cancelled" said nothing of why (review h186).
            prov = req.get("provenance") or {}
            how = (f"by {printable(req['decided_by'])}" if req.get("decided_by") else
                   f"({printable(prov.get('text') or prov.get('kind') or 'by the daemon', 200)})")
            self.notify(f"Request {change.key} was {printable(req.get('state', 'closed'))} {how} "
                        "before you decided.", severity="warning")
            self._advance()
            self._unchosen = self.request_id if self.request is not None else None
        elif (change.topic == "approvals" and change.event is None and change.key == self.request_id
              and self.request is None and change.key not in self._decided):
            # Gone from the pending set with no resolution heard (a poll, a resync after dropped
            # events, a reconnect): the card read "No request pending" while others were.
            self.notify(f"Request {printable(change.key)} is no longer pending.", severity="warning")
            self._advance()
            self._unchosen = self.request_id if self.request is not None else None
        elif change.topic == "approvals":
            self._show()

    # --- moving ---------------------------------------------------------------------------------

    def _next(self) -> dict[str, Any] | None:
        for req in self.ph.state.approvals.values():
            if req["id"] not in self._decided:
                return req
        return None

    def _advance(self) -> None:
        nxt = self._next()
        if nxt is None:
            if self.app.screen is self:  # another screen may have opened over this one meanwhile
                self.app.pop_screen()
            return
        self.request_id = nxt["id"]
        self._status("")
        self._show()

    def action_copy(self) -> None:
        req = self.request
        if req is not None:
            # An agent's controls never reach the clipboard as they would act when pasted (an
            # ESC [201~ ends a terminal's bracketed paste, and the lines after it run at once:
            # review s31, helper 105): shown as the card shows them, and said so.
            subject = str(req.get("subject") or "")
            seen = shown(subject)  # the card's own words: ⟨ESC⟩, ⟨LF⟩ (review s31, helper 108)
            self.ph.copy(seen, escaped=seen != subject)

    def show_request(self, request_id: str) -> None:
        if request_id in self.ph.state.approvals:
            self.request_id = request_id
            self._unchosen = None
            self._status("")
            self._show()

    def action_move(self, step: int) -> None:
        ids = [i for i in self.ph.state.approvals if i not in self._decided]
        if not ids:
            return
        pos = ids.index(self.request_id) if self.request_id in ids else -1
        self.request_id = ids[(pos + step) % len(ids)]
        self._unchosen = None
        self._status("")
        self._show()

    # --- deciding -------------------------------------------------------------------------------

    def _target(self) -> dict[str, Any] | None:
        req = self.request
        if req is None:
            self.notify("No request pending.", severity="warning")
        elif self._busy:
            return None
        elif req["id"] in self.ph.deciding:  # sent from the palette or a row: one decision
            self.notify(f"A decision on request {req['id']} was already sent from this console.",
                        severity="warning")
            return None
        return req

    def _may_allow(self, req: dict[str, Any]) -> bool:
        """An allow key (y, r, t, p, e) on the card decides only a request the person has seen:
        not one the card moved to by itself, and only once all of it has been on the screen
        (a long command's first screen can look whole: `cmd # =====`, its next line 50 rows
        down), counted once the card holding it has been drawn (keys typed ahead come before
        the layout: j y measured the next request by the last one's rows). Otherwise it shows
        more, says so, and decides nothing."""
        if not self._ready:  # its widgets not built yet: nothing of it can have been seen
            return False
        card = self.query_one(ApprovalCard)
        if (card.drawn != ApprovalCard.identity(req) or card.drawn != card.holds
                or self.ph.input_time < card.drawn_at):  # typed before it showed
            self.notify(f"Request {req['id']} was not yet on the screen when this key was "
                        "typed: nothing was decided. Read it, then y allows it.",
                        severity="warning")
            return False
        if req["id"] == self._unchosen:
            self._unchosen = None  # now seen: the next y is about this request
            self.notify(f"The card moved on by itself to request {req['id']}, not seen before "
                        "this key: nothing was decided. Read it, then y allows it.",
                        severity="warning")
            return False
        body = self.query_one("#approval-body", VerticalScroll)
        if not self._seen.page_on(body, (card.holds, card.size.width), card.size.height):
            self._paged = req["id"]
            # Under the card, not a toast: one was drawn over the rows this y just scrolled in
            # (review h198), which then counted as seen.
            self._status(PAGED)
            return False
        return True

    def action_decide(self, scope: str, allow: bool) -> None:
        req = self._target()
        if req is not None and (not allow or self._may_allow(req)):
            self._decide(req, allow, scope)

    def action_timed(self) -> None:
        req = self._target()
        if req is None or not self._may_allow(req):  # its prompt shows the command cut
            return

        def chosen(value: str | None) -> None:
            if value:
                self._decide(req, True, f"{int(value)}m")

        self.app.push_screen(
            PromptScreen("Allow for how long?",
                         f"Minutes to allow {printable(req.get('kind'))} "
                         f"{shown(req.get('subject'), PROMPT_SUBJECT_MAX)} in run "
                         f"{printable(req.get('run_id'))}:",
                         "10", check=check_minutes), chosen)

    def action_everywhere(self) -> None:
        req = self._target()
        # Its question names the kind and the subject only: a file's change, the agent's
        # other input, where a host resolves are on the card alone, which must have been read.
        if req is None or self._owners(req) or not self._may_allow(req):
            return
        body = Text(f"Allow {printable(req.get('kind'))} ")
        body.append(shown(req.get("subject")), style="bold")  # whole: the widest yes there is
        body.append(" for every run and every profile (a global grant, until the daemon restarts)?")

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide(req, True, "global")

        self.app.push_screen(ConfirmScreen("Allow everywhere?", body, yes="Allow everywhere",
                                           danger=True), answered)

    def _owners(self, req: dict[str, Any]) -> bool:
        """A standing rule (p, N, e) is the daemon owner's: a teammate is told, nothing sent."""
        if why := self.ph.state.standing_refused():
            self.notify(why, title=f"Request {req['id']}: not decided", severity="warning")
        return why is not None

    def action_profile(self, allow: bool) -> None:
        req = self._target()
        # Its preview shows the rules it saves, not the request its yes also allows now.
        if req is not None and not self._owners(req) and (not allow or self._may_allow(req)):
            # Under way from the key: a y or n typed after p (one read) is handled while the
            # preview is on its way, and decided the request its confirmation then asked about.
            self._busy = True
            self._preview(req, allow)

    @work(group="approval", exclusive=True)
    async def _preview(self, req: dict[str, Any], allow: bool) -> None:
        try:
            scope = await self._preview_confirmed(req, allow)
        finally:
            self._busy = False
        if scope is not None:
            self._decide(req, allow, scope)

    async def _preview_confirmed(self, req: dict[str, Any], allow: bool) -> str | None:
        """The profile rule's preview, then its question: the scope a yes decides with, or None."""
        try:
            edit = await self.ph.source.call("approval.preview", id=req["id"], allow=allow,
                                             created_at=req.get("created_at"))
        except ClientError as exc:
            self.ph.report(exc)
            return None
        body = preview_body(edit, allow)
        override = edit.get("overridden_by")
        if override and override.get("rule_list") != "ask":
            # nothing but editing that rule lets this through (no grant outranks it): say so
            self.ph.report(f"this rule would never take effect: {override.get('text')} is "
                           "stricter and still decides it, so nothing was saved\n"
                           "change that rule in your config, or decide this request once",
                           title="Not saved")
            return None
        if override:  # an ask rule outranks a profile rule, not a grant: offer the grant
            title = f"The rule would not work in profile {printable(edit.get('profile'))}"
            yes_words, scope = "Allow for this run instead", "run"
            danger = True  # not what the key asked for: No has the focus
        else:
            title = (f"Save {printable(edit.get('list'))} rule(s) for profile "
                     f"{printable(edit.get('profile'))} and {'allow' if allow else 'deny'}?")
            yes_words, scope, danger = "Save and decide", "profile", not allow
        yes = await self.app.push_screen_wait(ConfirmScreen(title, body, yes=yes_words, danger=danger))
        return scope if yes else None

    async def _covered_confirmed(self, shown: dict[str, Any], allow: bool, scope: str) -> bool:
        """A grant of this scope also answers the other pending requests it covers: they are
        listed whole, and decided only on a yes. True when none are covered."""
        try:
            covered = await self.ph.source.call("approval.covers", id=shown["id"], allow=allow,
                                                scope=scope, created_at=shown.get("created_at"))
        except ClientError as exc:
            self.ph.report(exc)
            return False
        if not covered:
            return True
        verb = "allows" if allow else "denies"
        parts: list[Any] = [Text(f"Deciding {shown['id']} {scope_words(scope, covered[0])} also "
                                 f"{verb} each of these, as shown:")]
        for req in covered:  # whole, as its own card shows it: each is decided unseen otherwise
            parts.append(Text(""))
            parts.append(review_grid(req, str(req.get("id"))))
            if req.get("allow") != allow:
                parts.append(Text(COVERED_BY_DENY, style="italic"))
        body = Group(*parts)
        return bool(await self.app.push_screen_wait(ConfirmScreen(
            f"Decide {len(covered) + 1} requests?", body, yes=f"Decide all {len(covered) + 1}",
            danger=allow)))

    def _decide(self, req: dict[str, Any], allow: bool, scope: str) -> None:
        """Decide `req`, the request as the person saw it (on the card, in a dialog)."""
        request_id = str(req["id"])
        # Under way from now, not from when the worker first runs: the keys of a burst (y held
        # down, n then y) are handled before it does, and each started a decision of its own.
        if not self.ph.take_decision(request_id):  # the palette or a row sent one already
            return
        self._busy = True
        self._send_decision(req, allow, scope)

    @work(group="approval-decide")
    async def _send_decision(self, seen: dict[str, Any], allow: bool, scope: str) -> None:
        request_id = str(seen["id"])
        under_way: list[bool] = []  # holds True once the decision is on its way to the daemon
        try:
            await self._sent_decision(seen, allow, scope, under_way)
        except Exception as exc:  # any failure: said, the request decidable again
            self._decided.discard(request_id)
            self.ph.release_decision(request_id)
            self._status("")
            self.ph.report(exc)
        finally:
            # A worker that ends in any way frees the card: busy for good, every key ignored.
            self._busy = False
            if not under_way:  # cancelled, or not confirmed, before it was sent
                self.ph.release_decision(request_id)

    async def _sent_decision(self, seen: dict[str, Any], allow: bool, scope: str,
                             under_way: list[bool]) -> None:
        request_id = str(seen["id"])
        if scope != "once" and not await self._covered_confirmed(seen, allow, scope):
            return
        now = self.ph.state.approvals.get(request_id)
        # The daemon decides by id, and ids come back (4 letters; any after it restarts): a
        # dialog open on a request that closed meanwhile would decide the new one under its id.
        if now is not None and ApprovalCard.identity(now) != ApprovalCard.identity(seen):
            self.notify(f"Request {request_id} is now another request, not the one shown when "
                        "this was asked: nothing was decided. Read it, then decide.",
                        severity="warning")
            return
        asked = now or {"id": request_id}  # gone once decided
        self._status(f"sending {'allow' if allow else 'deny'} ({scope}) for {request_id}...")
        # Marked before sending: its resolution may arrive before the answer, and is this
        # console's own decision, not another's (nor a reason to move the card on by itself).
        self._decided.add(request_id)
        under_way.append(True)
        try:
            # When it was asked, too: the daemon decides by id, and refuses another request
            # that took the id since (ids come back).
            result = await self.ph.source.call("approval.decide", id=request_id, allow=allow,
                                               scope=scope, created_at=seen.get("created_at"))
        except ClientError as exc:
            self._busy = False
            self.ph.release_decision(request_id, exc)
            self.ph.report(exc)
            if exc.code in ("already-decided", "unknown-request"):
                self._advance_from(request_id)
            else:
                self._decided.discard(request_id)
                self._status("")
            return
        self._busy = False
        self._decided.add(request_id)
        message = decision_toast(asked, result, scope)
        saved = result.get("saved") or {}
        if saved.get("file"):
            message += f"\nRule {saved.get('rule')!r} saved to {saved['file']}"
        if saved.get("error") or saved.get("reload_error"):
            self.ph.report(f"the rule was not saved: {saved.get('error') or saved.get('reload_error')}")
        if result.get("also_decided"):
            message += f"\nAlso answered: {', '.join(result['also_decided'])}"
            self._decided.update(result["also_decided"])
        self.notify(printable(message, 400).replace("⏎", "\n"), title="Decision recorded")
        self._advance_from(request_id)

    def _advance_from(self, request_id: str) -> None:
        """On to the next request once `request_id` is decided; after one that y paged
        through, the next is one the person did not choose (as if it moved on by itself).
        A card the person moved to another request while the answer was on its way stays
        there: moved on, it would take the key they typed for the one they chose."""
        if self.request_id != request_id and self.request is not None:
            self._status("")
            return
        self._advance()
        if self._paged == request_id and self.request is not None:
            self._unchosen = self.request_id

