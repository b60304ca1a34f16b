"""The line `tmux send-keys` types into a shell, for runners.py: `tmux send-keys -t s 'rm -rf ~'
Enter` types `rm -rf ~` and a newline, which the shell in that pane runs. It was asked, its line
never read (review h165); read as a shell line, a forbid rule refuses it. What the pane's line
held already is not known: the part is still read flat too (unwrap.py, CommandPart.bounded).

As tmux 3.3a reads send-keys' words (`send-keys [-FHlMRX] [-N repeat-count] [-t target-pane]
key ...`, getopt; 3.4 adds -K and -c target-client): each word is a key name (Enter, Space, C-m,
^M; in any case) or typed as it is; -l types every word as it is, -H reads each as a byte in hex.
"""

from __future__ import annotations

# tmux's commands that type into a pane (send-keys, by its alias or a prefix naming it alone),
# and paste-buffer, whose words do not show what it types.
SENDS = {"send-keys", "send", "send-k", "send-ke", "send-key"}
TYPES = SENDS | {"paste-buffer", "pasteb"}
_VALUES = "cNt"  # send-keys' options that take a value
# Key names that type a character a shell reads as a blank or the end of a line.
_KEYS = {"enter": "\n", "kpenter": "\n", "c-m": "\n", "^m": "\n", "c-j": "\n", "^j": "\n",
         "space": " ", "tab": "\t", "c-i": "\t", "^i": "\t"}


def typed_lines(words: list[str]) -> list[str]:
    """The line each send-keys in a tmux command (`;` between commands) types."""
    found = []
    for k, word in enumerate(words[1:], start=1):
        if word in SENDS:
            end = words.index(";", k) if ";" in words[k:] else len(words)
            found.append(_typed(words[k + 1 : end]))
    return [line for line in found if line]


def _typed(words: list[str]) -> str:
    literal = hexadecimal = False
    k = 0
    while k < len(words) and words[k][:1] == "-" and len(words[k]) > 1:
        word, k = words[k], k + 1
        if word == "--":
            break
        for at, letter in enumerate(word[1:], start=2):
            literal, hexadecimal = literal or letter == "l", hexadecimal or letter == "H"
            if letter in _VALUES:
                k += 0 if word[at:] else 1  # its value: the rest of the word, or the next word
                break
    keys = words[k:]
    if hexadecimal:
        return "".join(chr(int(w, 16)) if _is_hex(w) else "" for w in keys)
    return "".join(w if literal else _KEYS.get(w.lower(), w) for w in keys)


def _is_hex(word: str) -> bool:
    try:
        return 0 <= int(word, 16) < 256
    except ValueError:
        return False
