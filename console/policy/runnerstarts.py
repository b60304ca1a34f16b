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
# Options that take two values (`mpirun --mca KEY VALUE`, `mpiexec -genv NAME VALUE`).
_TWO_VALUES = {"--mca", "-mca", "--gmca", "-gmca", "--prtemca", "--pmixmca", "-genv", "-env",
               "--genv", "--env"}
# Words past which the rest may be commands of their own: parallel's arguments, given no command
# before them (`parallel ::: 'rm -rf ~' ls` runs both), and the next program of an MPI or Slurm
# launch of several (`mpirun -np 2 ./a : -np 2 CMD`).
_OPENS = {":::", "::::", ":::+", "::::+"}  # and ":", wherever it stands
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")  # cross-env NAME=VALUE CMD


def _own_words(words: list[str]) -> int | None:
    own = _OWN_WORDS.get(words[0]) if words else None
    if isinstance(own, dict):
        # `perf stat record CMD`, `perf trace record CMD`: one more
        sub = words[1] if len(words) > 1 else ""
        return None if sub not in own else own[sub] + (words[2:3] == ["record"])
    return own


def plausible_starts(words: list[str], starts: list[int], stepped: set[str]) -> list[int]:
    """Of `starts` (indexes in a nested runner's words, before any `--`), those its command may
    begin at. Past a word naming a wrapper or another runner (in `stepped`: the readings after it
    stand for its command), every one is kept."""
    own = _own_words(words)
    if own is None:
        return starts
    flags = _FLAGS.get(words[0], set())
    kept, surely, opened, given = [], 0, False, set(starts)
    for k in range(1, (max(starts) + 1) if starts else 1):
        w, before = words[k], words[k - 1]
        if w[:1] == "-":
            continue
        possible = opened or surely <= own
        if k in given and possible:
            kept.append(k)
        sub = k == 1 and isinstance(_OWN_WORDS.get(words[0]), dict)  # `bundle exec`: not exec(1)
        if w == ":" or possible and (w.rsplit("/", 1)[-1] in stepped and not sub or w in _OPENS):
            opened = True
        value = before[:1] == "-" and before not in flags or (
            k >= 2 and words[k - 2] in _TWO_VALUES) or _ASSIGNMENT.match(w)
        surely += 0 if value else 1
    return kept
