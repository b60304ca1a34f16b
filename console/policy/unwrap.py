"""Which commands a command line runs: through wrappers and their options (`sudo -u root`,
`env -S`, `timeout -s KILL 5`), shells (`sh -c`, here-documents fed to a shell), `eval`,
`find -exec`, `watch`, aliases; and `expand`, every part of a line with its nested commands.

The words come from shellwords.py, which reads the line; this module knows what programs do
with their words.
"""

from __future__ import annotations

import functools
import re
import shlex

from console.policy import shellscan
from console.policy.arith import evaluates_a_value, names_bash_integer
from console.policy.bashglob import matcher as glob_matcher
from console.policy.bashquote import ansi_c_decoded
from console.policy.envsplit import UNKNOWN_WORD, env_split
from console.policy.folders import UNKNOWN, folder_after, moves, own_folder
from console.policy.gitwords import git_commands, git_runs_config, skip_git_options
from console.policy.parts import (
    ASSIGNMENT,
    CommandPart,
    ParseError,
    canonical,
    command_words,
    network_target,
    redirections,
)
from console.policy.reserved import CdContexts
from console.policy.runners import (
    npm_sets_a_program,
    runner_readings,
    shell_strings,
    types_into_a_shell,
)
from console.policy.shellopts import command_option, past_shell_options
from console.policy.shellscan import body_substitutions
from console.policy.shellwords import split_command
from console.policy.unseen import (
    after_environment,
    completion_commands,
    fd_name_given,
    mapfile_callbacks,
    names_open_file,
    reads_a_startup_file,
    sets_environment,
    sets_up_later_runs,
)
from console.policy.wrappers import (
    NESTED_RUNNERS,
    OPTIONAL_ATTACHED,
    POSITIONAL_FIRST,
    POSITIONAL_WITHOUT_OPTIONS,
    RUNNERS,
    WRAPPER_ARGS,
    WRAPPER_POSITIONALS,
    WRAPPERS,
)

MAX_DEPTH = 3  # nested commands looked into: $(... $(... $(...)))
# Characters of nested commands read for one line, all depths together, each counted
# NESTED_COST more (a reading costs ~100 us however short): each is read again for its own (a
# runner's every possible start, `hyperfine 'hyperfine ...'`), so a line of 4 KiB could make
# thousands (review h153: a second and more). Past it, the part is opaque: asked.
MAX_NESTED_CHARS, NESTED_COST = 64 * 1024, 256

_REDIRECT = re.compile(r"^(\d*|\{[^}]*\})[<>]")  # `2>`, `{fd}>` too
_NUMBER = re.compile(r"^\d+(\.\d+)?[smhd]?$")
_BRACES = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")  # a brace expansion bash makes words of
_EXTGLOB = re.compile(r"[@+!*?]\(")  # `/usr/bin/@(nice)` under extglob
_STEPS = WRAPPERS | NESTED_RUNNERS | set(RUNNERS)
# `time` is not here: bash's keyword and /usr/bin/time both run the command after their
# options, so it is read as a wrapper (with -f and -o taking a value).
_KEYWORDS = {"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until",
             "coproc"}
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "busybox", "rbash", "ash", "fish", "tcsh",
           "csh", "yash", "posh", "oksh", "loksh", "pdksh", "toybox"}
_MULTICALL = {"busybox", "toybox"}  # a shell only with an applet name after them
# GNU coreutils as one binary: these options name the program it runs as (the rest are its args).
_COREUTILS_PROG = {"--coreutils-prog", "--coreutils-prog-shebang"}
# Programs that complete their command with words read at run time.
_FILLS_IN = {"xargs", "parallel"}
# A script file a shell is given that is its standard input after all.
_STDIN_NAMES = {"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"}
# Assignments a shell acts on later: the prompt strings (expanded, substitutions too, when
# printed: PS4 for every `-x` trace line) and PROMPT_COMMAND run their value (what else a command
# sets up to run later is unseen.py's).
# Assignments whose value is a command: bash's prompts, and the shell npm runs scripts with.
# (npm's program options set in its environment too: review s31, helper 107)
_RUNS_VALUE = re.compile(r"^(?:PS[0-4]|PROMPT_COMMAND|(?i:npm_config_(?:script[_-]shell|shell|editor|call"
                         r"|browser|viewer|git)))\+?=(.*)$",
                         re.S)
