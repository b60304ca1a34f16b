"""Where a quoted or bracketed stretch of a shell line ends: the scanners shellwords reads with.

Each takes the line and an index and returns an index, or raises ParseError for something
unfinished (a quote, a `$(`): the caller then asks a person.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator

from console.policy.parts import CommandPart, ParseError

SEPARATORS = ";&|\n()"
BLANKS = " \t"
QUOTING = "\\'\"`"
EXTGLOB = "@?*+!"  # before "(": an extglob group, part of its word
# Whether close_paren skips the bodies of here-documents in a `$(...)` as bash does (review h189:
# a `)` in one ended the substitution early, and a quote after it hid the rest of the line).
# unwrap.expand also reads a line without it: a `<<` taken for one may be a shift there.
_BODIES = contextvars.ContextVar("here_document_bodies", default=True)


@contextlib.contextmanager
def reading_bodies(skip: bool) -> Iterator[None]:
    """Within it, close_paren skips a here-document's body in a substitution only if `skip` (and
    it did before): without, the body is read as commands."""
    token = _BODIES.set(skip and _BODIES.get())
    try:
        yield
    finally:
        _BODIES.reset(token)


def bodies_read() -> bool:
    """Whether close_paren skips here-document bodies here (not within reading_bodies(False))."""
    return _BODIES.get()


def here_in_substitution(line: str) -> bool:
    """A `<<` after a `$(`, `<(` or `>(`: unwrap.expand reads it with bodies skipped, and not."""
    k = line.rfind("<<")
    return k > 0 and any(0 <= line.find(o) < k for o in ("$(", "<(", ">("))


def continues(line: str) -> bool:
    """Whether a line ends in a backslash that escapes its newline (an odd number of them)."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def here_document(s: str, j: int) -> tuple[int, tuple[str, bool, bool]]:
    """At the `<<` or `<<-` at s[j]: the index past its delimiter word, and (the delimiter as
    bash compares it, strip leading tabs, quoted: the body is not expanded)."""
    k = j + 2
    strip = s[k : k + 1] == "-"
    k += strip
    while k < len(s) and s[k] in BLANKS:
        k += 1
    delim, quoted = [], False
    while k < len(s) and s[k] not in " \t\n;&|()<>":
        c = s[k]
        if c == "\\" and s[k + 1 : k + 2] == "\n":  # dropped before bash reads the word
            k += 2
        elif c == "\\":
            delim.append(s[k + 1 : k + 2])
            quoted, k = True, k + 2
        elif c in "'\"":
            end = past_quoted(s, k)
            delim.append(s[k + 1 : end - 1])
            quoted, k = True, end
        else:
            delim.append(c)
            k += 1
    return k, ("".join(delim), strip, quoted)


def read_body(s: str, i: int, delim: str, strip: bool, quoted: bool) -> tuple[list[str], int]:
    """From the start of a here-document's body: its lines up to its delimiter line (the end of
    the text when it has none), and the index past that line. In an unquoted body bash joins a
    line ending in a backslash with the next before it compares it (`A\\` newline `B` is AB)."""
    n, lines = len(s), []
    while i < n:
        k = s.find("\n", i)
        k = n if k < 0 else k
        line, i = s[i:k], k + 1
        while not quoted and continues(line) and i < n:
            k = s.find("\n", i)
            k = n if k < 0 else k
            line, i = line[:-1] + s[i:k], k + 1
        if (line.lstrip("\t") if strip else line) == delim:
            break
        lines.append(line)
    return lines, i


def past_bodies(s: str, i: int, docs: list[tuple[str, bool, bool]]) -> int:
    """From the start of the line after one with here-documents: the index past their bodies."""
    for delim, strip, quoted in docs:
        i = read_body(s, i, delim, strip, quoted)[1]
    return min(i, len(s))


def past_quoted(s: str, j: int) -> int:
    """The index just past the escape, quoted string or backtick substitution at s[j]."""
    c = s[j]
    if c == "\\":
        return j + 2
    if c == "'":
        k = s.find("'", j + 1)
        if k < 0:
            raise ParseError("unbalanced single quote")
        return k + 1
    if c == '"':
        return close_double(s, j) + 1
    return close_backtick(s, j) + 1


