"""A command part as the reader gives it (shellwords.py makes them), and what can be asked of
one: its words without redirections, the files it writes, its canonical spelling."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field


class ParseError(ValueError):
    """The command line cannot be read (unbalanced quotes, an unfinished substitution)."""


@dataclass
class CommandPart:
    words: list[str]
    opaque: bool = False  # holds a substitution or $'...': its words are not the whole story
    nested: bool = False  # found inside another command ($(...), eval, sh -c)
    inner: list[str] = field(default_factory=list)  # nested command strings found in it
    # Indexes in words of redirection operators (`>`, `2>&1`, `<<`): a quoted '>' is a word, not
    # one of these.
    redirects: list[int] = field(default_factory=list)
    heredocs: list[str] = field(default_factory=list)  # the bodies of its << here-documents
    # Indexes in words of the words past the first that may expand to a file named like an
    # option: an unquoted glob with nothing or a dash before it (`*`, `?*`, `[-]*`, `--o*`)
    # matches `--pre=sh` or `--output=x`.
    globs: list[int] = field(default_factory=list)
    # Indexes in words of the words bash expands (an unquoted glob character, a tilde where it
    # expands): `rm ./*` and `rm './*'` have the same words and mean two commands.
    expands: list[int] = field(default_factory=list)
    # It runs what its words do not show (xargs, find -exec {}, a shell reading its standard
    # input: unwrap._runs_unseen). Never allowed by a rule, like opaque; a rule may still name
    # such a command (`forbid = ["xargs"]`), which an opaque rule may not. So is a part that
    # connects through /dev/tcp, and one run after a variable of the environment is given a
    # value (unseen.after_environment): why_unseen says which.
    unseen: bool = False
    why_unseen: str = ""  # said when that is known: a variable an earlier part gave, /dev/tcp
    # The reader stopped in it (wrappers or runners past their bounds, nesting too deep, the
    # nested-text budget spent, a program word bash expands: a glob, braces) or does not follow
    # its words (typed into a shell, `hash -p`: review h159): only such a part's words are read
    # flat against the forbid rules (not one blind for its input alone, `xargs grep dd`: h158).
    bounded: bool = False
    # The working folder its relative paths are read in (folders.py): None for the run's own,
    # a path where the line `cd`ed to one written out, folders.UNKNOWN where it cannot be known.
    folder: str | None = None
    # Its standard input is the output of the command before it (`a | b`: b): what it reads
    # is not in its words, and a program may run it (grants.py: `| python3`).
    piped: bool = False
    # The functions its line defines: a part naming one runs the function's body, whatever
    # program of that name would do (grants.fed_code: `cat() { python3; }; x | cat`).
    functions: frozenset[str] = frozenset()
    # Its line writes through a redirection or changes what a program's name runs (PATH,
    # hash, alias): a part fed by a pipe there is never a mere data filter (reserved.Feeds).
    line_diverts: bool = False
    # The separators between it and the part before (`&&`, `;`, `|`, `)` and `;`...), and the
    # line as written from its first `cd`, `pushd` or `popd` up to it (unwrap.py): an exact
    # grant covers its command after the same `cd`s only (review s31, helpers 110 and 111).
    joined: str = ""
    cd_context: str | None = None

    @property
    def blind(self) -> bool:
        """Whether the rules cannot see everything this part runs."""
        return self.opaque or self.unseen


def canonical(part: CommandPart) -> str:
    """One command part as a string that reads back to the same words (and redirections)."""
    return " ".join(w if i in part.redirects else shlex.quote(w) for i, w in enumerate(part.words))


# A shell assignment's start, `NAME=` or `NAME+=` (match and fullmatch read it from the start).
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_FD = r"(?:[0-9]*|\{[^}]*\})"  # `2>`, `{fd}>`
_DUP = re.compile(rf"^{_FD}[<>]&([0-9]+|-)$")  # 2>&1, >&2, <&0, >&-: no file involved
_READS = re.compile(rf"^{_FD}(<|<<|<<-|<<<)$")


def redirections(part: CommandPart) -> list[tuple[str, str]]:
    """(operator, target) for each redirection of a part; a dup like 2>&1 has target ""."""
    out = []
    for i in part.redirects:
        op = part.words[i]
        if _DUP.match(op):
            out.append((op, ""))
        else:
            out.append((op, part.words[i + 1] if i + 1 < len(part.words) else ""))
    return out


def write_targets(part: CommandPart) -> list[str]:
    """Files a part's redirections open for writing (/dev/null is not one). A missing target is
    listed as "" so that it still counts."""
    return [t for op, t in redirections(part)
            if not _DUP.match(op) and not _READS.match(op) and t != "/dev/null"]


# bash opens these itself (`/dev/tcp/*/*`, read or written), looking the host's name up first: a
# connection (and a DNS query) that no gate sees where the run has no sandbox. `//dev/tcp/...`
# is a file to bash: asked all the same.
# /dev/tcp and /dev/udp, and a `~NAME`, `~+` or `~-` target: another account's home may be /dev
# (Debian's `sys`: `cat < ~sys/tcp/H/P` connected; review s33, helper 128).
_NETWORK = re.compile(r"^(?:/+dev/+(?:\./+)*(?:tcp|udp)/|~[^/])", re.S)
_DATA = re.compile(rf"^{_FD}(<<|<<-|<<<)$")  # here-documents and -strings: no file opened


def network_target(part: CommandPart) -> str | None:
    """The first /dev/tcp or /dev/udp file a part's redirections open, in any direction."""
    return next((t for op, t in redirections(part)
                 if not _DATA.match(op) and _NETWORK.match(t)), None)


def redirection_words(part: CommandPart) -> set[int]:
    """Indexes in words of the redirections and their targets."""
    skip: set[int] = set()
    for i in part.redirects:
        skip.add(i)
        if not _DUP.match(part.words[i]):
            skip.add(i + 1)
    return skip


def command_words(part: CommandPart) -> list[str]:
    """The words without redirections and their targets: what the program receives."""
    skip = redirection_words(part)
    return [w for i, w in enumerate(part.words) if i not in skip]


def named_words_expand(part: CommandPart, count: int) -> bool:
    """Whether one of the part's first `count` command words (those a pattern names) is one
    bash expands: a pattern's literal `~` or `./*` is not the unquoted one."""
    if not part.expands:
        return False
    skip = redirection_words(part)
    named = [i for i in range(len(part.words)) if i not in skip][:count]
    return bool(set(named) & set(part.expands))