MAX_WRAPPERS = 16  # wrappers stepped through in one command; past them the part is opaque
# Builtins that evaluate their arguments as arithmetic (array subscripts run $(...) there).
_EVALUATES = {"let", "[[", "((", "declare", "typeset", "local", "export", "readonly", "test",
              "[", "printf", "unset", "read", "mapfile", "readarray", "wait"}
_FIND_EXEC = {"-exec", "-execdir", "-ok", "-okdir"}
_COMPLETES = {"compgen", "complete"}  # -W's word list is expanded, -C's command run


def _base(word: str) -> str:
    return word.rsplit("/", 1)[-1] if "/" in word else word


def _skip_wrapper(words: list[str], i: int) -> tuple[int, list[str] | None]:
    """Past a wrapper at words[i] and its options: the index of the command it runs, and for
    `env -S STRING` the words that string splits into."""
    name, n = _base(words[i]), len(words)
    takes_arg = WRAPPER_ARGS[name]
    optional = OPTIONAL_ATTACHED.get(name, "")
    i += 1
    if name in POSITIONAL_FIRST and i < n and not words[i].startswith("-"):
        i += POSITIONAL_FIRST[name]  # setarch ARCH [options]: the arch comes first
    valued = False  # an option with a value was given (runcon: then no context positional)
    while i < n:
        w = words[i]
        if w == "--":
            i += 1
            break
        long_name, eq, value = w.partition("=")
        if name == "coreutils" and eq and long_name in _COREUTILS_PROG:
            return i + 1, [value]  # GNU's multicall: it runs as the program the option names
        if name == "env" and (w == "-S" or (w.startswith("-S") and not w.startswith("--")) or (
                len(long_name) > 2 and "--split-string".startswith(long_name))):
            if w.startswith("--"):
                arg = value if eq else (words[i + 1] if i + 1 < n else "")
                used = 1 if eq else 2
            else:
                arg = w[2:] or (words[i + 1] if i + 1 < n else "")
                used = 1 if w[2:] else 2
            return i + used, ["env", *env_split(arg)]  # env reads its options in there too
        if w in takes_arg or (w.startswith("--") and "=" not in w and len(w) > 2 and
                              any(o.startswith(w) for o in takes_arg if o.startswith("--"))):
            i += 2  # an option that takes a value (getopt takes any unambiguous abbreviation, `--s` too)
            valued = True
        elif name == "env" and w == "-":  # env's old spelling of -i
            i += 1
        elif w.startswith("-") and not w.startswith("--") and len(w) > 2:
            # A cluster (-Eu root, -iu X, -vS'...', -0I {}): the first letter that takes an
            # argument ends it, with the rest of the word or the next word as that argument.
            for k, letter in enumerate(w[1:], start=2):
                if name == "env" and letter == "S":
                    rest = w[k:] or (words[i + 1] if i + 1 < n else "")
                    return i + (1 if w[k:] else 2), ["env", *env_split(rest)]
                if f"-{letter}" in takes_arg:
                    i += 1 if w[k:] else 2
                    valued = True
                    break
                if letter in optional:  # its value, if any, is the rest of the word
                    i += 1
                    break
            else:
                i += 1
        elif w.startswith("-") and len(w) > 1 or (name == "env" and ASSIGNMENT.match(w)):
            i += 1
        else:
            break
    positionals = WRAPPER_POSITIONALS.get(name, 0)
    if name in POSITIONAL_WITHOUT_OPTIONS and valued:
        positionals = 0
    return min(n, i + positionals), None


