"""How bash joins a line's commands, as grants and `((` need it: its reserved words (where a
compound command starts, and the words that open and close one), which parts read a pipe
(Feeds), and which `cd`s a part runs after (CdContexts)."""

from __future__ import annotations

from console.policy.parts import redirections

# Words after which `((` starts an arithmetic command, as bash reads it.
BEFORE_ARITHMETIC = {"for", "if", "elif", "while", "until", "then", "do", "else", "!", "time",
                     "{"}
TIME_OPTIONS = {"-p", "--"}  # `time -p`, `time --`, `time -p --`


def compound_may_start(words: list[str]) -> bool:
    """Whether bash reads a compound command (so `((` is arithmetic) after these words: the
    keywords above, `time` with its options, `function NAME`, `coproc` and `coproc NAME`.
    Erring towards yes is safe: an arithmetic body is also read as commands."""
    k, n = 0, len(words)
    while k < n:
        w = words[k]
        if w in TIME_OPTIONS and k and words[k - 1] in ("time", "-p"):
            k += 1
        elif w == "function" and k + 1 < n:
            k += 2
        elif w == "coproc":
            k += 2 if k + 1 < n and words[k + 1] not in BEFORE_ARITHMETIC else 1
        elif w in BEFORE_ARITHMETIC:
            k += 1
        else:
            return False
    return True


# Reserved words that open and close a compound command. A pipe into one feeds every command
# in it (`| if true; then python3; fi`, `| { true; python3; }`), not only the first (review
# s31, helper 106: each was granted by its words and a later script ran unasked); its end is
# not looked for (helper 107 nested one, or quoted a `}`): every part after it reads as fed.
OPENERS = {"if", "while", "until", "for", "select", "case", "{"}
CLOSERS = {"fi", "done", "esac", "}"}


def reserved_word(words: list[str]) -> str:
    """The word in command position past `!` and `time` (with its options): where bash reads a
    reserved word."""
    k = 0
    while k < len(words) and (words[k] in ("!", "time") or (
            k and words[k] in TIME_OPTIONS and words[k - 1] in ("time", "-p"))):
        k += 1
    return words[k] if k < len(words) else ""


_NOT_FILES = ("", "/dev/null", "/dev/stdout", "/dev/stderr")  # ("": a dup such as 2>&1)


class Feeds:
    """Which parts of a line read a pipe (CommandPart.piped), and the functions it defines."""

    def __init__(self) -> None:
        self.whole_line = False  # a pipe fed a compound command or a subshell, or a coprocess ran
        self.functions: frozenset[str] = frozenset()

    def part(self, words: list[str], after_pipe: bool) -> bool:
        """Whether the part of these words reads a pipe: one right before it, one that feeds
        the compound command it is in, or a coprocess's (`coproc python3`: what the line
        writes to it later). A word that closes a compound runs nothing."""
        word = reserved_word(words)
        if word == "function" and len(words) > 1:
            self._defines(words[1])
        if word == "coproc" or (after_pipe and word in OPENERS):
            self.whole_line = True
        return after_pipe or word == "coproc" or (self.whole_line and word not in CLOSERS)

    def paren(self, after_pipe: bool, parts: list, after: str) -> None:
        """At a `(`, `after` what follows it: a subshell a pipe feeds, or `NAME ()`, a
        function's definition."""
        if after_pipe:
            self.whole_line = True
        if after.startswith(")") and parts and len(parts[-1].words) == 1:
            self._defines(parts[-1].words[0])

    def _defines(self, name: str) -> None:
        self.functions = self.functions | {name}

    @staticmethod
    def diverts(parts: list) -> bool:
        """Whether what a pipe feeds may go somewhere its part does not show: the line opens a
        file for the shell itself (`exec >F`, `exec 3>F`), closes a compound with a file after
        a fed part (`... | { cat; } > F`), or changes which program a name runs (PATH set by
        any means, hash, alias, enable, unset) (review s31, helpers 109 and 111)."""
        fed = False
        for part in parts:
            words = part.words
            fed = fed or part.piped
            writes = any(">" in op and target not in _NOT_FILES for op, target in redirections(part))
            if writes and (words[:1] == ["exec"] or (fed and reserved_word(words) in CLOSERS)):
                return True
            if words[:1] in (["unset"], ["hash"], ["alias"], ["enable"]) or any(
                    w == "PATH" or w.startswith(("PATH=", "PATH+=", "PATH[")) or w.endswith("=PATH")
                    for w in words):  # read PATH, for PATH in, printf -v PATH, getopts x PATH
                return True
        return False


class CdContexts:
    """CommandPart.cd_context, part by part, for the grants it binds (review s31, helpers 110 to
    112): None where no `cd` came before; after a chain of `cd`s the line starts with, joined by
    `&&` (the hook's own `cd CWD &&`, an agent's `cd src && make`), that chain, for each part it
    reaches through `&&` and `|` only (those run only where every cd succeeded); anywhere else,
    the whole line before the part as written, so a `cd` that may not have run (`git status &&
    cd src; make`, `cd src & make`, `(cd src); make`) never matches one that did."""

    CDS = (["cd"], ["pushd"], ["popd"], ["."], ["source"])  # a sourced file may cd (helper 113)

    def __init__(self) -> None:
        self.before: list[str] = []  # the line so far, as written
        self.chain = ""
        self.state = "start"  # start | no-cd | chain | reached | broken

    def next(self, joined: str, text: str, is_cd: bool) -> str | None:
        """The context of the next part (`joined`: its separators before it), then read it.
        (`cd X | y`: the cd runs in the pipeline's own process, so `|` reaches from a part
        after the chain only.)"""
        joined = joined.rstrip("\n") or joined  # `&&⏎` is `&&`
        reaches = joined == "&&" or (self.state == "reached" and joined in ("|", "|&"))
        if self.state in ("start", "no-cd"):
            context = None
        elif self.state in ("chain", "reached") and reaches and not (is_cd and self.state == "reached"):
            context = self.chain
        else:
            context = "".join(self.before) + joined
        if self.state == "start":
            self.state = ("broken" if joined else "chain") if is_cd else "no-cd"
        elif self.state in ("chain", "reached") and reaches and (not is_cd or self.state == "chain"):
            self.state = "chain" if is_cd else "reached"
        elif is_cd or self.state != "no-cd":
            self.state = "broken"
        if self.state == "chain":  # a cd to a whole path starts the chain again: the hook's own
            # `cd CWD &&` before the agent's `cd CWD &&` is the same place (review s31, helper 113)
            absolute = text.startswith(("cd /", "cd '/", "pushd /", "pushd '/"))
            self.chain = text if absolute else self.chain + joined + text
        self.before.append(joined + text)
        return context
