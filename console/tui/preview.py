"""A profile rule's preview, as its confirmation shows it: every line the decision writes, where,
and whether it would take effect."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text

from console.text import RULE_IS_WIDER
from console.wrapping import CONTINUED, Wrapped
from widgets.diff import diff_text
from widgets.format import printable


def preview_body(edit: dict[str, Any], allow: bool) -> Group:
    """Every line the decision writes (as the daemon planned them, nothing else), where, and
    whether it would take effect: a stricter rule that would override it is named."""
    lines = edit.get("lines") or [f"+ {edit.get('profile')} {edit.get('section')} {edit.get('list')} "
                                  f'"{edit.get("rule")}"']
    override = edit.get("overridden_by")
    intro = Text(f"This {'would write' if override else 'writes'} {len(lines)} line(s) to "
                 f"{printable(edit.get('file'))}:")
    # Each rule wrapped with a mark for a space a break takes (review h174): `rm -rf DIR/ ..`
    # broken at its last space read as the rule `rm -rf DIR/..`.
    rules = [Wrapped(Text(printable(line), style="bold"), continued=CONTINUED) for line in lines]
    head = Text()
    if edit.get("section") == "exec" and edit.get("list") == "allow":
        head.append(f"({RULE_IS_WIDER})\n")
    if override:
        head.append("\nbut it would never take effect: ", style="bold")
        head.append(printable(override.get("text") or override.get("rule")), style="bold reverse")
        head.append(" is stricter and still decides it.\n")
        if override.get("rule_list") == "ask":
            head.append("Nothing is saved. A grant outranks an ask rule: allow for this run "
                        "instead (or r, t, e on the card), or change that rule in your config.\n")
        else:
            head.append("Nothing is saved: only changing that rule in your config lets this "
                        "through.\n")
        return Group(intro, *rules, head)
    head.append(f"and {'allows' if allow else 'denies'} this request now.\n")
    diff = edit.get("diff") or ""
    if not edit.get("changed", True) or not diff:
        return Group(intro, *rules, head,
                     Text("(the rule is already there; nothing changes in the file)", style="dim"))
    return Group(intro, *rules, head, diff_text(diff.removesuffix("\n").split("\n")))  # as preview_text

