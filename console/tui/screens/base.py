"""What every screen has: the header, the approvals banner, the link status, the footer.

Screens learn about changes through the app's signals (`changes`, `ticks`) and read the app's
state; they never talk to the daemon except through `app.source` in async workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input

from console.text import names_letters
from console.tui.state import Change
from widgets.panels import ApprovalBanner, LinkStatus
from widgets.tables import ApprovalInbox

if TYPE_CHECKING:
    from console.tui.app import PilothouseApp


def scroll_keys(prefix: str) -> list[BindingType]:
    """j/k, g/G, page up/down for a screen or dialog whose body scrolls (its action_scroll_body):
    the console's keys for moving in a list or a log, the same on a dialog (review h203: the
    help's last rows were out of reach of them at 80x24). `prefix`: the ids' (for [keys])."""
    return [Binding("j", "scroll_body('down')", "Scroll down", show=False, id=f"{prefix}_down"),
            Binding("k", "scroll_body('up')", "Scroll up", show=False, id=f"{prefix}_up"),
            Binding("g", "scroll_body('home')", "Top", show=False, id=f"{prefix}_top"),
            Binding("G", "scroll_body('end')", "Bottom", show=False, id=f"{prefix}_bottom"),
            Binding("pageup", "scroll_body('page_up')", "Page up", show=False, id=f"{prefix}_page_up"),
            Binding("pagedown", "scroll_body('page_down')", "Page down", show=False,
                    id=f"{prefix}_page_down")]


class ScrollsBody:
    """The action of scroll_keys: `SCROLL_BODY` is the selector of what scrolls."""

    SCROLL_BODY = "#dialog-body"

    def action_scroll_body(self, how: str) -> None:
        body = cast(Any, self).query_one(self.SCROLL_BODY, ScrollableContainer)
        getattr(body, f"scroll_{how}")(animate=False)


class AppAccess:
    """Typed access to the app, for screens and modals."""

    @property
    def ph(self) -> PilothouseApp:
        return cast("PilothouseApp", cast(Any, self).app)


class PilotScreen(AppAccess, Screen[None]):
    BINDINGS = [Binding("escape", "back", "Back", id="back")]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⚓")
        yield ApprovalBanner(id="banner")
        yield LinkStatus(id="link")
        yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> Iterable[Widget]:
        return ()

    # The inbox's keys, on whichever screen shows one (the dashboard, a run's screen).
    @on(ApprovalInbox.Review)
    def _review_row(self, event: ApprovalInbox.Review) -> None:
        """y on a row that shows its request cut (or without its change), or on a row not yet
        drawn: the card, not a yes."""
        self.notify(f"{event.why}: here it is whole. y allows it.")
        self.ph.action_open_approval(event.request_id)

    @on(ApprovalInbox.Decide)
    def _decide_row(self, event: ApprovalInbox.Decide) -> None:
        """y / n on the inbox row: allow or deny that request once."""
        req = self.ph.state.approvals.get(event.request_id)
        if req is None:
            self.notify(f"Request {event.request_id} is no longer pending.", severity="warning")
            return
        if ApprovalInbox.row_of(req) != event.shown:  # another request under the id, not yet drawn
            self.notify(f"Request {event.request_id} changed since its row was drawn: here it is "
                        "whole. Nothing was decided.", severity="warning")
            self.ph.action_open_approval(event.request_id)
            return
        if event.allow and names_letters(req) is not None:  # `gіt` reads as git on the row
            self.notify("The request has letters outside ASCII: the card names them. y allows it.")
            self.ph.action_open_approval(event.request_id)
            return
        self.ph.decide(req, event.allow, "once")

    def on_mount(self) -> None:
        for inbox in self.query(ApprovalInbox):
            inbox.input_time = lambda: self.ph.input_time
        self.ph.changes.subscribe(self, self._changed)
        self.ph.ticks.subscribe(self, self._ticked)
        if self.ph.frozen:
            for field in self.query(Input):
                field.cursor_blink = False
        self.show_banner()
        self.show_link()
        self.on_ready()

    def on_ready(self) -> None:
        """Fill the screen from the app's state (subclasses)."""

    def on_change(self, change: Change) -> None:
        """One part of the state changed (subclasses)."""

    def on_tick(self, now: float) -> None:
        """Once a second: ages, countdowns, uptimes (subclasses)."""

    def _changed(self, change: Change) -> None:
        if not self.is_attached:
            return
        if change.topic == "approvals":
            self.show_banner()
        elif change.topic == "link":
            self.show_link()
        self.on_change(change)

    def _ticked(self, now: float) -> None:
        if not self.is_attached:
            return
        self.show_banner()
        self.on_tick(now)

    def show_banner(self) -> None:
        state = self.ph.state
        key = self.ph.key_for("open_approval", "a")
        self.query_one(ApprovalBanner).show(len(state.approvals), state.oldest(), now=self.ph.now(), key=key)

    def show_link(self) -> None:
        state = self.ph.state
        self.query_one(LinkStatus).show(state.connected, state.link_text, state.hello.get("config_error"))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()


class PilotModal(AppAccess, ModalScreen[Any]):
    """A dialog over the current screen; escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal_cancel")]

    def on_mount(self) -> None:
        if self.ph.frozen:
            for field in self.query(Input):
                field.cursor_blink = False

    def action_cancel(self) -> None:
        self.dismiss(None)