def close_paren(s: str, i: int, comments: bool = True) -> int:
    """Index of the ")" matching the "(" at s[i], skipping quoted text and comments (a `#`
    starting a word hides the rest of its line, a `)` in it too, as bash reads it: after a
    blank or an operator, `;#` and `|#` too). bash drops a backslash-newline before it reads
    words, so the character before one decides (`a` backslash-newline `#` is the word `a#`).
    Without comments, as bash reads an arithmetic command `((...))`: a `#` there is no comment
    (`(( echo #x )); rm -rf /` is arithmetic, then rm), though one inside a `$(...)` in it is."""
    depth, j, n = 0, i, len(s)
    joins: set[int] = set()  # where a backslash-newline ends
    cases: list[str] = []  # each `case` open in it: "word" (before `in`), "pattern", "body"
    commands = comments and i > 0 and s[i - 1] in "$<>"  # `$(...)`, `<(...)`: commands in it
    bodies = commands and _BODIES.get() and s[i + 1 : i + 2] != "("  # not `$((`: arithmetic
    docs: list[tuple[str, bool, bool]] = []  # here-documents whose bodies follow the newline
    while j < n:
        c = s[j]
        if bodies and c == "<" and s.startswith("<<", j) and s[j + 2 : j + 3] != "<" and s[j - 1] != "<":
            j, doc = here_document(s, j)
            docs.append(doc)
            continue
        if bodies and c == "\n" and docs:
            j, docs = past_bodies(s, j + 1, docs), []
            continue
        if c in QUOTING:
            if s[j : j + 2] == "\\\n":
                joins.add(j + 2)
            j = past_quoted(s, j)
            continue
        if not comments and c == "$" and s[j + 1 : j + 2] == "(":
            j = close_paren(s, j + 1) + 1  # a command substitution's own text has comments
            continue
        before = j
        while before in joins:
            before -= 2
        if comments and c == "#" and s[before - 1] in " \t\n(;&|)<>":
            end = s.find("\n", j)
            if end < 0:
                raise ParseError("unbalanced parenthesis (a comment hides the rest)")
            j = end
            continue
        if commands and (c.isascii() and c.isalpha() or cases):
            k = _case_step(s, j, cases)
            if k is not None:
                j = k
                continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ParseError("unbalanced parenthesis")


_WORD = re.compile(r"[A-Za-z]+")
_STARTS_AFTER = {"then", "do", "else", "elif", "if", "while", "until", "{", "!", "time"}


def _case_step(s: str, j: int, cases: list[str]) -> int | None:
    """Inside a `$(...)`: a `case` statement's patterns end in `)`, which close nothing (`$(case
    x in x) rm -rf /;; esac)` is one substitution: ended at `x)`, the rest was read as words of
    the command outside it: review h151). Where the reader moves past s[j] itself, the index
    after; else None. `cases` is the stack of open case statements, changed here."""
    c = s[j]
    if c.isascii() and c.isalpha() and (j == 0 or s[j - 1] in " \t\n;&|()"):
        word = _WORD.match(s, j).group(0)  # type: ignore[union-attr]
        after = s[j + len(word) : j + len(word) + 1]
        if after and after not in " \t\n;&|()<>":
            return None
        k = j  # past the blanks before the word, then the word before them (linear: each
        while k > 0 and s[k - 1] in " \t":  # blank run and word is walked for one word only)
            k -= 1
        last = s[k - 1] if k > 0 else ""
        w = k
        while w > 0 and s[w - 1] not in " \t\n;&|()":
            w -= 1
        at_start = not last or last in ";\n&|({" or s[w:k] in _STARTS_AFTER or (
            last == ")" and bool(cases) and cases[-1] == "body")
        if word == "case" and at_start and not (cases and cases[-1] == "pattern"):
            cases.append("word")
        elif word == "in" and cases and cases[-1] == "word":
            cases[-1] = "pattern"
        elif word == "esac" and cases and (cases[-1] == "pattern" or (cases[-1] == "body" and at_start)):
            cases.pop()
        else:
            return None
        return j + len(word)
    if not cases:
        return None
    if cases[-1] == "pattern":
        if c == "(" and j > 0 and s[j - 1] in "$<>@?*+!":
            return close_paren(s, j) + 1  # `$(cmd)`, `@(x|y)` in a pattern: its own parentheses
        if c == "(":
            return j + 1  # a pattern's optional opening parenthesis
        if c == ")":
            cases[-1] = "body"
            return j + 1
    elif cases[-1] == "body" and c == ";" and s[j + 1 : j + 2] in (";", "&"):
        cases[-1] = "pattern"
        return j + (3 if s[j + 1 : j + 3] == ";&" else 2)
    return None