def unwrap_stages(words: list[str], readings: int = 1, *,
                  git_options: bool = False) -> list[list[str]]:
    """Each command a line runs, outermost first: `FOO=1 sudo -u root /bin/rm -rf /` gives
    `sudo -u root /bin/rm -rf /` and `rm -rf /`. Leading assignments, redirections and keywords
    are dropped, wrappers are stepped through with their options and option arguments, a
    command's path is reduced to its name, and git's own options before its subcommand go
    (kept with `git_options`: what an option table reads)."""
    words = list(words)
    stages: list[list[str]] = []
    others: list[list[str]] = []  # a runner's other readings (runners.py), before the program
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        if w == "function" or (w == "coproc" and i + 2 < n and words[i + 2] == "{"):
            i += 2  # `function NAME`, `coproc NAME {`: the name is not a command
        elif ASSIGNMENT.match(w) or w in _KEYWORDS:
            i += 1
        elif _REDIRECT.match(w):
            i += 2 if w[-1] in "<>|&" else 1
        elif _base(w) in RUNNERS and (read := runner_readings(words, i)) is not None:
            if len(stages) + len(others) >= MAX_WRAPPERS:  # too many to follow: never allowed
                return stages + others + [[UNKNOWN_WORD]]
            stages.append([_base(w), *words[i + 1 :]])
            i = read[0]
            # Where the command starts if not at i: read to a bounded depth (`npm exec --a npm
            # exec --a ...` doubles the readings at each runner); past it, the part is opaque.
            for other in read[1] if readings > 0 else ():
                others += unwrap_stages(other, readings - 1, git_options=git_options)
            if read[1] and readings <= 0:  # not followed: a word not known, so never allowed
                return stages + others + [[UNKNOWN_WORD]]
        elif _base(w) in WRAPPERS:
            if len(stages) >= MAX_WRAPPERS:  # the caller marks the part opaque
                stages.append([_base(w), *words[i + 1 :]])
                return stages + others + [list(words[i + 1 :])]
            stages.append([_base(w), *words[i + 1 :]])
            i, split = _skip_wrapper(words, i)
            if split is not None:
                words = split + words[i:]
                i, n = 0, len(words)
        else:
            break
    rest = list(words[i:])
    if rest:
        rest[0] = _base(rest[0])
        if rest[0].startswith("git-") and len(rest[0]) > 4:  # git's exec path: git-push is git
            rest = ["git", rest[0][4:], *rest[1:]]
        if rest[0] == "git" and not git_options:
            rest = skip_git_options(rest)
    return stages + others + [rest]


def normalise(words: list[str]) -> list[str]:
    """The command a line finally runs, with wrappers and the rest removed (see unwrap_stages):
    `FOO=1 sudo -u root /bin/rm -rf /` -> `rm -rf /`."""
    return unwrap_stages(words)[-1]


def _inner_commands(words: list[str]) -> list[str]:
    """Command strings run by `eval ...`, `sh -c '...'`, `su -c '...'`, `flock F -c '...'`,
    `script -c '...'`, `watch ...` or `find -exec ... ;`."""
    if not words:
        return []
    if words[0] == "eval":
        return [" ".join(words[2:] if words[1:2] == ["--"] else words[1:])]
    if words[0] in _SHELLS or words[0] in ("su", "flock", "script", "runuser", "sg"):
        found = command_option(words)
        if found is not None:
            return found
        if words[0] == "sg" and len(words) > 2:  # sg GROUP COMMAND: run through sh -c
            return [" ".join(words[2:])]
    if words[0] == "trap":  # trap [--] STRING SIGNAL...: STRING runs when the signal comes
        args = words[1:]
        while args and args[0] in ("-l", "-p", "-lp", "-pl"):
            args = args[1:]
        if args[:1] == ["--"]:
            args = args[1:]
        return args[:1] if len(args) > 1 and args[0] != "-" else []
    if words[0] in ("mapfile", "readarray"):  # -C STRING: run for every line read
        return mapfile_callbacks(words)
    if words[0] in _COMPLETES:  # -C STRING: run for the completions
        return completion_commands(words)
    if found := shell_strings(words):  # npm --call, pnpm -c, capsh --, tmux new, sem, ...
        return found
    if words[0] == "git":
        return git_commands(words)
    if words[0] == "watch":  # watch runs its words through sh -c
        rest = words[_skip_wrapper(words, 0)[0] :]
        return [" ".join(rest)] if rest else []
    if words[0] == "alias":  # alias g='git push': what g will run
        return [w.split("=", 1)[1] for w in words[1:] if "=" in w]
    if words[0] == "find":
        found, k = [], 1
        while k < len(words):
            if words[k] in _FIND_EXEC:
                end = k + 1
                while end < len(words) and words[end] not in (";", "+"):
                    end += 1
                found.append(shlex.join(words[k + 1 : end]))
                k = end
            k += 1
        return found
    return []


