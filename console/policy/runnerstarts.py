"""Where the command a nested runner runs may start (wrappers.NESTED_RUNNERS, for
runners.nested_readings): its options are not known, so each word that is not an option may be
the start. Of those, a word past the runner's own positional words (`gosu USER CMD`, `perf stat
CMD`) and past a word of the command cannot be: it is an argument of that command, and read as
a command of its own it refused everyday lines (`perf stat grep -c dd log`, `srun -n 1 grep dd
file`, `ccache gcc -o dd dd.c` were refused by a forbid rule "dd": review h158).

A word is surely a positional one when the word before it is not an option (an option's value
follows the option: that one may be a value, so a start), so a start is kept while at most the
runner's own count of positional words come before it. A runner not named here, or given in a
shape not known (`perf mem record`, `rr -M record`), keeps every start.
"""

from __future__ import annotations

import re

from console.policy.parallelopts import takes_no_value

# The runner's own positional words before its command, for the shapes known: a name maps to a
# count, or to {first word: count} when it takes a subcommand first.
_OWN_WORDS: dict[str, int | dict[str, int]] = {
    **dict.fromkeys(("tini", "tini-static", "dumb-init", "ccache", "sccache", "distcc", "icecc",
                     "nocache", "trickle", "cpulimit", "softlimit", "with-contenv", "heaptrack",
                     "memusage", "entr", "watchexec", "retry", "systemd-inhibit", "caffeinate",
                     "srun", "mpirun", "mpiexec", "gdb", "cuda-gdb", "ncu", "nvprof",
                     "compute-sanitizer", "tsp", "nq", "proot", "flatpak-spawn", "cross-env",
                     "parallel"), 0),
    **dict.fromkeys(("gosu", "su-exec", "setuidgid", "s6-setuidgid", "envuidgid", "envdir",
                     "setlock", "env-cmd"), 1),  # env-cmd before v9: `env-cmd FILE CMD`
    # python-dotenv's `dotenv [-f F] run [--override] CMD` (1.2.2's --help: -f, -q, -e take a
    # value), or dotenv-cli's (npm) `dotenv [-e F] CMD`: the command is the first or second
    # positional word (review h165: `dotenv -e .env python app.py dd` was refused)
    "dotenv": 1,
    "perf": {"stat": 1, "record": 1, "trace": 1},
    "nsys": {"profile": 1, "launch": 1},
    "rr": {"record": 1},
    "bundle": {"exec": 1},
    "doppler": {"run": 1}, "infisical": {"run": 1}, "dotenvx": {"run": 1},
    "aws-vault": {"exec": 2},
}
# Options known to take no value: the word after one is surely not its value.
_FLAGS = {
    "gdb": {"--args", "-batch", "--batch", "-q", "-quiet", "--quiet", "-silent", "--silent",
            "-nx", "--nx", "-nh", "--nh", "-n", "-tui", "--tui"},
    "entr": {"-a", "-c", "-cc", "-d", "-n", "-p", "-r", "-s", "-z"},
    "perf": {"-g", "-a", "--all-cpus", "-q", "--quiet", "-v", "--verbose"},
}
_FLAGS["cuda-gdb"] = _FLAGS["gdb"]
# Read from the runner's own table: GNU parallel's Getopt::Long options (review h165).
_FLAG_READERS = {"parallel": takes_no_value}
# Options that take two values (`mpirun --mca KEY VALUE`, `mpiexec -genv NAME VALUE`).
# PRRTE's global ones too (prte(1): `--gpmixmca <key> <value>`: review h159), and the single-dash
# spellings of the MCA ones.
_TWO_VALUES = {"--mca", "-mca", "--gmca", "-gmca", "--prtemca", "--pmixmca", "-genv", "-env",
               "--genv", "--env", "--gprtemca", "--gpmixmca", "-prtemca", "-pmixmca",
               "-gprtemca", "-gpmixmca"}
