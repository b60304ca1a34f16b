"""Programs that run a command named after a subcommand of their own (`npm exec -- CMD`,
`uv run CMD`, `yarn workspace W exec CMD`: wrappers.RUNNERS), and programs that hand a string
of their words to a shell (`capsh -- -c`, `tmux new CMD`, `sem CMD`, `pnpm dlx -c`, `bun exec`,
`npm --call`), for unwrap.py. Where a runner's option is not known to take a value, both
readings are kept: a forbid rule must see the command whichever one the tool takes.
"""

from __future__ import annotations

import re
import shlex

from console.policy.envsplit import UNKNOWN_WORD as UNKNOWN  # a word the rules cannot read
from console.policy.paralleljobs import jobs
from console.policy.runnerstarts import past_dashes, plausible_starts, steps_into
from console.policy.tmuxkeys import TYPES as TMUX_TYPES
from console.policy.tmuxkeys import typed_lines
from console.policy.wrappers import (
    NESTED_RUNNERS,
    NESTED_SCRIPTS,
    NESTED_SHELL_FLAGS,
    NESTED_SHELL_JOINS,
    NESTED_WORD_LINES,
    RUNNERS,
    WRAPPER_ARGS,
)

UNREAD = "${-}"  # what a runner's own script runs: never allowed, no bound passed (review h158)
MAX_READINGS = 4  # other places a command may start, per runner
CUT = -1  # program_starts' last start when it stopped looking with words left
_ABBREVIATES = {"npm"}  # npm takes a unique prefix of a command (`npm exe` is exec)
_TMUX_TOP = {"-L", "-S", "-f", "-T"}  # tmux's options before its command that take a value
# tmux commands that run a shell command given last, with their options that take a value.
_NEW = {"-c", "-e", "-F", "-n", "-s", "-t", "-x", "-y", "-f"}
_WINDOW = {"-c", "-e", "-F", "-n", "-t"}
_SPLIT = {"-c", "-e", "-F", "-l", "-t"}
_RESPAWN = {"-c", "-e", "-t"}
_TMUX_RUNS = {"new-session": _NEW, "new": _NEW, "new-window": _WINDOW, "neww": _WINDOW,
              "split-window": _SPLIT, "splitw": _SPLIT, "respawn-pane": _RESPAWN,
              "respawnp": _RESPAWN, "respawn-window": _RESPAWN, "respawnw": _RESPAWN,
              "run-shell": {"-c", "-d", "-t"}, "run": {"-c", "-d", "-t"}}