def close_double(s: str, i: int) -> int:
    j = i + 1
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j
        if c == "$" and s[j + 1 : j + 2] == "(":
            j = close_paren(s, j + 1) + 1
            continue
        if c == "`":
            j = close_backtick(s, j) + 1
            continue
        j += 1
    raise ParseError("unbalanced double quote")


def unescape_backticks(body: str) -> str:
    """What the shell runs of a `...` body: inside backticks, \\`, \\\\ and \\$ lose their
    backslash (so `echo \\`cmd\\`` nests a second substitution)."""
    return re.sub(r"\\([`\\$])", r"\1", body)


def close_backtick(s: str, i: int) -> int:
    j = i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == "`":
            return j
        j += 1
    raise ParseError("unbalanced backtick")


def close_brace(s: str, i: int) -> int:
    """Index of the "}" closing the "${" just before s[i], skipping quoted text and nested
    expansions as bash does (`${x:-'}'$(cmd)}` ends at the last brace, not the quoted one)."""
    depth, j, n = 1, i, len(s)
    while j < n:
        c = s[j]
        if c in QUOTING:
            j = past_quoted(s, j)
            continue
        if c == "$" and s[j + 1 : j + 2] == "(":
            j = close_paren(s, j + 1) + 1
            continue
        if c == "$" and s[j + 1 : j + 2] == "{":
            depth, j = depth + 1, j + 2
            continue
        if c == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ParseError("unbalanced ${")


def word_end(s: str, i: int) -> int:
    """Index just past the word that s[i] is in, skipping quoted text and substitutions."""
    j, n = i, len(s)
    while j < n and s[j] not in BLANKS and s[j] not in "<>":
        c = s[j]
        if c == "(" and j > i and (s[j - 1] in EXTGLOB or s[j - 1] == "="):
            j = close_paren(s, j) + 1
        elif c in SEPARATORS:
            break
        elif c in QUOTING:
            j = past_quoted(s, j)
        elif c == "$" and s[j + 1 : j + 2] == "(":
            j = close_paren(s, j + 1) + 1
        elif c == "$" and s[j + 1 : j + 2] == "{":
            j = close_brace(s, j + 2) + 1
        else:
            j += 1
    return min(j, n)


_PLAIN_BRACED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")  # ${NAME}: a value, nothing more


def body_substitutions(body: str, part: CommandPart) -> None:
    """An unquoted here-document's body is expanded: its $(...) and `...` run. They are kept
    on the part for a second look, and make it opaque. So does an expansion that evaluates a
    variable's value (`$[x]`, `${a[x]}`, `${y:x}`, `${!x}`: a subscript in it runs its `$(...)`)
    or runs it (`${x@P}`): anything in `${...}` past a plain `${NAME}`."""
    j, n = 0, len(body)
    try:
        while j < n:
            if body[j] == "\\":
                j += 2
            elif body.startswith("$[", j) or (
                    body.startswith("${", j) and not _PLAIN_BRACED.match(body, j)):
                part.opaque, j = True, j + 2  # read on: a `$(` inside is looked at too
            elif body.startswith("$(", j):
                k = close_paren(body, j + 1)
                part.inner.append(body[j + 2 : k])
                part.opaque, j = True, k + 1
            elif body[j] == "`":
                k = close_backtick(body, j)
                part.inner.append(body[j + 1 : k])
                part.opaque, j = True, k + 1
            else:
                j += 1
    except ParseError:
        part.opaque = True
