"""What a person sees of an approval: the exact command or destination, escaped so nothing in it
can hide, with the agent's own words only beside it and marked as the agent's. One function for
every place a request appears (the CLI list, the console's inbox row, banner and card, the
bell/OSC notification, notify_command). Text from a sandbox is untrusted: controls, bidi
overrides and invisible characters are written as names (`⟨ESC⟩`, `⟨U+202E⟩`), runs of blanks
as their count (`⟨300 spaces⟩`), and a cut says how much it cut; `⟨` and `⟩` are escaped.
`review_rows` is a pending request as a person reviews it (the card, `pilothouse approve`): what
runs or where it connects, a file tool's change as a diff, every other input, why it asks. Run
output goes through `neutralise`: colour (SGR) kept, every other control shown in caret or \\x
notation, so OSC 52, OSC 8, cursor moves and DCS are visible text, never obeyed.
"""

from __future__ import annotations

import time
import unicodedata

from console.cells import invisible_letter, width_disputed

TYPE_CHECKING = False  # typing's, without importing typing: `run --wait` and `ps` load this module
if TYPE_CHECKING:
    from typing import Any

_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LF", "\r": "CR", "\x1b": "ESC", "\x7f": "DEL"}
_BLANK_RUN = r" {3,}"
AGENT_WORDS_MAX = 60


def _pattern(source: str) -> Any:
    """source compiled (re keeps what it compiled). re is imported here, on first need: text
    that is all printable, most lines of most runs, never needs it, and `import re` is about
    4 ms of a CLI start (`run --wait`, issue 17)."""
    import re

    return re.compile(source)


def hides(ch: str) -> bool:
    """A character a person cannot see as itself: Cc control, Cf format (bidi, zero-width,
    tags), Co/Cn private/unassigned, Cs surrogates, Zl/Zp separators, Zs spaces other than the
    plain one (they look like a space and are not one), letters or marks drawn as nothing, and
    characters a terminal draws at another width than the layout counts (they move a row's end)."""
    cat = unicodedata.category(ch)
    return (cat[0] == "C" or cat in ("Zl", "Zp") or (cat == "Zs" and ch != " ")
            or not ch.isprintable() or invisible_letter(ch) or (ch > "\x7f" and width_disputed(ch)))


_REORDERS: dict[str, bool] = {}  # its answers, 4096 at most (functools' cache costs CLI starts)


def reorders(ch: str) -> bool:
    """What run output must not pass through as is beyond the C0/C1 controls: format characters
    (bidi overrides reorder, zero-width ones hide), line separators, letters drawn as nothing, and
    characters drawn at a width the layout does not count (h203). Other spaces stay."""
    if (known := _REORDERS.get(ch)) is None:
        known = (unicodedata.category(ch) in ("Cf", "Zl", "Zp", "Cs") or invisible_letter(ch)
                 or width_disputed(ch))
        if len(_REORDERS) < 4096:  # per character, on every non-ASCII line of a run's output
            _REORDERS[ch] = known
    return known


def _escape_char(ch: str) -> str:
    if ch in _NAMES:
        return f"⟨{_NAMES[ch]}⟩"
    if ch in "⟨⟩" or hides(ch):
        return f"⟨U+{ord(ch):04X}⟩"
    return ch


def clipped(text: str, most: int) -> str:
    """`text`, or its first `most` characters and a mark saying how many more there were: what
    a record keeps of something a sandbox wrote, whose length the sandbox chooses."""
    if len(text) <= most:
        return text
    return f"{text[:most]} [... {len(text) - most} more characters not shown]"


def cut(text: str, limit: int | None) -> str:
    """Text already shown, cut to `limit` characters with a mark saying how many were cut
    (never inside an escape)."""
    if limit is None or len(text) <= limit:
        return text
    keep = limit
    while keep > 0:
        opened = text.rfind("⟨", 0, keep)
        if opened > text.rfind("⟩", 0, keep):
            keep = opened  # not half an escape: `⟨U+20` would read as something else
        mark = f"…⟨{len(text) - keep} more⟩"
        if keep + len(mark) <= limit:
            return text[:keep] + mark
        keep -= 1
    return "…"[:limit]


