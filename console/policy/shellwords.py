"""Split a shell command line into commands and words, the way exec rules need it.

Not a shell: a reader that errs towards "more parts, fewer allowances". It knows quoting
('...', "...", backslashes, $'...'), the operators that start a new command (;, &, &&, |, ||,
|&, newline, parentheses), redirections (so `2>&1` is not a background `&`), comments, and
command substitutions ($(...), backticks, <(...)), whose text is kept for a second look.

Where shells disagree, the reading with more commands is chosen: `a &> f` is read as `a &`
then `> f` (what sh does), and `$'...'` (bash only) marks the part opaque so no allow rule can
pass it. Anything unfinished (a quote, a `$(`) raises ParseError: the caller then asks a person.
"""

from __future__ import annotations

import re

from console.policy import shellscan
from console.policy.arith import reads_a_value
from console.policy.parts import ASSIGNMENT, CommandPart, ParseError
from console.policy.reserved import Feeds, compound_may_start

MAX_ARITH_MISSES = 16
_FD = re.compile(r"[0-9]+|\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\}")  # before `<`, `>`
_ARRAY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=$")  # NAME=( starts an array
# Reserved words bash reads as a new command right after a compound's head, no separator between
# (review h189: `if ((1)) then rm -rf ~; fi` was one part, `((1))` its program: rm unseen).
_AFTER_HEAD = {"then", "do", "else", "elif", "fi", "done", "esac", "{", "}"}




