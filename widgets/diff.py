"""A file change as a person reviews it: a unified diff, every line escaped (console.text).

Claude Code's Edit, MultiEdit and Write requests carry the change itself in the hook's
tool_input (file_path with old_string/new_string, edits, or content); the approval card shows
that change, not the raw fields. The text comes from the agent, so each line goes through the
one display function: controls and invisible characters are named, never sent to the terminal.
"""

from __future__ import annotations

import difflib
from typing import Any

from rich.text import Text

from console.text import shown
from widgets.format import style

INDENT_KEPT = 40  # leading blanks shown as they are (code indentation); longer runs are counted
PREVIEW_MAX = 2000


# The tool_input keys each file tool's diff shows; any other key is shown beside it.
DIFF_KEYS = {"Edit": ("file_path", "old_string", "new_string", "replace_all"),
             "MultiEdit": ("file_path", "edits"), "Write": ("file_path", "content")}
EVERY = "(replace_all: every occurrence of the old text in the file is replaced, not one)"


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


def diff_text(lines: list[str]) -> Text:
    text = Text()
    for i, line in enumerate(lines):
        if i:
            text.append("\n")
        colour = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                  else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        text.append(escaped_line(line), style=style(colour) if colour else "")
    return text