def _starts_a_shell(stage: list[str], last: list[str]) -> bool:
    """`su`, `sg GROUP` or `sudo -s`/`-i` with no command: a shell reading its input."""
    name = stage[0]
    if name in ("su", "sg"):
        return command_option(stage) is None and (name == "su" or len(stage) <= 2)
    if name in ("sudo", "doas") and not last:
        return any(w in ("--shell", "--login") or (w.startswith("-") and not w.startswith("--")
                   and ("s" in w or "i" in w)) for w in stage[1:])
    return False


def _values(value: str) -> list[str]:
    """A value given to a variable: itself, or an array's elements (`PS4=('$(cmd)')`)."""
    if not (value.startswith("(") and value.endswith(")")):
        return [value]
    try:
        return shlex.split(value[1:-1])
    except ValueError:
        return [value[1:-1]]


def _runs_unseen(stages: list[list[str]], words: list[str], script_seen: bool) -> bool:
    """Whether the part runs what its words do not show: words xargs reads from its input,
    the paths find puts in place of {}, a value env -S reads from the environment, a name
    `hash -p` or `enable -f` points elsewhere, what a command sets up to run later (an alias,
    `fc`, PS4 given by `read`: unseen.py), a shell's startup file, or a shell whose script
    comes from its standard input (a pipe, a file, the terminal) unless script_seen (a
    here-document or -string the caller looks into)."""
    if sets_up_later_runs(words, stages[-1] if stages else []):
        return True
    for stage in stages:
        if not stage:
            continue
        name = stage[0]
        if name in _FILLS_IN or UNKNOWN_WORD in stage or _starts_a_shell(stage, stages[-1]):
            return True
        if name == "find" and any(w in _FIND_EXEC for w in stage) and any("{}" in w for w in stage):
            return True
        if _runs_its_words(stage):
            return True
    program = stages[-1] if stages else []
    if program[:1] and program[0] in (".", "source"):
        if program[1:2] == [] or program[1] in _STDIN_NAMES:
            return not script_seen
        return names_open_file(program[1])
    return bool(program) and program[0] in _SHELLS - _MULTICALL and (
        _reads_stdin(program, script_seen) or reads_a_startup_file(program))


def _runs_its_words(stage: list[str]) -> bool:
    """tmux send-keys and screen -X stuff type their words into a shell; `hash -p PATH NAME`
    and `enable -f FILE NAME` point a name elsewhere: what runs is in the words, not followed,
    so they are read flat against the forbid rules (CommandPart.bounded: review h159)."""
    letter = {"hash": "p", "enable": "f"}.get(stage[0] if stage else "")
    return types_into_a_shell(stage) or letter is not None and any(
        w.startswith("-") and letter in w for w in stage[1:])


def _reads_stdin(shell: list[str], script_seen: bool) -> bool:
    """A shell given no -c and no script file, or -s: it runs what its standard input holds
    (unless script_seen: a here-document or -string on it). A script file that is an open file
    by another name (`/dev/fd/3`, `//dev/stdin`) may be any input: never known."""
    if command_option(shell) is not None:
        return False
    j, dash_s = past_shell_options(shell, 1)
    if dash_s or j >= len(shell) or shell[j] in _STDIN_NAMES:
        return not script_seen
    return names_open_file(shell[j])


