"""A pending request as a person reviews it before deciding: what runs (or where it connects),
the file change itself, every other word of the agent's, and why it asks.

One list of rows serves every place a person decides from: the console's approval card
(widgets/panels.py) and `pilothouse approve`/`deny` in a shell (console/cli/approvals.py). Each
value is already escaped (console.text): controls and invisible characters are named, never
sent to a terminal. A diff is kept as lines, for each view to colour.

Claude Code's Edit, MultiEdit and Write requests carry the change in the hook's tool_input
(file_path with old_string/new_string, edits, or content); the rows show that change as a
unified diff, not the raw fields, and nothing of the input may hide behind the diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from console.text import printable, shown

TYPE_CHECKING = False  # typing's, without importing typing: `approve` loads this module
if TYPE_CHECKING:
    from typing import Any

INDENT_KEPT = 40  # leading blanks shown as they are (code indentation); longer runs are counted
PREVIEW_MAX = 2000
DETAIL_MAX = 16 * 1024  # a request's detail is at most 16 KiB (daemon/requests.py)

# The tool_input keys each file tool's diff shows; any other key is shown beside it.
DIFF_KEYS = {"Edit": ("file_path", "old_string", "new_string", "replace_all"),
             "MultiEdit": ("file_path", "edits"), "Write": ("file_path", "content")}
EVERY = "(replace_all: every occurrence of the old text in the file is replaced, not one)"
# Detail keys the rows show under their own labels (the daemon's lookup), not as the agent's.
_SHOWN_APART = ("cwd", "addresses", "method", "target", "host", "port")

# How a view may style a row's value.
PLAIN, SUBJECT, AGENT, DIFF = "plain", "subject", "agent", "diff"


@dataclass(frozen=True)
class ReviewRow:
    label: str
    value: str  # escaped; for DIFF, the escaped diff lines joined by newlines
    style: str = PLAIN


def cut_by_hook(tool_input: dict[str, Any]) -> bool:
    """The hook's own mark for an input past its budget: exactly truncated and preview. An
    input with other keys beside a `truncated` of its own is shown as what it is."""
    return set(tool_input) == {"truncated", "preview"} and tool_input["truncated"] is True


def _old_new(tool: str, tool_input: dict[str, Any]) -> list[tuple[str, str, bool]] | None:
    if tool == "Edit":
        return [(str(tool_input.get("old_string") or ""), str(tool_input.get("new_string") or ""),
                 bool(tool_input.get("replace_all")))]
    if tool == "MultiEdit" and isinstance(tool_input.get("edits"), list):
        return [(str(e.get("old_string") or ""), str(e.get("new_string") or ""),
                 bool(e.get("replace_all"))) for e in tool_input["edits"] if isinstance(e, dict)]
    if tool == "Write":
        return [("", str(tool_input.get("content") or ""), False)]
    return None


def change_diff(detail: dict[str, Any]) -> list[str] | None:
    """The request's change as unified-diff lines (unescaped), or None when it is not a file
    change. A Write shows its whole new content (the file's current text is not in the request)."""
    tool = detail.get("tool_name")
    tool_input = detail.get("tool_input")
    if not isinstance(tool, str) or not isinstance(tool_input, dict):
        return None
    if cut_by_hook(tool_input) and tool in ("Edit", "MultiEdit", "Write"):
        preview = str(tool_input.get("preview") or "")[:PREVIEW_MAX]
        return [f"(the change is too large to show; the first {len(preview)} characters of it:)",
                preview]
    pairs = _old_new(tool, tool_input)
    if pairs is None:
        return None
    path = str(tool_input.get("file_path") or "?")
    out: list[str] = []
    for old, new, every in pairs:
        out.extend([EVERY] if every else [])
        out.extend(line.rstrip("\n") for line in difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile="/dev/null" if tool == "Write" else path, tofile=path, lineterm="\n"))
    return out or ["(no change: the old and new text are the same)"]


def other_input(detail: dict[str, Any]) -> dict[str, Any]:
    """The file tool's input its diff does not show (nothing may hide behind the diff)."""
    tool_input = detail.get("tool_input")
    keys = DIFF_KEYS.get(str(detail.get("tool_name")), ())
    if not isinstance(tool_input, dict) or cut_by_hook(tool_input):
        return {}
    return {k: v for k, v in tool_input.items() if k not in keys}


def escaped_line(line: str) -> str:
    """One diff line escaped; its mark and indentation kept as they are."""
    mark, rest = line[:1], line[1:]
    indent = min(len(rest) - len(rest.lstrip(" ")), INDENT_KEPT)
    return shown(mark) + rest[:indent] + shown(rest[indent:])


def provenance_text(prov: dict[str, Any] | None) -> str:
    """Who or what decided: a rule (and where), a grant, a person, a timeout."""
    if not prov:
        return "-"
    if prov.get("text"):
        return printable(prov["text"])
    by = prov.get("by") or prov.get("person") or prov.get("kind")
    return printable(by or "-")


def _agents(value: Any) -> str:
    return shown(value if isinstance(value, str) else repr(value), DETAIL_MAX)


def review_rows(req: dict[str, Any]) -> list[ReviewRow]:
    """What a person must see to decide `req` (a row of approvals.list), in order. Nothing is
    cut to a screen's width: the end of a host name or of a command is often what decides."""
    detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
    kind = str(req.get("kind") or "")
    rows = [ReviewRow("kind", shown(kind))]
    if kind == "network":
        rows.append(ReviewRow("destination", shown(req.get("subject")), SUBJECT))
        addrs = detail.get("addresses") or []
        rows.append(ReviewRow("resolves to", shown(", ".join(map(str, addrs)) or "-")))
        if detail.get("method") or detail.get("target"):
            target = f"{detail.get('method') or ''} {detail.get('target') or ''}".strip()
            rows.append(ReviewRow("target", shown(target)))
    else:
        rows.append(ReviewRow("command" if kind == "exec" else "subject",
                              shown(req.get("subject")), SUBJECT))
        if detail.get("cwd"):
            rows.append(ReviewRow("in", shown(detail["cwd"])))
        if req.get("title") and req.get("title") != req.get("subject"):
            rows.append(ReviewRow("agent says", shown(req["title"]), AGENT))
    change = change_diff(detail)
    if change is not None:
        rows.append(ReviewRow("change", "\n".join(escaped_line(line) for line in change), DIFF))
        if rest := other_input(detail):
            rows.append(ReviewRow("other input (agent)", _agents(rest), AGENT))
    for key, value in sorted(detail.items()):
        if key in _SHOWN_APART or (key == "tool_input" and change is not None):
            continue
        # The key is the agent's too: escaped like its value, and never a bare label.
        rows.append(ReviewRow(f"{shown(key, 30)} (agent)", _agents(value), AGENT))
    prov = req.get("rule_provenance")
    rows.append(ReviewRow("why it asks", provenance_text(prov) if prov else "no rule matched"))
    return rows