def destination(host: Any, port: Any) -> str:
    """`host:port` as a person reads where a connection goes: an IPv6 host in brackets, as the
    card writes it (`::1:8443` is the address ::1:8443, another host, on no port: review h166)."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def shown(text: Any, limit: int | None = None) -> str:
    """Untrusted text as one line a person can trust: every character visible, blank runs
    counted, a cut marked with how much was cut."""
    raw = "" if text is None else str(text)
    escaped = "".join(_escape_char(ch) for ch in raw)
    collapsed = _pattern(_BLANK_RUN).sub(lambda m: f" ⟨{len(m.group())} spaces⟩ ", escaped)
    return cut(collapsed, limit)


def outside_ascii(text: str, most: int = 8) -> str | None:
    """Each visible character of `text` outside ASCII, once, with its code point and name; None
    when there is none. A letter of another script can look like an ASCII one (`g\u0456t` is not
    git), as a host name's can (hosts are shown as punycode for that)."""
    if text.isascii():
        return None
    chars = list(dict.fromkeys(ch for ch in text if ord(ch) > 0x7F and not hides(ch)))
    if not chars:
        return None
    named = [f"{ch} U+{ord(ch):04X} {unicodedata.name(ch, 'with no name')}" for ch in chars[:most]]
    more = f"; and {len(chars) - most} more" if len(chars) > most else ""
    return "; ".join(named) + more


def names_letters(req: dict[str, Any]) -> str | None:
    """The "not ASCII" row of a request under review (review_rows): its subject's letters
    outside ASCII, named. A one-line view (an inbox row, the palette) cannot name them, so a
    request that has them is allowed from its card, never from such a line. (A network
    subject is always ASCII: hosts are asked as punycode.)"""
    if req.get("kind") == "network":
        return None
    return outside_ascii(str(req.get("subject") or ""))


def printable(text: Any, limit: int | None = None) -> str:
    """One line, no control characters (terminal escapes from a sandbox stop here): a newline
    shows as ⏎, any other unprintable character, letter drawn as nothing or character of
    disputed width as �; cut to `limit` with an ellipsis."""
    raw = "" if text is None else str(text)
    if limit is not None:  # only what can be shown is looked at: the rest is an agent's flood
        raw = raw[: max(0, limit) + 1]
    # Letters drawn as nothing, or wider than counted (they push a row's end off: h185), are printable.
    out = raw if raw.isascii() and raw.isprintable() else "".join(
        ch if ch.isprintable() and (ch < "\x80" or not (invisible_letter(ch) or width_disputed(ch)))
        else ("⏎" if ch == "\n" else "�") for ch in raw)
    if limit is not None and len(out) > limit:
        return out[: max(0, limit - 1)] + "…"
    return out


# How Claude Code runs a Bash command, which its words do not say: ph-claude-hook copies each of
# these keys of the call's tool_input into the request's detail when it is a JSON true (and
# refuses a call whose value is neither true nor false), and requests.check_request refuses any
# other value in a request. Each is the daemon's own sentence on the card, never agent's words.
RUN_FLAGS = {
    "run_in_background": ("runs", "in the background: Claude Code does not wait for it to end; it "
                          "goes on running beside the agent's next calls (its output read later)"),
    "dangerouslyDisableSandbox": ("sandbox", "asks Claude Code to run it outside Claude Code's own "
                                  "sandbox (dangerouslyDisableSandbox); Pilothouse's sandbox still applies"),
}
RUN_MARKS = {"run_in_background": "⟨in the background⟩",  # on one line: the inbox row, the CLI
             "dangerouslyDisableSandbox": "⟨Claude Code's sandbox off⟩"}