def _base(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _past_subcommand(words: list[str], k: int, sub: tuple[str, ...], values: set[str],
                     abbreviates: bool) -> int | None:
    """The index past `sub` (its words, `*` for any one) from words[k], with options between
    them skipped (a word after an option not known to take a value may be that value)."""
    n = len(words)
    for part in sub:
        maybe_value = False
        while True:
            if k >= n or words[k] == "--":
                return None
            w = words[k]
            if w.startswith("-") and len(w) > 1:
                k, maybe_value = (k + 2, False) if w in values else (k + 1, "=" not in w)
                continue
            if part in ("*", w) or (abbreviates and len(w) >= 3 and part.startswith(w)):
                k += 1
                break
            if not maybe_value:
                return None
            k, maybe_value = k + 1, False
    return k


def program_starts(words: list[str], k: int, values: set[str]) -> list[int]:
    """Where the command after a runner's options may start, from words[k]: first as read with
    every option not in `values` taken as a flag, then as read with each taking the next word.
    Past MAX_READINGS of them with words left, the last is CUT: where it starts is not known
    (review s30: five options not known to take a value hid the command that ran)."""
    starts: list[int] = []
    n = len(words)
    while k < n:
        if len(starts) > MAX_READINGS:
            starts.append(CUT)
            break
        w = words[k]
        if w == "--":
            starts += [k + 1] if k + 1 < n else []
            break
        if not (w.startswith("-") and len(w) > 1):
            starts.append(k)
            break
        # Only the option itself surely takes the next word: npm reads an abbreviation it
        # cannot resolve (`--ta`: --tag? --tag-version-prefix?) as a flag, and the next word
        # is the command (review s31, helper 106: `npx --ta git push --force` pushed), so an
        # abbreviation keeps both readings below.
        if w in values:
            k += 2
            continue
        if "=" not in w and k + 1 < n and not words[k + 1].startswith("-"):
            starts.append(k + 1)  # read as a flag: the command is the next word
            k += 2  # read as taking a value: the command comes later
            continue
        k += 1
    return starts


def runner_readings(words: list[str], i: int) -> tuple[int, list[list[str]]] | None:
    """For a runner at words[i] whose subcommand runs a command: where that command starts as
    first read, and the other word lists it may be. None when the words run none."""
    tool = _base(words[i])
    before, subcommands = RUNNERS[tool]
    for sub, values in subcommands.items():
        at = _past_subcommand(words, i + 1, sub, before | values, tool in _ABBREVIATES)
        if at is None:
            continue
        starts = program_starts(words, at, values)
        if not starts:  # (npm's --script-shell: shell_strings, for every npm subcommand)
            return len(words), []
        others = [words[k:] if k != CUT else [UNKNOWN] for k in starts[1:]]
        if tool in ("npm", "npx") and "--" in words[starts[0]:] and "--" not in words[:starts[0]]:
            # npm's own parser takes the first `--` it meets, after the command too: `npx --ta
            # rm -- -rf ~` ran `rm -rf ~` (review s31, helper 106)
            cut = words[starts[0]:]
            others.append(cut[:cut.index("--")] + cut[cut.index("--") + 1:])
        first = words[starts[0]] if starts[0] < len(words) else ""
        if tool == "hatch" and ":" in first:  # hatch run ENV:COMMAND
            others.append([first.split(":", 1)[1], *words[starts[0] + 1 :]])
        return starts[0], others
    if tool in _OWN_COMMANDS:  # `yarn touch`, `pnpm touch`: implicit exec
        at = _past_subcommand(words, i + 1, ("*",), before, False)
        if at is not None and words[at - 1] not in _OWN_COMMANDS[tool]:
            return at - 1, []
    return None


# yarn's and pnpm's own commands: any other first word is a package's program or script, run
# as `yarn run WORD` runs it (implicit exec: review s30, `yarn touch` ran touch unread). Not
# yarn's `node`: `yarn node ARGS` runs `node ARGS`, read so (review s31).
_OWN_COMMANDS = {
    "yarn": frozenset({
        "access", "add", "audit", "autoclean", "bin", "cache", "check", "config", "constraints",
        "create", "dedupe", "dlx", "exec", "explain", "generate-lock-entry", "global", "help",
        "import", "info", "init", "install", "licenses", "link", "list", "login", "logout",
        "npm", "outdated", "owner", "pack", "patch", "patch-commit", "plugin", "policies",
        "publish", "rebuild", "remove", "run", "search", "set", "stage", "tag", "team", "test",
        "unlink", "unplug", "up", "upgrade", "upgrade-interactive", "version", "versions", "why",
        "workspace", "workspaces"}),
    "pnpm": frozenset({
        "add", "audit", "bin", "c", "cat-file", "cat-index", "config", "create", "dedupe",
        "deploy", "dlx", "doctor", "env", "exec", "fetch", "find-hash", "i", "ignored-builds",
        "import", "init", "install", "install-test", "it", "licenses", "link", "list", "ln", "ls",
        "outdated", "pack", "patch", "patch-commit", "patch-remove", "prune", "publish",
        "rb", "rebuild", "recursive", "remove", "rm", "root", "run", "self-update", "server",
        "setup", "start", "store", "t", "test", "un", "uninstall", "unlink", "up", "update",
        "upgrade", "why", "approve-builds"}),
}


def _abbreviates(word: str, option: str, shortest: int) -> bool:
    """`word` is `option` or a prefix of it at least `shortest` long (npm takes those)."""
    return len(word) >= shortest and option.startswith(word)


# npm's options whose value is a program npm runs, with the shortest abbreviation read as one:
# a shell its scripts and -c strings run with (`--shell` is npx's spelling of --script-shell),
# or a program it starts (`npm edit`, `npm docs`, `npm help`, git dependencies). Review s31,
# helper 106: `npm edit foo --editor='rm -rf DIR'` removed DIR, and `npx --shell=P` ran P.
_NPM_SHELLS = (("--script-shell", 5), ("--shell", 4))
_NPM_PROGRAMS = (("--editor", 4), ("--browser", 4), ("--viewer", 4), ("--git", 5))
_NPM_NODE = ("--node-options", 7)  # node's own options for every node npm starts: `--require F` runs F
_NPM_C = re.compile(r"-[A-Za-z]*c")  # -c, alone or last of a cluster of npm's short flags


def _npm_dashes(word: str) -> str:
    """npm reads `---call` as `--call` (any number of dashes: review s31, helper 107)."""
    return "--" + word.lstrip("-") if word.startswith("---") else word


def npm_sets_a_program(words: list[str]) -> bool:
    """`npm config set script-shell P` (`c set`, `conf set`, `set`, `KEY=VALUE`, any program
    option, options anywhere), or a config file named on the line (`--userconfig F`,
    `npm_config_globalconfig=F`): every later npm command of the project may run P, as `git
    config core.pager` does for git (review s31, helpers 107 and 109)."""
    at = next((k for k, w in enumerate(words) if _base(w) in ("npm", "pnpm", "yarn")), None)
    if at is None:
        return False
    named = [_npm_dashes(w).lower().replace("_", "-") for w in words]
    if any(w.startswith(("--userconfig", "--globalconfig", "npm-config-userconfig=",
                         "npm-config-globalconfig=")) for w in named):
        return True
    rest = named[at + 1 :]
    verb = next((k for k, w in enumerate(rest) if w in ("config", "c", "conf", "set")), None)
    if verb is None or (rest[verb] != "set" and "set" not in rest[verb + 1 :]):
        return False
    keys = {"--" + k.split("=", 1)[0] for k in rest[verb + 1 :] if not k.startswith("-")}
    return any(_abbreviates(key, option, len(option)) for key in keys
               for option, _ in (*_NPM_SHELLS, *_NPM_PROGRAMS, _NPM_NODE, ("--call", 6)))


def _npm_programs(words: list[str]) -> list[str]:
    """The command lines npm's program options give it to run (their arguments unknown)."""
    found = []
    for k, w in enumerate(words):
        name, eq, value = _npm_dashes(w).partition("=")
        given = [value] if eq else words[k + 1 : k + 2]
        for option, shortest in _NPM_SHELLS:
            if _abbreviates(name, option, shortest):
                found += [f"{shlex.quote(p)} -c {UNKNOWN}" for p in given]
        for option, shortest in _NPM_PROGRAMS:
            if _abbreviates(name, option, shortest):
                found += [f"{p} {UNKNOWN}" for p in given]
        if _abbreviates(name, *_NPM_NODE):
            found += [f"node {p} {UNKNOWN}" for p in given]
    return found


def shell_strings(words: list[str]) -> list[str]:
    """Command strings these programs hand to a shell (or run as a line): `npm --call S`,
    `pnpm dlx -c WORDS`, `bun exec S`, `sem WORDS`, `capsh [--shell=P] -- ARGS` (and `-+`),
    `tmux -c S`, `tmux new WORDS`, the line `tmux send-keys` types."""
    name = words[0] if words else ""
    if name in ("npx", "npm"):  # -c/--call (npm takes `--c`, `--ca`...) anywhere on the line;
        # --script-shell P: every script of any subcommand runs as `P -c SCRIPT` (review s30),
        # and the other programs npm may start (_npm_programs)
        dashed = [_npm_dashes(w) for w in words]  # -yc, -qc: -c bundled; -c=S (helper 107)
        return [v for k, w in enumerate(dashed) for v in (
            [words[k + 1]] if (_NPM_C.fullmatch(w) or _abbreviates(w, "--call", 3)) and k + 1 < len(words)
            else [w.split("=", 1)[1]] if "=" in w and (_abbreviates(w.split("=", 1)[0], "--call", 3)
                                                       or _NPM_C.fullmatch(w.split("=", 1)[0]))
            else [])] + _npm_programs(words)
    if name in ("pnpm", "pnpx"):
        at = next((k for k, w in enumerate(words)
                   if w in ("-c", "--shell-mode") or w.startswith("--shell-mode=")), None)
        return [" ".join(words[at + 1 :])] if at is not None and at + 1 < len(words) else []
    if name == "bun" and words[1:2] == ["exec"]:
        return [" ".join(words[2:])] if len(words) > 2 else []
    if name == "sem":  # GNU parallel's sem: its command words go through a shell
        starts = program_starts(words, 1, WRAPPER_ARGS["sem"])
        return [" ".join(words[starts[0] :])] if starts and starts[0] != CUT else []
    if name == "capsh":
        return _capsh(words)
    if name == "strace":  # -o |CMD (or !CMD): its trace goes into CMD's input, run by a shell
        return [v[1:] for v in _strace_outputs(words) if v[:1] in ("|", "!")]
    if name == "tmux":
        return _tmux(words)
    return _program_options(name, words) + nested_readings(words)


# Options whose value is a program the tool runs (with arguments of its own, or a shell line):
# read as commands, so a forbid rule sees them (review s31, helper 107: `tar -I 'touch T'`,
# `sort --compress-program=touch`, `rg --pre touch`, `man -P touch` each ran under a forbid
# of touch). Short ones also attached (`-Itouch`); long ones down to the length given.
_PROGRAM_OPTIONS = {
    "tar": (("-I", 2), ("--use-compress-program", 7), ("--to-command", 6), ("-F", 2),
            ("--info-script", 6), ("--new-volume-script", 6), ("--checkpoint-action", 14)),
    "sort": (("--compress-program", 4),),
    "rg": (("--pre", 5),),
    "man": (("-P", 2), ("--pager", 4)),
    "rsync": (("-e", 2), ("--rsh", 5)),
    "zip": (("-TT", 3), ("--unzip-command", 4)),
    "scp": (("-S", 2),), "sftp": (("-S", 2),),
}
# ssh's -o keys whose value runs on this machine (review s31, helper 109)
_SSH_LOCAL = ("proxycommand", "localcommand", "knownhostscommand")
_EDITORS = {"vim", "vi", "nvim", "view", "ex", "vimdiff", "rvim"}  # -c, --cmd, +CMD, -S run commands


def _program_options(name: str, words: list[str]) -> list[str]:
    if name in ("ssh", "scp", "sftp") and (found := _ssh_commands(words)):
        return found
    if name in _EDITORS and any(w.startswith(("-c", "--cmd", "+", "-S")) for w in words[1:]):
        return [UNKNOWN]  # an editor's own commands: `:!CMD` runs CMD
    if name == "tar" and len(words) > 1 and not words[1].startswith("-") and (
            set(words[1]) & set("IF")):
        return [UNKNOWN]  # `tar cIf P ...`: old-style letters, a program among their values
    found = []
    for k, w in enumerate(words[1:], start=1):
        key, eq, value = w.partition("=")
        for option, shortest in _PROGRAM_OPTIONS.get(name, ()):
            if option.startswith("--") and key.startswith("--") and _abbreviates(key, option, shortest):
                found += [value] if eq else words[k + 1 : k + 2]
            elif not option.startswith("--") and w.startswith(option) and not w.startswith("--"):
                found += [w[len(option):].removeprefix("=")] if len(w) > len(option) else words[k + 1 : k + 2]
    # tar's --checkpoint-action=exec=CMD: the action's own command
    return [v.split("=", 1)[1] if name == "tar" and v.startswith("exec=") else v for v in found]


def _ssh_commands(words: list[str]) -> list[str]:
    """ssh's `-o ProxyCommand=CMD` (-oKEY=V, `-o 'KEY V'`) and such, run here; `-F FILE`'s
    settings are not read: unknown."""
    found = []
    for k, w in enumerate(words[1:], start=1):
        if w == "-F" or (w.startswith("-F") and len(w) > 2):
            found.append(UNKNOWN)
        value = words[k + 1] if w == "-o" and k + 1 < len(words) else w[2:] if w.startswith("-o") else None
        if value is not None:
            key, _, command = value.replace("=", " ", 1).partition(" ")
            if key.lower() in _SSH_LOCAL:
                found.append(command.strip())
    return found


# strace's long flags that are also the start of an option with a value: the flag itself,
# never its abbreviation (`--summary -o '|CMD'`: review s31, helper 107).
_STRACE_FLAGS = {"--summary", "--summary-only", "--summary-wall-clock", "--seccomp-bpf",
                 "--decode-fds", "--daemonize", "--follow-forks", "--output-separately"}


def _strace_outputs(words: list[str]) -> list[str]:
    """strace's -o values: `-o F`, `-oF`, `--output[=]F`, and -o in a cluster (`-fo F`,
    `-fo'|evil'`: review s30), read as getopt does (a letter that takes a value ends it)."""
    takes = WRAPPER_ARGS["strace"]
    found, k = [], 1
    while k < len(words):
        w, after = words[k], words[k + 1] if k + 1 < len(words) else ""
        if w.startswith("--output"):
            found.append(w.split("=", 1)[1] if "=" in w else after)
        elif w.startswith("--") and "=" not in w and w not in _STRACE_FLAGS and len(w) > 2 and any(
                o.startswith(w) for o in takes if o.startswith("--")):
            k += 1  # its value (`--columns 40 -o '|CMD'`: review s31, helper 106)
        elif w.startswith("-") and not w.startswith("--"):
            for at, letter in enumerate(w[1:], start=2):
                if f"-{letter}" in takes:
                    if letter == "o":
                        found.append(w[at:] or after)
                    k += 0 if w[at:] else 1
                    break
        elif not w.startswith("-"):
            break  # the command strace runs
        k += 1
    return found


def nested_readings(words: list[str]) -> list[str]:
    """The command a NESTED_RUNNERS program runs, read from each word past its name that is not
    an option (its options are not known, so a value may be the start), and from past a `--`:
    at most NESTED_STARTS of them, and past them a reading no rule can see (UNKNOWN). Reading
    too many is safe: only forbid and ask rules look at a nested command. Of the words naming a
    wrapper or another such program, the first starts a reading (read as that program reads its
    words: `srun -n 1 nice python app.py dd` runs python, review h165); past a second every
    word is a start and they start none, which would multiply readings at every depth. One that
    hands a shell a line or runs its own scripts starts a reading (`tini watchexec 'rm -rf /'`,
    `tini npx -c ...`, `tini gdb -ex ...`: review h153), at most NESTED_LINE_READERS."""
    name = words[0] if words else ""
    if name not in NESTED_RUNNERS:
        return []
    if len(words) > NESTED_WORDS:
        return [UNKNOWN]
    end = words.index("--", 1) if "--" in words[1:] else len(words)
    starts = plausible_starts(words, [k for k in range(1, end) if words[k][:1] != "-"], _STEPPED)
    into = steps_into(words, starts, _STEPPED)
    # parallel's jobs: its command given each argument (`parallel -k {} ::: dd`: review h168)
    ran, past = jobs(words, starts + past_dashes(words, end, _STEPPED), NESTED_STARTS) if (
        name == "parallel") else ([], False)
    starts = [k for k in starts if k == into or _base(words[k]) not in _STEPPED]
    # At most two of them start a reading (each reads its own words again, at every depth:
    # `hyperfine hyperfine ...` took seconds); past them, a reading no rule can see.
    readers = [k for k in starts if _base(words[k]) in _READS_A_LINE]
    starts = [k for k in starts if k not in readers[NESTED_LINE_READERS:]]
    starts += past_dashes(words, end, _STEPPED)  # `perf stat -- record CMD` (review h161)
    lines = [w for w in words[1:] if w[:1] != "-" and _base(w) not in _STEPPED | _READS_A_LINE] if (
        name in NESTED_WORD_LINES) else []
    found = [shlex.join(words[k:]) for k in starts[:NESTED_STARTS]] + lines[:NESTED_STARTS]
    if name in NESTED_SHELL_JOINS or NESTED_SHELL_FLAGS.get(name) in words[1:end]:
        # one line for a shell: `'rm -rf /'` is rm
        found += [" ".join(words[k:]) for k in starts[:NESTED_STARTS]]
    scripts = NESTED_SCRIPTS.get(name, ())
    given = [(k, o) for k in range(1, end) for o in scripts if _names_option(words[k], o)]
    joined = [v for w in words[1:end] if name in NESTED_WORD_LINES and (v := _joined_value(w)) is not None]
    # What those options run, read as lines too (never allowed, but a forbid rule sees it:
    # `perf stat --pre 'rm -rf ~' true`, `gdb -ex 'shell rm -rf ~'`: review h155).
    found += [v for k, o in given for v in _script_lines(words, k, o)][:NESTED_STARTS]
    found += joined[:NESTED_STARTS]
    found += _with_parameters(words[1:end], lines) if name == "hyperfine" else []
    found += ran
    if len(starts) > NESTED_STARTS or len(lines) > NESTED_STARTS or len(readers) > NESTED_LINE_READERS or past:
        found.append(UNKNOWN)  # past the reader's bounds
    elif given or joined:  # never allowed, but no bound was passed: not read flat (review h158)
        found.append(UNREAD)
    return found


def _with_parameters(words: list[str], lines: list[str]) -> list[str]:
    """hyperfine's command lines with its parameter lists' values put in (`-L x 'ls,rm -rf ~'
    '{x}'` runs `rm -rf ~`: review h156), every list at once, at most NESTED_STARTS of them."""
    params = [(words[k + 1], words[k + 2].split(",", NESTED_STARTS)[:NESTED_STARTS])
              for k in range(len(words) - 2) if words[k] in ("-L", "--parameter-list")]
    filled = [line for line in lines if "{" in line][:NESTED_STARTS]
    for param, values in params:
        filled = [line.replace("{" + param + "}", v) for line in filled for v in values][:NESTED_STARTS]
    return filled if params else []


def _joined_value(word: str) -> str | None:
    """The value an option word holds (`--opt=VALUE`, `-oVALUE`, `-o=VALUE`); None for a word
    that holds none (`--opt`, `-o`, `--`, not an option). For hyperfine's options it is a line
    read nowhere else (`--prepare=LINE`, `-pLINE`: review h158)."""
    if word[:1] != "-" or word == "--" or "=" not in word and (word[:2] == "--" or len(word) <= 2):
        return None
    return word.split("=", 1)[1] if word[:2] == "--" or "=" in word[:3] else word[2:]


def _script_lines(words: list[str], k: int, option: str) -> list[str]:
    """The line an option at words[k] runs (its value, joined or the next word; in a cluster of
    flags, `entr -rs LINE`, both: review h156), and, read as a debugger's command, what its
    shell runs."""
    word = words[k]
    name = word.split("=", 1)[0]
    if len(option) == 2 and word != option and _CLUSTER.fullmatch(word):  # `-rs`, `-sr`
        values = [word[word.index(option[1], 1) + 1 :], *words[k + 1 : k + 2]]
    else:
        value = _joined_value(word) if "=" in word or name == word and len(option) == 2 else None
        values = [value if value is not None else words[k + 1] if k + 1 < len(words) else ""]
    return [v for value in values for v in (value, *_shell_lines(value)) if v]


_OPTIONS_END = re.compile(r"(?:^|\s)--(?:\s|$)")


def _shell_lines(value: str) -> list[str]:
    """What a debugger's command runs in a shell: gdb's `shell CMD` (a prefix of it, any blank
    after it: `shell<TAB>CMD` ran CMD, review h156) and `!CMD`, lldb's `platform shell [-h]
    [--] CMD`."""
    text = value.lstrip()
    if text[:1] == "!":
        return [text[1:]]
    head, rest = [*text.split(None, 1), "", ""][:2]
    if len(head) >= 2 and "platform".startswith(head):
        head, rest = [*rest.split(None, 1), "", ""][:2]
    if len(head) < 2 or not "shell".startswith(head):
        return []
    return [rest, *_OPTIONS_END.split(rest, 1)[1:]] if rest[:1] == "-" else [rest]


def _names_option(word: str, option: str) -> bool:
    """`word` gives `option`: as spelled, with `=VALUE`, by a unique prefix (perf's parser and
    gdb's getopt_long_only take one: `--po` is perf's --post, `-eval` gdb's --eval-command), or
    as a one-letter option with its value joined (`-oLINE`). Read widely: it only asks."""
    name = word.split("=", 1)[0]
    if name == option or option[1:2] != "-" and len(option) == 2 and word.startswith(option):
        return True
    if len(option) == 2 and option[1:2] != "-" and _CLUSTER.fullmatch(word) and option[1] in word:
        return True  # a one-letter option among others (`entr -rs LINE`: review h156)
    whole = option.lstrip("-")
    return word[:1] == "-" and len(whole) > 1 and _abbreviates(
        name.lstrip("-"), whole, 2 if name[:2] == "--" else 3)


_CLUSTER = re.compile(r"-[A-Za-z]{2,}")  # flags given together, getopt's way


NESTED_STARTS = 8
TYPED_MOST = 4096  # characters of a line tmux send-keys types, read as a shell line
NESTED_LINE_READERS = 2
NESTED_WORDS = 64  # past this many words, a nested runner's command is not looked for
# Programs that hand a shell a line of their words, or run scripts of their own: a reading
# starts at their name, since the ones from the words after it miss that line.
_READS_A_LINE = NESTED_SHELL_JOINS | set(NESTED_SHELL_FLAGS) | set(NESTED_SCRIPTS) | {
    "npx", "npm", "pnpm", "pnpx", "bun", "sem", "strace", "capsh", "tmux", "flock", "runuser",
    "su", "sg", "script", "watch", "env", "screen"}
_STEPPED = (NESTED_RUNNERS | set(WRAPPER_ARGS) | set(RUNNERS)) - _READS_A_LINE


def _capsh(words: list[str]) -> list[str]:
    """capsh ... -- ARGS runs `bash ARGS` (`-+` too, by execve), or --shell=PROG's ARGS."""
    shell = "/bin/bash"
    for k, w in enumerate(words[1:], start=1):
        if w.startswith("--shell="):
            shell = w.split("=", 1)[1]
        elif w in ("--", "-+"):
            return [shlex.join([shell, *words[k + 1 :]])]
    return []


def _tmux(words: list[str]) -> list[str]:
    found, k, n = [], 1, len(words)
    while k < n and words[k].startswith("-"):
        if words[k] == "-c" and k + 1 < n:  # tmux -c CMD: runs CMD with the default shell
            found.append(words[k + 1])
        k += 2 if words[k] in _TMUX_TOP | {"-c"} else 1
    if k < n and words[k] in _TMUX_RUNS:
        starts = program_starts(words, k + 1, _TMUX_RUNS[words[k]])
        if starts and starts[0] != CUT:
            found.append(" ".join(words[starts[0] :]))
    # `tmux send-keys -t s 'rm -rf ~' Enter` (review h165). A long typed line is not read but
    # asked: read, it used up the whole line's budget of nested text (`send-keys <70,000 a>
    # Enter; sh -c 'dd ...'` was asked, no longer refused; s41)
    typed = typed_lines(words)
    read = [t for t in typed if len(t) <= TYPED_MOST]
    return found + read + ([UNKNOWN] if len(read) < len(typed) else [])


def types_into_a_shell(words: list[str]) -> bool:
    """tmux send-keys and screen -X (stuff): words typed into a shell already running, which
    runs them as it likes: never seen."""
    name = words[0] if words else ""
    if name == "tmux":
        return any(w in TMUX_TYPES for w in words[1:])
    if name == "screen":
        return any(w.startswith("-") and not w.startswith("--") and "X" in w for w in words[1:])
    return False