def strict_variants(part: CommandPart) -> tuple[tuple[str, ...], ...]:
    """The word lists forbid and ask rules are matched against: as written, and each command
    the wrappers run, down to the last."""
    return word_variants(tuple(part.words))


# Every forbid and ask rule looks at the same part's variants: worked out once per command's
# words, not once per rule. Keyed by the words themselves, so a result never outlives them.
# Only commands of at most WORDS_CACHED words are kept, CACHED of them: a few MiB at most,
# whatever an agent sends (a 4 KiB subject of 2,000 words would hold ~0.5 MiB an entry).
WORDS_CACHED = 64
CACHED = 256


def word_variants(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return _cached_variants(words) if len(words) <= WORDS_CACHED else _variants(words)


def _variants(words: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    out = [words]
    for stage in map(tuple, unwrap_stages(list(words))):
        if stage not in out:
            out.append(stage)
    return tuple(out)


_cached_variants = functools.lru_cache(maxsize=CACHED)(_variants)


def forget_variants() -> None:
    _cached_variants.cache_clear()


def _may_step(word: str) -> bool:
    """A program word holding a glob that may name a wrapper or runner (an extglob may).
    The glob is compiled once and tried on every name (fnmatchcase compiles each new glob
    into its cache of 256: 500 globbed program words on one line took 120 ms more)."""
    name = word.rsplit("/", 1)[-1]
    if _EXTGLOB.search(name):
        return True
    matches = glob_matcher(name)  # as bash reads it: `[^x]`, `[[:alpha:]]` (review h161)
    return any(matches(w) for w in _STEPS)


def expand(line: str, depth: int = MAX_DEPTH) -> list[CommandPart]:
    """Top-level parts, then every nested command (substitutions, eval, sh -c) marked nested.
    A nested command that cannot be read (or lies too deep) makes its parent opaque. Raises
    ParseError for a line that cannot be read at all, a nesting too deep for Python included."""
    # bash drops a NUL byte from a script it reads (`r<NUL>m` is rm): read the line as it
    # does, and never let a rule allow it (`bash -c` cannot even be given one).
    try:
        try:
            parts = _expand(line.replace("\x00", ""), depth, [MAX_NESTED_CHARS])
        except ParseError:
            if not shellscan.here_in_substitution(line):
                raise
            with shellscan.reading_bodies(False):  # a `<<` taken for one may be a shift: `$( ((1<<A)) )`
                parts = _expand(line.replace("\x00", ""), depth, [MAX_NESTED_CHARS])
    except RecursionError:
        raise ParseError("nested too deeply to read") from None
    for part in parts if "\x00" in line else ():
        part.opaque = part.opaque or not part.nested
    return parts


def _expand(line: str, depth: int, left: list[int]) -> list[CommandPart]:
    """expand(), `left` holding the characters of nested commands still to be read."""
    top = split_command(line)
    out = list(top)
    folder: str | None = None  # the working folder, as `cd` in the line moves it (folders.py)
    # sh reads $'...' as $ and a plain quote, and bash reads $"..." as "..." (no translation
    # found): check those readings too (`cat <<$"A"` ends its body at a line `A`: review h151)
    alternates = [(alt, True) for alt in {line.replace("$'", "'"), line.replace('$"', '"'), ansi_c_decoded(
        line)} - {line}] if "$'" in line or '$"' in line else []
    alternates += [(line, False)] if shellscan.here_in_substitution(line) and shellscan.bodies_read() else []
    if alternates:
        other = []
        for alt, bodies in alternates:
            left[0] -= len(alt) + NESTED_COST
            try:
                with shellscan.reading_bodies(bodies):
                    other += _expand(alt, depth - 1, left) if depth > 0 and left[0] >= 0 else []
            except ParseError:
                pass
        if depth <= 0 or left[0] < 0:
            for p in top:
                p.opaque = p.bounded = True
        for p in other:
            p.nested = True
        out.extend(other)
    cds = CdContexts()  # CommandPart.cd_context, part by part
    given: list[str | None] = []  # the environment variable each part gives a value (unseen.py)
    for part in top:
        words = command_words(part)
        stages = unwrap_stages(words)
        program = stages[-1]
        part.folder = own_folder(folder, words[: len(words) - len(program)])
        folder = folder_after(folder, program, "CDPATH" in line)
        part.cd_context = cds.next(part.joined, canonical(part), program[:1] in CdContexts.CDS)
        if program[:1] == ["git"] and git_runs_config(words) or npm_sets_a_program(words):
            part.opaque = True  # `git -c alias.p='push --force' p`, core.sshCommand, ...
        if len(stages) > MAX_WRAPPERS:
            part.opaque = part.bounded = True  # `sudo sudo ... ls`: not followed further
        if any(UNKNOWN_WORD in stage or _runs_its_words(stage) for stage in stages):
            part.bounded = True  # a runner's readings past their bound, keys typed into a shell
        if program and any(c in program[0] for c in "*?[") or _EXTGLOB.search(program[0] if program else ""):
            part.opaque = True  # /usr/bin/gi[t]: a glob names the program
            # One that may name a wrapper or runner stopped the reader (`/usr/bin/nic? rm -rf ~`
            # runs rm), as does a brace expansion (`env {-u,X} rm -rf ~`): review h159
            part.bounded = part.bounded or _may_step(program[0])
        if part.opaque and program and _BRACES.search(program[0]):
            part.bounded = True
        if program[:1] and (program[0] in _COMPLETES or program[0] in _EVALUATES and any(
                "$(" in w or "`" in w for w in program)):
            for w in program[1:]:  # `let 'a[$(cmd)]'`, `compgen -W '$(cmd)'` run cmd
                body_substitutions(w, part)
        if evaluates_a_value(program) or names_bash_integer(words):
            part.opaque = True  # `printf -v 'a[x]' 1` evaluates x's value: a[$(cmd)] runs cmd
        for w in words[: len(words) - len(program)]:
            if ASSIGNMENT.match(w) and ("$(" in w or "`" in w):
                # bash evaluates a value as arithmetic where its name stands bare in one
                # (`x='a[$(cmd)]'; (( x ))` runs cmd): its substitutions are looked at.
                body_substitutions(w.split("=", 1)[1], part)
        bodies = part.inner + [b for stage in stages for b in _inner_commands(stage)]
        bodies += [v for w in words if (m := _RUNS_VALUE.match(w)) for v in _values(m.group(1))]
        scripts: list[str] = []
        if program and program[0] in (*_SHELLS, ".", "source"):
            scripts = part.heredocs + [t for op, t in redirections(part) if op.endswith("<<<")]
            bodies += scripts  # a shell reading its script from a here-document or -string
        on_input = any(op.lstrip("0") in ("<<", "<<-", "<<<") for op, _ in redirections(part))
        if _runs_unseen(stages, words, bool(scripts) and on_input):
            part.unseen = True
        if (target := network_target(part)) is not None:
            part.unseen, part.why_unseen = True, (
                f"bash itself may connect for {target} (/dev/tcp, /dev/udp): without a sandbox, "
                "no gate sees it")
        given.append(sets_environment(words, program)
                     or fd_name_given([op for op, _ in redirections(part)]))
        for body in bodies:
            left[0] -= len(body) + NESTED_COST
            if depth <= 0 or left[0] < 0:
                part.opaque = part.bounded = True
                continue
            try:
                inner = _expand(body, depth - 1, left)
            except ParseError:
                part.opaque = part.bounded = True
                continue
            for p in inner:
                p.nested = True
                p.folder = p.folder if part.folder is None else UNKNOWN
                if moves(normalise(command_words(p))):  # `eval 'cd /'; rm -rf *`
                    folder = UNKNOWN
                inner_words = command_words(p)  # `eval 'export GIT_DIR=D'`: given here too
                given[-1] = given[-1] or sets_environment(inner_words, normalise(inner_words))
            if any(p.blind for p in inner):  # `sh -c '$1 push' _ git`: its parent is as blind
                part.opaque = True
            part.bounded = part.bounded or any(p.bounded for p in inner)
            out.extend(inner)
    after_environment(top, given)
    return out