def run_flags(req: dict[str, Any]) -> list[str]:
    """The RUN_FLAGS keys an exec request carries as true (an exact JSON true, nothing else)."""
    detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
    return [key for key in RUN_FLAGS if req.get("kind") == "exec" and detail.get(key) is True]


def request_line(req: dict[str, Any], limit: int | None = None) -> str:
    """A request as one line: how it runs when that is not as a command's words say (marks `⟨ ⟩`,
    which no escaped text can forge, first so no cut hides them), what will run (and where) or
    where it connects (and the address), then the agent's own words, marked as the agent's. The
    agent's words are cut first."""
    kind = req.get("kind")
    detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
    subject = str(req.get("subject") or "")
    marks = "".join(RUN_MARKS[key] + " " for key in run_flags(req))
    where = ""
    if kind == "network" and detail.get("addresses"):
        where = " → " + ", ".join(str(a) for a in detail["addresses"])
    elif detail.get("cwd"):  # the agent's claim: marked as its words are
        where = f" (agent: in {detail['cwd']})"
    title = str(req.get("title") or "")
    words = f'  (agent says: "{shown(title, AGENT_WORDS_MAX)}")' if title and title != subject else ""
    main = marks + shown(subject) + shown(where)
    if limit is None:
        return main + words
    if len(main) >= limit:
        return cut(main, limit)
    return main + cut(words, limit - len(main)) if len(main) + len(words) > limit else main + words


# Run output: colour kept, every other control shown.
_SGR = r"\x1b\[[0-9;:]*m"
_RESET = "\x1b[0m"
NOTE = "[pilothouse]"  # how the daemon's own lines in a run's output start
AGENT_MARK = "agent:"  # put inside an agent's `[pilothouse]`: `[agent:pilothouse]`


def _visible(code: int) -> str:
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"\\x{code:02x}"


