"""Telling a person that something waits: the terminal bell and a desktop notification.

The notification is an escape sequence written through the app's driver: OSC 9 (iTerm2,
Windows Terminal, kitty, WezTerm, foot...) and OSC 777 (rxvt-unicode, VTE terminals such as
GNOME Terminal). Terminals that know neither ignore both. Inside tmux the sequences are wrapped
for passthrough (tmux 3.3+ with `set -g allow-passthrough on`).
Switch it off with PILOTHOUSE_DESKTOP_NOTIFY=0 or the "toggle desktop notifications" key.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable

from widgets.format import printable


def osc_sequences(title: str, body: str, *, tmux: bool = False) -> str:
    def clean(text: str, semicolon: str = ";") -> str:
        # no control characters (they could end the sequence); in OSC 777 no ";" (its
        # separator), marked, never turned into another letter: `a, b` reads as one command
        # where `a; b` is two (review h162)
        return printable(text, 200).replace(";", semicolon)

    seqs = [f"\x1b]9;{clean(title)}: {clean(body)}\x07",
            f"\x1b]777;notify;{clean(title, '⟨semicolon⟩')};{clean(body, '⟨semicolon⟩')}\x07"]
    if tmux:
        seqs = ["\x1bPtmux;" + s.replace("\x1b", "\x1b\x1b") + "\x1b\\" for s in seqs]
    return "".join(seqs)


class Notifier:
    def __init__(self, write: Callable[[str], None], bell: Callable[[], None], *,
                 desktop: bool | None = None) -> None:
        self._write = write
        self._bell = bell
        if desktop is None:
            desktop = os.environ.get("PILOTHOUSE_DESKTOP_NOTIFY", "1").lower() not in ("0", "no", "off", "false")
        self.desktop = desktop
        self.tmux = bool(os.environ.get("TMUX"))
        self.sent: deque[str] = deque(maxlen=50)  # what was sent, newest last (for tests and help)

    def approval(self, count: int, summary: str, run_id: str) -> None:
        self._bell()
        body = f"run {run_id} asks: {summary}" + (f" ({count} pending)" if count > 1 else "")
        self.sent.append(body)
        if self.desktop:
            self._write(osc_sequences("Pilothouse", body, tmux=self.tmux))