# Open MPI 5's mpirun (PRRTE's schizo/ompi and PMIx's pmix_cmd_line_parse) takes two values after
# every option whose name ends in "mca" (--omca, --gomca too), given by any prefix getopt_long
# takes (`--om`, `--pmix`) or with one dash, and after --prepend-env and --append-env (review h161).
_MPI = {"mpirun", "mpiexec"}
_MPI_PAIRS = ("mca", "gmca", "omca", "gomca", "prtemca", "gprtemca", "pmixmca", "gpmixmca",
              "prepend-env", "append-env")


def _two_values(runner: str, word: str) -> bool:
    if word in _TWO_VALUES:
        return True
    name = word.lstrip("-")
    return runner in _MPI and word[:1] == "-" and "=" not in word and len(name) >= 2 and (
        name.endswith("mca") or any(o.startswith(name) for o in _MPI_PAIRS))


# gdb runs the word after `--args` (getopt_long_only: `-args`, `--ar`, ...), a positional word
# before it dropped (`gdb -ex run foo --args CMD`: review h159): the count starts again there.
_RESTARTS = {"gdb": {"-ar", "-arg", "-args", "--ar", "--arg", "--args"}}
_RESTARTS["cuda-gdb"] = _RESTARTS["gdb"]
# GNU parallel's options naming its own `:::` and `::::` (`--arg-sep XX XX CMD`: review h159),
# by any prefix Getopt::Long takes; not --arg-file, an option of its own.
_SEPARATORS = ("--arg-sep", "--argsep", "--arg-file-sep", "--argfilesep")
# Words past which the rest may be commands of their own: parallel's arguments, given no command
# before them (`parallel ::: 'rm -rf ~' ls` runs both), and the next program of an MPI or Slurm
# launch of several (`mpirun -np 2 ./a : -np 2 CMD`).
_OPENS = {":::", "::::", ":::+", "::::+"}  # and ":", wherever it stands
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")  # cross-env NAME=VALUE CMD
# A word bash may make no word or several of: an expansion (`$X` unset is none: `srun $X dd ...`
# runs dd) or a brace expansion (`srun {-n,1} dd ...`, `perf stat {-a,record} dd ...`). Where it
# stands as a positional word the runner's words past it are not known: every start is kept
# (review h161); where it follows an option it is read as that option's value (`srun -n $N`).
_VARIES = re.compile(r"[$`]|\{[^{}]*(?:,|\.\.)[^{}]*\}")


def _own_words(words: list[str]) -> int | None:
    own = _OWN_WORDS.get(words[0]) if words else None
    if isinstance(own, dict):
        sub = words[1] if len(words) > 1 else ""
        return own.get(sub)
    return own


def _records(words: list[str]) -> bool:
    """`perf stat` and `perf trace` take `record` as the first word past their options (`perf
    stat -a record CMD`; perf stat any prefix of three letters or more, `perf stat rec CMD`:
    builtin-stat.c), read as one more word of their own (review h159)."""
    return words[0] == "perf" and words[1:2] in (["stat"], ["trace"])


def _separators(words: list[str], k: int) -> set[str]:
    """The separator a parallel option at words[k] names (`--arg-sep XX`, `--argsep=XX`)."""
    name, eq, value = words[k].partition("=")
    name = name.lower()  # Getopt::Long matches long options in any case (`--ARG-SEP`: h161)
    if words[0] != "parallel" or len(name) < 5 or name in ("--arg-file", "--argfile") or not any(
            s.startswith(name) for s in _SEPARATORS):
        return set()
    return {value} if eq else set(words[k + 1 : k + 2])