class _Splitter:
    def __init__(self, line: str) -> None:
        self.s = line
        self.parts: list[CommandPart] = []
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False
        self.inner: list[str] = []
        self.opaque = False
        self.globs: list[int] = []
        self.expands: list[int] = []
        self.redirects: list[int] = []
        self._word_span = (0, 0)  # the last word end found (word_end): start, end
        self.arith_misses = 0  # `((` read on that were not an arithmetic command
        # Between `[[` and `]]`: `<<` there is never a here-document to bash (a regex's `(x<<A)`
        # is one word), so no body is taken from the lines after it.
        self.in_condition = False
        self.condition_depth = 0  # the regex's `(` not yet closed: a `]]` there is a word
        self.word_quoted = False  # the word being read has quoting: `"]]"` is a word too
        # Here-documents: (index of the delimiter word, strip leading tabs) in the part being
        # read, then (part, delimiter, strip) once it ends; their bodies start at the newline.
        self.heredoc_words: list[tuple[int, bool, bool]] = []
        self.bodies: list[tuple[CommandPart, str, bool, bool]] = []
        self.after_pipe = False  # the next part's input is a pipe (`|` or `|&` before it)
        self.feeds = Feeds()  # which parts read a pipe, and the functions the line defines
        self.sep = ""  # the separators since the last part (CommandPart.joined)
        self.head_end = -1  # index of a word ending a compound's head (`((...))`, `]]`, `for x`)

    def end_word(self) -> None:
        if self.in_word:
            word = "".join(self.word)
            if not self.word_quoted and word in _AFTER_HEAD and 0 <= self.head_end == len(self.words) - 1:
                self.word, self.in_word = [], False
                self.end_part()  # the head is a whole command: the reserved word starts the next
                self.sep, self.word, self.in_word = " ", [word], True
            self.words.append(word)
            # `[[` only where a command starts (`echo [[ <<A` has a here-document), to `]]`.
            if self.words[-1] == "[[" and compound_may_start(self.words[:-1]):
                self.in_condition = True
            elif self.words[-1] == "]]" and not self.word_quoted and self.condition_depth <= 0:
                self.in_condition, self.condition_depth = False, 0
                self.head_end = len(self.words) - 1
            elif not self.word_quoted and self._ends_head():
                self.head_end = len(self.words) - 1
        self.word, self.in_word, self.word_quoted = [], False, False

    def _ends_head(self) -> bool:
        """Whether the word just read ends a compound's head where a command starts: `for NAME`
        and `select NAME` (`for x do`), or a closing `esac`, `}`, `fi` or `done`."""
        words = self.words
        if len(words) >= 2 and words[-2] in ("for", "select") and compound_may_start(words[:-2]):
            return True
        return words[-1] in ("esac", "}", "fi", "done") and compound_may_start(words[:-1])

    def end_part(self) -> None:
        self.end_word()
        if self.words or self.inner:
            part = CommandPart(self.words, self.opaque, False, self.inner, self.redirects,
                               globs=self.globs, expands=sorted(set(self.expands)),
                               piped=self.feeds.part(self.words, self.after_pipe), joined=self.sep)
            self.sep = ""
            self.after_pipe = False
            self.parts.append(part)
            for k, strip, quoted in self.heredoc_words:
                delim = self.words[k] if k < len(self.words) else ""
                self.bodies.append((part, delim, strip, quoted))
        self.words, self.inner, self.opaque, self.redirects = [], [], False, []
        self.globs, self.expands = [], []
        self.heredoc_words = []
        self.head_end = -1

    def skip_bodies(self, i: int) -> int:
        """At the start of the line after one with here-documents: past their bodies (bash reads
        them as data, up to each delimiter line, not as commands), kept on their parts."""
        for part, delim, strip, quoted in self.bodies:
            lines, i = shellscan.read_body(self.s, i, delim, strip, quoted)
            body = "\n".join(lines)
            part.heredocs.append(body)
            if not quoted:
                shellscan.body_substitutions(body, part)
        self.bodies = []
        return min(i, len(self.s))

    def add(self, text: str) -> None:
        self.word.append(text)
        self.in_word = True

    def substitution(self, start: int, end: int, body: str) -> int:
        """Keep `$(...)`-like text as part of the word; remember its body for a second look."""
        self.add(self.s[start : end + 1])
        self.inner.append(body)
        self.opaque = True
        return end + 1

    def dollar(self, i: int) -> int | None:
        s = self.s
        nxt = s[i + 1 : i + 2]
        if nxt == "(":
            end = shellscan.close_paren(s, i + 1)
            return self.substitution(i, end, s[i + 2 : end])
        if nxt == "{":
            end = shellscan.close_brace(s, i + 2)
            body = s[i : end + 1]
            self.add(body)
            # Its value is not known here: it may be an option (`sort ${x:--o} f`) or a word
            # a rule names. ${x:-$(cmd)} runs cmd: look at it too.
            self.opaque = True
            if "$(" in body or "`" in body:
                self.inner.append(body[2:-1])
            return end + 1
        if nxt == "[":  # $[...]: bash's old arithmetic, one token (no << in it is a redirection)
            end = s.find("]", i + 2)
            if end < 0:
                raise ParseError("unbalanced $[")
            self.add(s[i : end + 1])
            self.opaque = True
            return end + 1
        if nxt == '"' or (nxt and (nxt.isalnum() or nxt in "_@*#?-!$")):
            # $name, $1, $@, $_, $"..." (a translated string): a value the rules cannot see,
            # which may be an option or a command word. The words keep the text as written.
            self.opaque = True
        return None

    def split(self) -> list[CommandPart]:
        s, i, n = self.s, 0, len(self.s)
        while i < n:
            c = s[i]
            if c in shellscan.BLANKS:
                self.end_word()
                i += 1
            elif c == "\\":
                if s[i + 1 : i + 2] == "\n":
                    i += 2
                    continue
                self.add(s[i + 1 : i + 2])
                self.word_quoted = True
                i += 2
            elif c == "'":
                k = s.find("'", i + 1)
                if k < 0:
                    raise ParseError("unbalanced single quote")
                self.add(s[i + 1 : k])
                self.word_quoted = True
                i = k + 1
            elif c == '"':
                i = self.double(i)
                self.word_quoted = True
            elif c == "$" and s[i + 1 : i + 2] == "'":
                i = self.ansi_c(i)
                self.word_quoted = True
            elif c == "$" and (j := self.dollar(i)) is not None:
                i = j
            elif c == "`":
                end = shellscan.close_backtick(s, i)
                i = self.substitution(i, end, shellscan.unescape_backticks(s[i + 1 : end]))
            elif c == "#" and not self.in_word:
                k = s.find("\n", i)
                i = n if k < 0 else k
            elif c in "<>":
                i = self.redirection(i)
            elif c == "(" and self.in_word and (
                    s[i - 1] in shellscan.EXTGLOB or _ARRAY.match("".join(self.word))):
                # `@(x|y)` (an extglob group) or `NAME=(...)` (an array): one word, whose
                # values the reader does not follow; substitutions in it are still looked at.
                # A word `!` alone before "(" is both: the keyword where extglob is off
                # (`!(cmd)` runs cmd in a subshell), a pattern where it is on (`rm -rf !(x)`
                # removes every entry but x; `!(x)` where a command starts runs a file's name).
                bang = "".join(self.word) == "!"
                end = shellscan.close_paren(s, i)
                if not _ARRAY.match("".join(self.word)):
                    # bash reads an extglob group with no comment in it (`@(#x) ; rm -rf /` runs
                    # rm), an array or a subshell with them: the group ends where either does
                    try:
                        end = min(end, shellscan.close_paren(s, i, comments=False))
                    except ParseError:
                        pass
                i = self.group(s, i, end, bang)
            elif c == "(" and self.in_condition and self.words and self.words[-1] == "=~":
                # A regex's `(...)` in `[[ ... =~ ... ]]` is part of its word, read as bash reads
                # it: a `#` in it is no comment (`[[ a =~ (#x) ]]; rm -rf /` runs rm).
                i = self.group(s, i, shellscan.close_paren(s, i, comments=False), False)
            elif c == "(" and self.in_word and s[i + 1 : i + 2] == "(" and compound_may_start(
                    [*self.words, "".join(self.word)]):
                self.end_word()  # `if((`: `(` ends the keyword; the `((` is read next round
            elif c == "(" and not self.in_word and (end := self.arithmetic(i)) is not None:
                i = end
            elif c == "[" and self.in_word and self.at_assignment():
                i = self.subscript(i)
            elif c in shellscan.SEPARATORS:
                if self.in_condition and c in "()":
                    self.condition_depth += 1 if c == "(" else -1
                # A newline right after `|` (a comment between) continues the pipeline, bodies of
                # here-documents read first (review s31, helper 109: `x |⏎python3` ran piped).
                piping = c == "\n" and self.after_pipe and not (self.words or self.inner or self.in_word)
                self.end_part()
                start, i = i, i + 1
                if c == "\n" and self.bodies:
                    self.sep += "\n"
                    i = self.skip_bodies(i)
                    self.after_pipe = piping
                    continue
                while i < n and s[i] in ";&|":  # &&, ||, ;;, |&, ;& read as one separator
                    i += 1
                self.sep += s[start:i]  # what joins the next part to the one before (`)`+`;`)
                if c not in "()":  # `a | (b)`: b still reads the pipe
                    self.after_pipe = piping or s[start:i] in ("|", "|&")
                elif c == "(":
                    self.feeds.paren(self.after_pipe, self.parts, s[start + 1 : start + 9].lstrip())
            else:
                if c == "{" and (self.in_word or s[i + 1 : i + 2] not in ("", " ", "\t", "\n")):
                    rest = s[i : self.word_end(i)]
                    # {a,b}, {1..3}: words the reader never sees. Read on to the word's end, past
                    # quoted text: bash skips a quoted "}" ({'}',-o} is `} -o`).
                    if "}" in rest[1:] and ("," in rest or ".." in rest):
                        self.opaque = True
                elif c in "*?[" and self.words and self._may_glob_an_option(i):
                    self.globs.append(len(self.words))
                if self._expands_here(c, i):
                    self.expands.append(len(self.words))
                self.add(c)
                i += 1
        self.end_part()
        diverts = self.feeds.diverts(self.parts)
        for part in self.parts:
            part.functions, part.line_diverts = self.feeds.functions, diverts
        return self.parts

    def arithmetic(self, i: int) -> int | None:
        """At `((` where bash reads a command (`((x<<2))`, `for ((...))`, `time -p ((...))`): an
        arithmetic command, one word, in which `<<` is a shift and never a here-document. Its
        body is also looked at as commands: dash reads `((cmd))` as two subshells. None when
        it is not `((...))` (`((a); b)` is subshells to bash too)."""
        s = self.s
        if s[i + 1 : i + 2] != "(" or not compound_may_start(self.words):
            return None
        try:
            # bash finds the `))` reading no comments: `(( echo #x )); rm -rf /` is arithmetic
            # (an error), then rm; read with comments, the `#` hid the rest of the line
            end = shellscan.close_paren(s, i, comments=False)
            arithmetic = shellscan.close_paren(s, i + 1, comments=False) == end - 1
        except ParseError:
            arithmetic = False
        if not arithmetic:
            # Each miss reads on to the end of the line: past a few, the line is not read.
            self.arith_misses += 1
            if self.arith_misses > MAX_ARITH_MISSES:
                raise ParseError("too many `((` that are not arithmetic")
            return None
        self.add(s[i : end + 1])
        self.end_word()  # a token of its own to bash: a `#` right after it starts a comment
        self.head_end = len(self.words) - 1  # `if ((1)) then`: a reserved word may follow
        self.inner.append(s[i + 2 : end - 1])
        found = CommandPart([])
        shellscan.body_substitutions(s[i + 2 : end - 1], found)  # `a['$(cmd)']` runs cmd in there
        self.inner += found.inner
        # A name in it is evaluated as arithmetic in turn: `((x))` runs a[$(cmd)] held in x.
        self.opaque = self.opaque or found.opaque or reads_a_value(s[i + 2 : end - 1])
        return end + 1

    def at_assignment(self) -> bool:
        """Whether the word being read is a name where bash takes an assignment (`a[...]=`):
        at the start of a command, after other assignments only."""
        return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", "".join(self.word))) and all(
            re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[.*\])?\+?=", w, re.S) for w in self.words)

    def subscript(self, i: int) -> int:
        """`NAME[...]` at the start of a command: bash reads the subscript to its `]`, so `<`,
        `>` and blanks in it are the word's (`a[1<<2]=3` is no here-document). Substitutions in
        it run: they are looked at."""
        s, j, depth = self.s, i, 0
        while j < len(s):
            c = s[j]
            if c in shellscan.QUOTING:
                j = shellscan.past_quoted(s, j)
                continue
            if c == "$" and s[j + 1 : j + 2] == "(":
                j = shellscan.close_paren(s, j + 1) + 1
                continue
            if c == "$" and s[j + 1 : j + 2] == "{":
                j = shellscan.close_brace(s, j + 2) + 1
                continue
            depth += (c == "[") - (c == "]")
            if depth == 0:
                break
            j += 1
        else:
            self.add("[")
            return i + 1  # no `]`: a plain character, read on as before
        text = s[i : j + 1]
        self.add(text)
        found = CommandPart([])
        shellscan.body_substitutions(text, found)
        self.inner += found.inner
        self.opaque = self.opaque or found.opaque
        return j + 1

    def _expands_here(self, c: str, i: int) -> bool:
        """Whether the unquoted character at s[i] makes bash read its word as more than its
        letters: a glob character (a `[` only with a `]` after it in the word), or a tilde
        where tilde expansion happens (a word's start; in a word like an assignment, after its
        `=` or a `:`)."""
        if c == "~":  # as bash does: `x=~`, `PATH=a:~/b` (an argument like one too), not `--o=~`
            before = "".join(self.word) if self.in_word else ""
            return not before or (bool(ASSIGNMENT.match(before)) and (
                before.endswith(":") or ASSIGNMENT.fullmatch(before) is not None))
        if c == "[":  # a `]` later in the word, quoted or not (`x[a' ']` is a glob)
            return "]" in self.s[i + 1 : self.word_end(i)]
        return c in "*?"

    def _may_glob_an_option(self, i: int) -> bool:
        """Whether the unquoted glob character at s[i] can make its word a name starting with a
        dash: nothing before it in the word, or a dash. A `[` with no `]` after it in the word
        is a plain character (`[ -f x ]`)."""
        before = "".join(self.word) if self.in_word else ""
        if before and not before.startswith("-"):
            return False
        return self.s[i] != "[" or "]" in self.s[i + 1 : self.word_end(i)]

    def word_end(self, i: int) -> int:
        """shellscan.word_end, remembered for the word being read: a word of a thousand braces is
        walked once, not once per brace."""
        start, end = self._word_span
        if not start <= i < end:
            end = shellscan.word_end(self.s, i)
            self._word_span = (i, end)
        return end

    def double(self, i: int) -> int:
        s = self.s
        end = shellscan.close_double(s, i)
        j = i + 1
        out: list[str] = []
        while j < end:
            c = s[j]
            if c == "\\" and s[j + 1 : j + 2] in ('$', '`', '"', "\\", "\n"):
                out.append("" if s[j + 1] == "\n" else s[j + 1])
                j += 2
            elif c == "$" and s[j + 1 : j + 2] == "(":
                k = shellscan.close_paren(s, j + 1)
                out.append(s[j : k + 1])
                self.inner.append(s[j + 2 : k])
                self.opaque = True
                j = k + 1
            elif c == "`":
                k = shellscan.close_backtick(s, j)
                out.append(s[j : k + 1])
                self.inner.append(shellscan.unescape_backticks(s[j + 1 : k]))
                self.opaque = True
                j = k + 1
            elif c == "$" and s[j + 1 : j + 2] == "{":
                # Taken whole, as dollar() does: its nested ${ are its body's, read once when the
                # body is looked at (one by one they cost time growing with the square).
                k = shellscan.close_brace(s, j + 2)
                body = s[j : k + 1]
                self.opaque = True  # a value the rules cannot see (see dollar())
                if "$(" in body or "`" in body:
                    self.inner.append(body[2:-1])
                out.append(body)
                j = k + 1
            else:
                # $name, and bash's old arithmetic `$[x]`, which evaluates x's value in here too
                if c == "$" and (s[j + 1 : j + 2].isalnum() or s[j + 1 : j + 2] in tuple("_@*#?-!$[")):
                    self.opaque = True
                out.append(c)
                j += 1
        self.add("".join(out))
        return end + 1

    def ansi_c(self, i: int) -> int:
        # bash's $'...' ends at an unescaped quote; sh reads it differently. Opaque either way.
        s, j = self.s, i + 2
        while j < len(s):
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == "'":
                self.add(s[i : j + 1])
                self.opaque = True
                return j + 1
            j += 1
        raise ParseError("unbalanced $'")

    def group(self, s: str, i: int, end: int, bang: bool) -> int:
        """The parenthesised group s[i:end+1] read as part of the word (an extglob group, an
        array's values, a regex's group): the reader does not follow its values, the
        substitutions in it are looked at, and `!(...)` may be a subshell. Returns end + 1."""
        group = s[i : end + 1]
        self.add(group)
        self.opaque = True
        found = CommandPart([])
        shellscan.body_substitutions(group, found)
        self.inner += found.inner + ([group[1:-1]] if bang else [])
        return end + 1

    def redirection(self, i: int) -> int:
        s, n = self.s, len(self.s)
        if s[i + 1 : i + 2] == "(":  # process substitution <(...) >(...)
            self.end_word()
            end = shellscan.close_paren(s, i + 1)
            return self.substitution(i, end, s[i + 2 : end])
        # `2>`, and `{fd}>` (bash puts the new fd's number in fd): part of the operator
        fd = "".join(self.word) if self.in_word and _FD.fullmatch("".join(self.word)) else ""
        if not fd:
            self.end_word()
        else:
            self.word, self.in_word = [], False
        j = i
        while j < n and s[j] in "<>":
            j += 1
        if s[i:j] == "<<" and s[j : j + 1] == "-":  # <<- : a here-document, tabs stripped
            j += 1
        closes = False
        if j < n and s[j] == "&":  # >&2, <&0, >&-; `>&2x` writes a file named 2x
            j += 1
            k = j
            while k < n and s[k] in shellscan.BLANKS:
                k += 1
            if s[k : k + 1] == "-":  # a token of its own to bash, blanks before it or not:
                j, closes = k + 1, True  # `>&--rf` and `>& --rf` are `>&-` then `-rf`
            # Only bash's blanks end the number: `>&2<form feed>x` writes the file `2<FF>x`.
            elif dup := re.match(r"[0-9]+(?=[ \t\n;&|()<>]|$)", s[j:]):
                j += dup.end()
        elif j < n and s[j] == "|" and s[j - 1] == ">":  # >|
            j += 1
        op = s[i:j] if not closes else s[i : s.index("&", i) + 1] + "-"
        if op in ("<<", "<<-") and not self.in_condition:  # a here-document: its body follows
            # The delimiter as bash reads it: a backslash-newline in it is dropped (`<<A\`
            # newline `B` is the unquoted AB), any other quoting makes it quoted (no expansion).
            raw = re.match(r"[ \t]*((?:[^ \t\n;&|()<>\\]|\\.)*)", s[j:], re.S).group(1)  # type: ignore[union-attr]
            quoted = any(q in raw.replace("\\\n", "") for q in "'\"\\")
            self.heredoc_words.append((len(self.words) + 1, op == "<<-", quoted))
        self.redirects.append(len(self.words))
        self.words.append(fd + op)
        return j


# bash drops a backslash-newline before it reads tokens, so one right after these joins what
# follows into one token (`$\<newline>(cmd)` is `$(cmd)`, `(\<newline>(` is `((`, `<<\<newline>A`
# an unquoted `<<A`); the reader looks at the characters as written, so it does not read on.
_JOINING_CONTINUATION = re.compile(r"[$(<>]\\\n")


def split_command(line: str) -> list[CommandPart]:
    """The top-level commands of a line. Raises ParseError when it cannot be read."""
    if _JOINING_CONTINUATION.search(line):
        raise ParseError("a backslash-newline right after `$`, `(`, `<` or `>` joins the next "
                         "line into that token, which this reader does not follow")
    return _Splitter(line).split()