_TABLE = {c: _visible(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
          if c not in (0x09, 0x0A)}


def neutralise(text: str, *, colour: bool = True) -> str:
    """`text` with every control shown, not obeyed; colour kept (or dropped, for a pipe).
    Bidi overrides, characters drawn as nothing or at a disputed width are shown as \\uXXXX too."""
    if text.isprintable() and (text.isascii() or not any(ch > "\x9f" and reorders(ch) for ch in text)):
        return text
    out = []
    pos, coloured = 0, False
    for m in _pattern(_SGR).finditer(text):
        out.append(_shown_controls(text[pos:m.start()]))
        if colour:
            out.append(_unconcealed(m.group()))
            coloured = True
        pos = m.end()
    out.append(_shown_controls(text[pos:]))
    if coloured:  # a line's colours end with it: never carried onto the next (a daemon note)
        out.append(_RESET)
    return "".join(out)


def _unconcealed(sgr: str) -> str:
    """An SGR sequence without `8` (conceal: text drawn as nothing; review s31, helper 105 hid
    the daemon's end notes with it). A colour's own numbers (38;5;8) are kept."""
    params, kept, k = sgr[2:-1].split(";"), [], 0
    while k < len(params):
        p = params[k]
        if p in ("38", "48", "58") and k + 1 < len(params):
            n = {"5": 3, "2": 5}.get(params[k + 1], 1)
            kept += params[k : k + n]
            k += n
            continue
        if not (p and p.lstrip("0") == "8"):
            kept.append(p)
        k += 1
    return f"\x1b[{';'.join(kept)}m" if kept else ""


def as_agents(line: str) -> str:
    """A run's output line from the agent, with `agent:` put inside every text of it that reads
    as the daemon's notes' `[pilothouse]`, wherever it stands (a long line wraps it to a screen
    row's start), through marks drawn as nothing, format characters and letters of other
    scripts that look alike: an agent cannot pass its words off as the daemon's (review s31,
    helpers 105 and 108)."""
    if "]" not in line or (line.isascii() and "\x1b" not in line
                           and "pilothouse]" not in line.lower()):
        return line
    colours = {k for m in _pattern(_SGR).finditer(line) for k in range(*m.span())} \
        if "\x1b" in line else set()  # drawn as nothing between the letters too
    keys, where = [], []  # the line as read (folded), and each folded letter's place in it
    for k, ch in enumerate(line):
        if k in colours:
            continue
        for c in unicodedata.normalize("NFKD", ch) if not ch.isascii() else ch:
            if not c.isascii() and (hides(c) or unicodedata.category(c)[0] == "M"):
                continue  # drawn as nothing (or on the letter before): a mark, a format character
            keys.append(c.lower().translate(_LOOK_ALIKE))
            where.append(k)
    folded, out, last = "".join(keys), [], 0
    found = folded.find("[pilothouse]")
    while found >= 0:
        at = where[found] + 1  # past the `[`
        out += [line[last:at], AGENT_MARK]
        last = at
        found = folded.find("[pilothouse]", found + 1)
    return "".join(out) + line[last:] if out else line


# Letters of other scripts drawn as the letters of `[pilothouse]` (Cyrillic, Greek, dotless i).
_LOOK_ALIKE = str.maketrans({"р": "p", "і": "i", "ı": "i", "ӏ": "l", "о": "o", "ο": "o",
                             "т": "t", "һ": "h", "υ": "u", "ѕ": "s", "е": "e", "ℓ": "l",
                             "ι": "i", "ρ": "p", "τ": "t", "ѵ": "u"})


def controls_shown(text: str) -> str:
    """Every control shown as text (`^[`, colour codes too), bidi and invisible characters as
    \\uXXXX; nothing dropped: what a record's text was, readable and inert (an export)."""
    return text if text.isprintable() and text.isascii() else _shown_controls(text)


def _shown_controls(part: str) -> str:
    part = part.translate(_TABLE)
    if part.isascii():
        return part
    # \\UXXXXXXXX past the BMP: `\\u1f3fb` would read as U+1F3F and a `b`
    return "".join((f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
                   if ch > "\x9f" and reorders(ch) else ch for ch in part)


# Times and sizes as a person reads them: the CLI's tables and the console's widgets alike.


def duration(seconds: float | None) -> str:
    """Compact: 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "-"
    secs = max(0, int(seconds))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02d}s"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def age(ts: float | None) -> str:
    """How long ago an epoch time was, as duration() writes it."""
    return duration(time.time() - ts) if ts else "-"


def size(num: float | int | None) -> str:
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit in ("B", "K") or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.0f}T"


def clock(ts: float | None, *, date: bool = False) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(ts))


# --- a request under review ------------------------------------------------------------------

INDENT_KEPT = 40  # leading blanks shown as they are (code indentation); longer runs are counted
PREVIEW_MAX = 2000

# The tool_input keys each file tool's diff shows; any other key is shown beside it.
DIFF_KEYS = {"Edit": ("file_path", "old_string", "new_string", "replace_all"),
             "MultiEdit": ("file_path", "edits"), "Write": ("file_path", "content"),
             "apply_patch": ("command",)}
# Under a profile's exec allow rule a person is about to save: a rule reads wider than the
# exact grant a run scope makes (review s31, helper 110: `rm -f notes.txt` saved as a rule
# allowed `rm -f notes.txt -r /root`, and nothing said so).
RULE_IS_WIDER = ("a rule also allows the command with more words after it, in any folder; "
                 "--scope run (or a duration) allows exactly this command")
# Beside a covered request that a deny grant in force decides, whatever this approval says.
COVERED_BY_DENY = "denied: a deny grant in force covers it"
EVERY = "(replace_all: every occurrence of the old text in the file is replaced, not one)"
SHARED_YES = ("every connection to this destination that waits on this question, whatever it "
              "sends; the request above is only the first")
# A network request asked with no addresses: the gate asks about a name no address rule could
# allow before it looks the name up (nothing leaks to DNS on a no), or the lookup found none.
NOT_LOOKED_UP = ("none yet: the name is looked up after a yes, and its addresses checked then "
                 "(or it did not resolve)")
# Detail keys the rows show under their own labels (the daemon's lookup), not as the agent's.
_SHOWN_APART = ("cwd", "addresses", "method", "target", "host", "port")

# How a view may style a row's value.
PLAIN, SUBJECT, AGENT, DIFF = "plain", "subject", "agent", "diff"


class ReviewRow:
    """One row of a request under review. (A plain class: `ps` and `run --wait` load this
    module, and dataclasses costs milliseconds to import.)"""

    __slots__ = ("label", "style", "value")

    def __init__(self, label: str, value: str, style: str = PLAIN) -> None:
        self.label = label
        self.value = value  # escaped; for DIFF, the escaped diff lines joined by newlines
        self.style = style


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
    if cut_by_hook(tool_input) and tool in DIFF_KEYS:
        preview = str(tool_input.get("preview") or "")[:PREVIEW_MAX]
        return [f"(the change is too large to show; the first {len(preview)} characters of it:)",
                preview]
    if tool == "apply_patch" and isinstance(tool_input.get("command"), str):
        return tool_input["command"].removesuffix("\n").split("\n")  # Codex's patch: a diff of its own
    pairs = _old_new(tool, tool_input)
    if pairs is None:
        return None
    import difflib  # here, not at the top: `ps` and `run --wait` load this module

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
    # Whole: the daemon bounds a request's detail (16 KiB of JSON), and a cut here hid the end
    # of an input the hook sent whole, its escapes making it longer (review s31, helper 108).
    return shown(value if isinstance(value, str) else repr(value))


def review_rows(req: dict[str, Any]) -> list[ReviewRow]:
    """What a person must see to decide `req` (a row of approvals.list), in order. Nothing is
    cut to a screen's width: the end of a host name or of a command is often what decides."""
    detail = req.get("detail") if isinstance(req.get("detail"), dict) else {}
    kind = str(req.get("kind") or "")
    rows = [ReviewRow("kind", shown(kind))]
    if kind == "network":
        rows.append(ReviewRow("destination", shown(req.get("subject")), SUBJECT))
        addrs = detail.get("addresses") or []
        rows.append(ReviewRow("resolves to", shown(", ".join(map(str, addrs))) if addrs else NOT_LOOKED_UP))
        if detail.get("method") or detail.get("target"):
            target = f"{detail.get('method') or ''} {detail.get('target') or ''}".strip()
            rows.append(ReviewRow("first request", shown(target)))
            # The gate asks once per destination at a time: every connection waiting on the
            # question shares its answer, whatever request line each sends.
            rows.append(ReviewRow("a yes answers", SHARED_YES))
    else:
        rows.append(ReviewRow("command" if kind == "exec" else "subject",
                              shown(req.get("subject")), SUBJECT))
        if (letters := names_letters(req)) is not None:
            rows.append(ReviewRow("not ASCII", letters))
        rows.extend(ReviewRow(*RUN_FLAGS[key]) for key in run_flags(req))
        if req.get("title") and req.get("title") != req.get("subject"):
            rows.append(ReviewRow("agent says", shown(req["title"]), AGENT))
    if detail.get("cwd"):  # where the agent says it is: its claim, nothing checks it
        rows.append(ReviewRow("in (agent)", shown(detail["cwd"]), AGENT))
    change = change_diff(detail)
    if change is not None:
        rows.append(ReviewRow("change", "\n".join(escaped_line(line) for line in change), DIFF))
        if rest := other_input(detail):
            rows.append(ReviewRow("other input (agent)", _agents(rest), AGENT))
    flags = run_flags(req)
    for key, value in sorted(detail.items()):
        if key in _SHOWN_APART or key in flags or (key == "tool_input" and change is not None):
            continue
        # The key is the agent's too: escaped like its value, and never a bare label.
        rows.append(ReviewRow(f"{shown(key, 30)} (agent)", _agents(value), AGENT))
    prov = req.get("rule_provenance")
    rows.append(ReviewRow("why it asks", provenance_text(prov) if prov else "no rule matched"))
    return rows