def past_dashes(words: list[str], end: int, stepped: set[str]) -> list[int]:
    """Where the command may start past a runner's `--` at words[end]: the next word, and for
    perf stat and perf trace, given `record` there, where it may start past that record's own
    options (perf's parser drops the `--` and reads record next: `perf stat -- record dd ...`
    runs dd, perf 6.1: review h161), read as `perf record`'s words are. Where the runner's own
    positional words may follow the `--`, each word after it up to them (`dotenv -- run dd`,
    python-dotenv's click reads `run` past the `--`, ran dd: review h168)."""
    surely = sum(1 for k in range(1, end) if words[k][:1] != "-" and words[k - 1][:1] != "-")
    left = max((_own_words(words) or 0) - surely, 0)  # own words not surely given before it
    starts = [end + 1] if end + 1 < len(words) else []
    starts += [k for k in range(end + 2, len(words)) if words[k][:1] != "-"][:left] if starts else []
    if not starts or not _records(words) or not _is_record(words[end + 1]):
        return starts
    at = end + 2
    rest = ["perf", "record", *words[at:]]
    close = rest.index("--", 2) if "--" in rest[2:] else len(rest)
    found = plausible_starts(rest, [k for k in range(2, close) if rest[k][:1] != "-"], stepped)
    found += [close + 1] if close + 1 < len(rest) else []
    return starts + [at + k - 2 for k in found]


def _is_record(word: str) -> bool:
    return len(word) >= 3 and "record".startswith(word)


def _steps(words: list[str], k: int, stepped: set[str]) -> bool:
    """words[k] names a wrapper or runner, and not the runner's own subcommand (`bundle exec`).
    Not under parallel, which puts its arguments after that command (`parallel nice ::: dd` runs
    `nice dd`): every word past a wrapper there stays a start."""
    sub = k == 1 and isinstance(_OWN_WORDS.get(words[0]), dict)
    return not sub and words[0] != "parallel" and words[k].rsplit("/", 1)[-1] in stepped


def steps_into(words: list[str], starts: list[int], stepped: set[str]) -> int | None:
    """The first of plausible_starts' `starts` naming a wrapper or runner: read as a command of
    its own, its readings stand for the words after it."""
    return next((k for k in starts if _steps(words, k, stepped)), None)


def plausible_starts(words: list[str], starts: list[int], stepped: set[str]) -> list[int]:
    """Of `starts` (indexes in a nested runner's words, before any `--`), those its command may
    begin at. Past a second word naming a wrapper or another runner (in `stepped`), every one is
    kept; the first (steps_into) is read as a command of its own, which reads its words as it
    does (`srun -n 1 nice python app.py dd` was refused: review h165)."""
    own = _own_words(words)
    if own is None:
        return starts
    flags, restarts = _FLAGS.get(words[0], set()), _RESTARTS.get(words[0], set())
    reads_flag = _FLAG_READERS.get(words[0], flags.__contains__)
    kept, surely, opened, given, opens = [], 0, False, set(starts), set(_OPENS)
    stepped_in = False
    record = _records(words)
    for k in range(1, (max(starts) + 1) if starts else 1):
        w, before = words[k], words[k - 1]
        if w[:1] == "-":
            surely = 0 if w in restarts else surely
            opens |= _separators(words, k)
            continue
        possible = opened or surely <= own
        if k in given and possible:
            kept.append(k)
        steps = possible and _steps(words, k, stepped)
        opens_here = w in opens and not _separators(words, k - 1)  # not `--arg-sep XX`'s XX
        if w == ":" or possible and (opens_here or words[0] == "parallel" and
                                      w.rsplit("/", 1)[-1] in stepped) or steps and stepped_in:
            opened = True
        stepped_in = stepped_in or steps
        value = before[:1] == "-" and not reads_flag(before) or (
            k >= 2 and _two_values(words[0], words[k - 2])) or _ASSIGNMENT.match(w)
        if record and k >= 2 and possible and _is_record(w):
            value, record = True, False  # `perf stat -a record CMD`: CMD is one word on
        opened = opened or possible and not value and bool(_VARIES.search(w))
        surely += 0 if value else 1
    return kept
