"""The rules in force, per profile, each with the file and line it came from; and a box to test
a command or a destination against them (the same code the daemon decides with)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input, Select, Static

from console.client.sync import ClientError
from console.protocol import STANDING_SCOPES
from console.tui.screens.base import PilotScreen
from console.tui.screens.dialogs import ConfirmScreen
from widgets.format import clock, decision_text, printable, safe, style
from widgets.keyed_table import Column, KeyedTable

MODES = [("auto", "auto"), ("command", "command"), ("host", "host")]
_HOST = re.compile(r"""^(?:\[[0-9a-fA-F:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|localhost|
                       (?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*)(?::[0-9]{1,5})?$""", re.X)


def looks_like_host(text: str) -> bool:
    """A destination (pypi.org, 127.0.0.9:80, [::1]:443) rather than a command: one word, a
    host name with a dot, an IP address, with or without a port."""
    return bool(_HOST.match(text.strip()))


class RulesTable(KeyedTable):
    COLUMNS = (Column("section", "SECTION", 8, priority=70), Column("list", "LIST", 8, priority=85),
               Column("rule", "RULE", 30, priority=90, min=16),
               Column("source", "FROM", 30, priority=60, min=16, flex=True))

    def put_rule(self, index: int, rule: dict[str, Any]) -> None:
        word = str(rule.get("list") or "")
        shown = decision_text(word) if word in ("allow", "deny", "ask", "forbid") else safe(word)
        rule_text = rule.get("rule") or ""
        if word == "default":
            rule_text = f"default: {rule_text}"
        self.put(str(index), [safe(rule.get("section")), shown, safe(rule_text, "bold"),
                              safe(rule.get("source"))],
                 f"{rule.get('section')} {word} {rule_text} {rule.get('source')}")


class GrantsTable(KeyedTable):
    """Decisions people made that outlive one request (grants.list)."""

    COLUMNS = (Column("id", "ID", 6, priority=100), Column("effect", "EFFECT", 6, priority=90),
               Column("kind", "KIND", 7, priority=55),
               Column("pattern", "PATTERN", 24, priority=85, min=16, flex=True),
               Column("scope", "SCOPE", 7, priority=60), Column("for", "FOR", 12, priority=70),
               Column("by", "BY", 8, priority=40), Column("until", "UNTIL", 8, priority=50))

    def put_grant(self, grant: dict[str, Any]) -> None:
        scope = str(grant.get("scope") or "")
        applies = (f"run {grant.get('run_id')}" if grant.get("run_id") else
                   f"{grant.get('profile')}" if grant.get("profile") else "everything")
        self.put(str(grant["id"]), [
            safe(grant.get("id")), decision_text(grant.get("effect")), safe(grant.get("kind")),
            safe(grant.get("pattern"), "bold"), safe(scope), safe(applies),
            safe(grant.get("decided_by") or "-"), clock(grant.get("expires_at")),
        ], f"{grant.get('pattern')} {scope} {applies} {grant.get('decided_by')}")


class PolicyScreen(PilotScreen):
    BINDINGS = [
        Binding("c", "check", "Test", id="policy_check"),
        Binding("d", "revoke", "Revoke grant", id="policy_revoke"),
        Binding("ctrl+r", "reload", "Reload", id="policy_reload"),
        Binding("escape", "back", "Back", id="back"),
    ]

    def __init__(self, profile: str | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.rules: list[dict[str, Any]] = []

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="policy-top"):
            yield Select([], prompt="profile", allow_blank=True, id="p-profile", compact=True)
            yield Static(id="p-source")
        yield RulesTable(id="rules")
        yield Static("", id="grants-empty", classes="empty")
        yield GrantsTable(id="grants")
        with Horizontal(id="policy-check"):
            yield Select(MODES, value="auto", allow_blank=False, id="p-mode", compact=True)
            yield Input(compact=True, placeholder="a command (pytest -q) or a host (pypi.org:443); enter tests it",
                        id="p-subject")
        yield Static(Text("Type a command or a destination above and press enter.", style="dim"),
                     id="p-result")

    def on_ready(self) -> None:
        self.sub_title = "policy"
        self.load()

    @work(group="policy", exclusive=True)
    async def load(self) -> None:
        try:
            self.rules = await self.ph.source.call("policy.rules")
            grants = await self.ph.source.call("grants.list")
        except ClientError as exc:
            self.ph.report(exc)
            return
        self._grants(grants)
        names = [p["profile"] for p in self.rules]
        select = self.query_one("#p-profile", Select)
        select.set_options([(printable(n), n) for n in names])
        if self.profile not in names:
            self.profile = "demo" if "demo" in names else (names[0] if names else None)
        if self.profile:
            select.value = self.profile
        self._show()

    def _grants(self, grants: list[dict[str, Any]]) -> None:
        table = self.query_one(GrantsTable)
        table.clear_rows()
        for grant in grants:
            table.put_grant(grant)
        table.border_title = f"Grants in force ({len(grants)})"
        empty = self.query_one("#grants-empty", Static)
        empty.display = not grants
        empty.update(Text("No grants in force: decisions with a scope (this run, N minutes, "
                          "everywhere) appear here.", style="dim"))

    def action_revoke(self) -> None:
        table = self.query_one(GrantsTable)
        grant_id = table.selected_key()
        if not grant_id or not table.has_focus:
            self.notify("Select a grant first (tab to the grants table).", severity="warning")
            return
        # A profile rule or a grant everywhere is the owner's to take away too (review h183):
        # a teammate is told why, and nothing is sent.
        scope = table.cell_text(grant_id, "scope")
        if scope in STANDING_SCOPES and self.ph.state.standing_refused():
            self.notify(f"Grant {grant_id} ({scope}) is a standing rule, the daemon owner's "
                        "alone to revoke: ask them. A grant of one run or for a while you may "
                        "revoke.", severity="warning")
            return
        body = Text(f"Revoke grant {grant_id}: {table.cell_text(grant_id, 'effect')} "
                    f"{table.cell_text(grant_id, 'pattern')} ({table.cell_text(grant_id, 'scope')})?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.revoke(grant_id)

        self.app.push_screen(ConfirmScreen("Revoke the grant?", body, yes="Revoke", danger=True),
                             answered)

    @work(group="policy-revoke")
    async def revoke(self, grant_id: str) -> None:
        try:
            await self.ph.source.call("grant.revoke", id=grant_id)
            grants = await self.ph.source.call("grants.list")
        except ClientError as exc:
            self.ph.report(exc)
            return
        self._grants(grants)
        self.notify(f"Grant {grant_id} revoked.")

    def _show(self) -> None:
        table = self.query_one(RulesTable)
        table.clear_rows()
        prof = next((p for p in self.rules if p["profile"] == self.profile), None)
        source = self.query_one("#p-source", Static)
        if prof is None:
            source.update("")
            return
        line = Text()
        line.append(f" sandbox {prof.get('sandbox')}", style=style("bold red") if prof.get("sandbox") == "none" else "")
        if prof.get("sandbox") == "none":
            line.append(" (UNSANDBOXED)", style=style("bold red"))
        line.append(f" · ports {','.join(map(str, prof.get('ports') or []))}")
        line.append(printable(f" · {prof.get('source')}"), style="dim")
        source.update(line)
        for i, rule in enumerate(prof.get("rules") or []):
            table.put_rule(i, rule)
        self.query_one("#rules").border_title = f"Rules in force for {self.profile}"

    @on(Select.Changed, "#p-profile")
    def _profile(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.profile:
            self.profile = event.value
            self._show()

    def action_check(self) -> None:
        self.query_one("#p-subject", Input).focus()

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(RulesTable).focus()
            return
        super().action_back()

    @on(Input.Submitted, "#p-subject")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        subject = event.value.strip()
        if subject:
            mode = self.query_one("#p-mode", Select).value
            self.check(subject, mode == "host" or (mode == "auto" and looks_like_host(subject)))

    @work(group="policy-check", exclusive=True)
    async def check(self, subject: str, host: bool) -> None:
        out = self.query_one("#p-result", Static)
        if not self.profile:
            self.ph.report("no profile to test against")
            return
        args = {"host": subject} if host else {"command": subject}
        try:
            result = await self.ph.source.call("policy.check", profile=self.profile, **args)
        except ClientError as exc:
            self.ph.report(exc)
            return
        text = Text()
        text.append_text(decision_text(result.get("action")))
        text.append(printable(f"  {result.get('kind')} {result.get('subject')} in profile {self.profile}"))
        text.append("\n")
        text.append(printable(result.get("describe") or ""), style="bold")
        if result.get("note"):
            text.append("\n" + printable(result["note"]), style="dim")
        out.update(text)
