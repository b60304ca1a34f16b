"""The line `tmux send-keys` types into a shell, for runners.py: `tmux send-keys -t s 'rm -rf ~'
Enter` types `rm -rf ~` and a newline, which the shell in that pane runs. It was asked, its line
never read (review h165); read as a shell line, a forbid rule refuses it. What the pane's line
held already is not known: the part is still read flat too (unwrap.py, CommandPart.bounded).

As tmux 3.3a reads send-keys' words (`send-keys [-FHlMRX] [-N repeat-count] [-t target-pane]
key ...`, getopt; 3.4 adds -K and -c target-client): each word is a key name (Enter, Space, C-m,
^M; in any case) or typed as it is; -l types every word as it is, -H reads each as a byte in hex.
"""

from __future__ import annotations

import re

# tmux's commands that type into a pane (send-keys, by its alias or a prefix naming it alone),
# and paste-buffer, whose words do not show what it types.
SENDS = {"send-keys", "send", "send-k", "send-ke", "send-key"}
TYPES = SENDS | {"paste-buffer", "pasteb"}
_PER_COMMAND = 4  # send-keys words read in one tmux command
_REPEATS = 4  # of -N's count
_VALUES = "cNt"  # send-keys' options that take a value
# Key names that type a character a shell reads as a blank or the end of a line.
_KEYS = {"enter": "\n", "kpenter": "\n", "c-m": "\n", "^m": "\n", "c-j": "\n", "^j": "\n",
         "space": " ", "tab": "\t", "c-i": "\t", "^i": "\t"}
# bash's readline editing keys (emacs mode), by the key names tmux sends them for
_EDITS = {**dict.fromkeys(("bspace", "c-h", "^h", "c-?", "^?"), "erase-before"),
          **dict.fromkeys(("dc", "delete", "c-d", "^d"), "erase-at"),
          **dict.fromkeys(("left", "c-b", "^b"), "left"), **dict.fromkeys(("right", "c-f", "^f"), "right"),
          **dict.fromkeys(("home", "c-a", "^a"), "home"), **dict.fromkeys(("end", "c-e", "^e"), "end"),
          **dict.fromkeys(("c-k", "^k"), "kill-end"), **dict.fromkeys(("c-u", "^u"), "kill-start"),
          **dict.fromkeys(("c-w", "^w"), "kill-word")}
_MOVES = {"left": lambda at, n: at - 1, "right": lambda at, n: at + 1, "home": lambda at, n: 0,
          "end": lambda at, n: n}
# A word tmux reads as a key name, not text: modifiers (C-, M-, S-, ^) and named keys
_KEY_NAME = re.compile(r"(?i)(?:[CMS]-)+.+|\^.|F\d{1,2}|Up|Down|P(?:age)?Up|P(?:age)?Down|[NP]Page|"
                       r"PgUp|PgDn|IC|Insert|BTab|KP.+|Any|Mouse.*|Wheel.*")


def typed_lines(words: list[str]) -> list[str]:
    """The line each send-keys in a tmux command (`;` between commands) types: from each of the
    first _PER_COMMAND words naming it in a command (one may be an option's value: `tmux -L
    send send-keys ...`), to the command's end. Bounded: a line of 8000 `send a` took seconds,
    each typing the rest of the line (review h168); past them the part is read flat."""
    found, at = [], 1
    while at < len(words):
        end = next((k for k in range(at, len(words)) if words[k] == ";"), len(words))
        sends = [k for k in range(at, end) if words[k] in SENDS][:_PER_COMMAND]
        found += [line for k in sends for line in _typed(words[k + 1 : end])]
        at = end + 1
    return [line for line in found if line]


def _typed(words: list[str]) -> list[str]:
    """What the keys type: as the words stand, and as the pane's shell edits them."""
    literal = hexadecimal = False
    k, repeat = 0, 1
    while k < len(words) and words[k][:1] == "-" and len(words[k]) > 1:
        word, k = words[k], k + 1
        if word == "--":
            break
        for at, letter in enumerate(word[1:], start=2):
            literal, hexadecimal = literal or letter == "l", hexadecimal or letter == "H"
            if letter in _VALUES:  # its value: the rest of the word, or the next word
                value = word[at:] or (words[k] if k < len(words) else "")
                repeat = int(value) if letter == "N" and re.fullmatch("[0-9]{1,9}", value) else repeat
                k += 0 if word[at:] else 1
                break
    keys = words[k:]
    if hexadecimal:
        keys = [chr(int(w, 16)) if _is_hex(w) else "" for w in keys]
        return list(dict.fromkeys(["".join(keys), _edited(keys, True)]))
    # -N types the keys again and again (`-N 2 d` types dd): a few times are enough to read
    keys = keys * min(repeat, _REPEATS)
    return list(dict.fromkeys(["".join(w if literal else _KEYS.get(w.lower(), w) for w in keys),
                               _edited(keys, literal)]))


def _edited(keys: list[str], literal: bool) -> str:
    """The line a readline shell (bash) reads from the keys, its editing keys applied: `ddx
    BSpace Enter` runs dd, as do `xdd Home Delete Enter` and `echo C-u dd Enter` (tmux 3.3a,
    bash 5: review h168). A key whose effect is not known here (Up, F1, M-x) is dropped."""
    lines, line, at, escape = [], [], 0, False
    for key in keys:
        name = key.lower()
        if escape or not literal and name in ("escape", "c-[", "^["):
            escape = not escape  # Escape and the key after it: a meta key
            continue
        if not literal and name in _EDITS:
            line, at = _edit(_EDITS[name], line, at)
            continue
        if not literal and len(key) > 1 and name not in _KEYS and not _hex_key(name) and _KEY_NAME.fullmatch(key):
            continue  # a key whose effect is not known
        typed = key if literal else _KEYS.get(name) or _hex_key(name) or key
        for c in typed:
            if c in "\n\r":  # the line is read: what follows is a line of its own
                lines.append("".join(line) + "\n")
                line, at = [], 0
            else:
                line.insert(at, c)
                at += 1
    return "".join(lines) + "".join(line)


def _edit(action: str, line: list[str], at: int) -> tuple[list[str], int]:
    """An editing key's effect on the line and the cursor's place in it."""
    if action in _MOVES:
        return line, max(0, min(len(line), _MOVES[action](at, len(line))))
    if action == "erase-before":
        return line[: max(at - 1, 0)] + line[at:], max(at - 1, 0)
    if action == "erase-at":
        return line[:at] + line[at + 1 :], at
    if action == "kill-end":
        return line[:at], at
    if action == "kill-start":
        return line[at:], 0
    start = "".join(line[:at]).rstrip().rfind(" ") + 1  # kill-word (C-w): back to a blank
    return line[:start] + line[at:], start


def _hex_key(name: str) -> str:
    """A key given as a number (`0x64` types d, tmux's key-string.c)."""
    return chr(int(name, 16)) if name.startswith("0x") and _is_hex(name) else ""


def _is_hex(word: str) -> bool:
    try:
        return 0 <= int(word, 16) < 256
    except ValueError:
        return False
