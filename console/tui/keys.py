"""The console's keys: checking a [keys] remap before it is used, and the rows of the help.

A remap is refused when its key is already another action's key where both are active (the
same screen, or anywhere for the app's own keys): pressing it would do only one of the two,
silently. The refusal names the file and line of the remap and both actions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.binding import Binding, BindingType

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

_HEADER = re.compile(r"^\s*\[\s*([^\]\[]+?)\s*\]\s*(?:#.*)?$")


def _keys_of(binding: Binding, remap: dict[str, str]) -> list[str]:
    keys = remap.get(binding.id, binding.key) if binding.id else binding.key
    return [k.strip() for k in keys.split(",") if k.strip()]


def remap_line(files: list[Path], action: str) -> tuple[Path | None, int | None]:
    """The file and line that set `action` in [keys] (the last file wins, as when loading)."""
    found: tuple[Path | None, int | None] = (files[-1] if files else None, None)
    key = re.compile(r"""^\s*["']?""" + re.escape(action) + r"""["']?\s*=""")
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        table = ""
        for number, line in enumerate(lines, start=1):
            header = _HEADER.match(line)
            if header:
                table = header.group(1).strip()
            elif table == "keys" and key.match(line):
                found = (path, number)
    return found


def check_keymap(keys: dict[str, str], files: list[Path],
                 scopes: dict[str, list[BindingType]]) -> tuple[dict[str, str], list[str]]:
    """The remaps that can be used, and why each other one was refused. `scopes`: where
    bindings are active together (the app's binding_scopes())."""
    accepted = dict(keys)
    problems: list[str] = []
    for action, key in keys.items():
        for scope, bindings in scopes.items():
            others = [b for b in bindings if isinstance(b, Binding)]
            if not any(b.id == action for b in others):
                continue
            clash = next((b for b in others if b.id and b.id != action
                          and key in _keys_of(b, accepted)), None)
            if clash is None:
                continue
            path, line = remap_line(files, action)
            where = f"{path}:{line}" if line else str(path or "the config")
            problems.append(
                f'{where}: [keys] {action} = "{key}" is refused: "{key}" is already {clash.id} '
                f'({clash.description or clash.action}) on the {scope} screen. Pick another key '
                f"for {action} or move {clash.id} too (see docs/policy.md, Keys).")
            accepted.pop(action, None)
            break
    return accepted, problems


def help_rows(app: App[Any], screen: Screen[Any]) -> list[tuple[str, str, str]]:
    """(key, what it does, binding id): this screen's keys first, then the focused widget's,
    then the app's, then the generic ones (cursor, scrolling) last."""
    groups: list[list[tuple[str, str, str]]] = [[], [], [], []]
    seen: set[tuple[str, str]] = set()
    for key, active in screen.active_bindings.items():
        b = active.binding
        what = b.tooltip or b.description or b.action
        if (what, b.id or "") in seen:
            continue
        seen.add((what, b.id or ""))
        row = (app.get_key_display(b) or key, what, b.id or "-")
        if not b.id:
            groups[3].append(row)
        elif active.node is screen:
            groups[0].append(row)
        elif active.node is app:
            groups[2].append(row)
        else:
            groups[1].append(row)
    groups[2].append(("ctrl+p or :", "command palette (runs, approvals, screens, themes)", "palette"))
    return [row for group in groups for row in group]


def screen_scopes(app: list[BindingType]) -> dict[str, list[BindingType]]:
    """Where bindings are active together: each screen with the widgets it holds (a key remap
    must not clash within one). `app`: the app's own bindings, active on every screen. (The
    screens are imported here: keys is imported by the app, before them.)"""
    from console.tui.screens.approval import ApprovalScreen
    from console.tui.screens.base import PilotScreen
    from console.tui.screens.bench import BenchScreen
    from console.tui.screens.dashboard import DashboardScreen
    from console.tui.screens.dialogs import ConfirmScreen
    from console.tui.screens.gpu import GpuScreen
    from console.tui.screens.help import HelpScreen
    from console.tui.screens.history import HistoryScreen
    from console.tui.screens.policy import PolicyScreen
    from console.tui.screens.run_detail import RunScreen
    from widgets.keyed_table import KeyedTable
    from widgets.output_log import OutputLog
    from widgets.tables import ApprovalInbox

    base = list(PilotScreen.BINDINGS)
    table = list(KeyedTable.BINDINGS)
    return {
        "dashboard": app + base + list(DashboardScreen.BINDINGS) + table + list(ApprovalInbox.BINDINGS),
        "run": app + base + list(RunScreen.BINDINGS) + list(OutputLog.BINDINGS),
        "approval": app + base + list(ApprovalScreen.BINDINGS),
        "history": app + base + list(HistoryScreen.BINDINGS) + table,
        "policy": app + base + list(PolicyScreen.BINDINGS) + table,
        "GPU": app + base + list(GpuScreen.BINDINGS) + table,
        "benchmark": app + base + list(BenchScreen.BINDINGS),
        "help": app + list(HelpScreen.BINDINGS),
        "question": app + list(ConfirmScreen.BINDINGS),
    }
