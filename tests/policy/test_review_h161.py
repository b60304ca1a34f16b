"""Review h161: lines a forbid rule must refuse that the nested-runner readings (runnerstarts.py)
left only asked. Under the built-in claude and demo profiles (`forbid = [..., "rm -rf ~", "dd",
...]`), each line below runs the forbidden command (checked with GNU parallel 20221122 and perf
6.1, the program a stand-in: /bin/echo copied as `dd` first on PATH).

- GNU parallel reads its long options in any case (Getopt::Long's ignore_case, which bundling
  leaves on for long options): `--ARG-SEP XX`, `--ArgSep XX` make XX its `:::` as `--arg-sep XX`
  does, and `parallel --ARG-SEP XX XX 'rm -rf ~'` runs rm. Refused before h158, asked since.
- perf's parser drops a `--` and perf stat (perf trace) then reads `record` as it does without
  it: `perf stat -- record dd ...` and `perf trace -- record dd ...` run dd. Asked before h158
  too: the reading past `--` started at `record`.
- Open MPI 5's mpirun takes two values after every option whose name ends in "mca" (PRRTE's
  schizo/ompi defines --omca and --gomca; PMIx's pmix_cmd_line_parse takes a second token for any
  option whose getopt_long name ends in "mca", so a prefix getopt_long takes, `--om`, `--pmix`, does
  too, and schizo/ompi makes `-omca` `--omca`), and after --prepend-env and --append-env: `mpirun
  --omca a b rm -rf ~` runs rm (read in openpmix/prrte and openpmix/openpmix; Open MPI 5 is not
  packaged here to run it). Refused before h158.
- A word bash makes no word or several of, standing where the runner's positional words are
  counted: `$X` unset is none (`perf stat $X dd ...` runs dd: bash 5.2), a brace expansion is
  several (`perf stat {-a,record} dd ...` is `perf stat -a record dd ...`, `gdb -batch -ex run
  {foo,--args} dd ...` is `... foo --args dd ...`: run with gdb 13 and perf 6.1). Refused before
  h158; where such a word follows an option it stays that option's value (`srun -n $N`).
- A program word whose glob names a wrapper or runner the way bash reads a pattern, and fnmatch
  does not: a negation `[^x]` (fnmatch: `^` or `x`) or a character class `[[:alpha:]]`:
  `/usr/bin/n[^x]ce rm -rf ~` and `/usr/bin/[[:lower:]]ice rm -rf ~` run nice, which runs rm
  (bash 5.2). Refused before h158; h159 reads flat only a glob fnmatch sees naming one.
"""

from __future__ import annotations

from tests.policy.runner_lines import refused_and_asked

REFUSED = [
    # GNU parallel's separator option in another case
    "parallel --ARG-SEP XX XX 'rm -rf ~'",
    "parallel --ArgSep XX XX 'rm -rf ~'",
    "parallel --ArG-s XX XX 'rm -rf ~'",
    "parallel -j 2 --ARG-SEP , , 'rm -rf ~' ls",
    "parallel --ARG-FILE-SEP YY --ARG-SEP XX XX 'dd if=/dev/zero of=/tmp/x'",
    # perf stat / perf trace: `record` past a `--`
    "perf stat -- record dd if=/dev/zero of=/tmp/x",
    "perf stat -a -- rec dd if=/dev/zero of=/tmp/x",
    "perf stat -- record -a rm -rf ~",
    "perf stat -- record -e cycles -- dd if=/dev/zero of=/tmp/x",
    "perf trace -- record dd if=/dev/zero of=/tmp/x",
    "gosu app perf stat -- record rm -rf ~",
    # Open MPI 5's options of two values
    "mpirun --omca a b rm -rf ~",
    "mpirun --gomca a b dd if=/dev/zero of=/tmp/x",
    "mpirun -omca a b rm -rf ~",
    "mpiexec --om a b rm -rf ~",
    "mpirun --pmix a b rm -rf ~",
    "mpirun --prepend-env PATH /opt/bin rm -rf ~",
    "mpirun --append-env LD_LIBRARY_PATH /opt/lib dd if=/dev/zero of=/tmp/x",
    # a word that may become none or several, where the runner's words are counted
    "srun $X dd if=/dev/zero of=/tmp/x",
    "srun -n 1 $X dd if=/dev/zero of=/tmp/x",
    "gosu app $X rm -rf ~",
    "perf stat $X dd if=/dev/zero of=/tmp/x",
    "perf stat $(true) dd if=/dev/zero of=/tmp/x",
    "srun {-n,1} rm -rf ~",
    "mpirun {-np,2} rm -rf ~",
    "perf stat {-a,record} dd if=/dev/zero of=/tmp/x",
    "gdb -batch -ex run {foo,--args} dd if=/dev/zero of=/tmp/x",
    # a program word bash's pattern matching makes a wrapper's name
    "/usr/bin/n[^x]ce rm -rf ~",
    "/usr/bin/[[:lower:]]ice rm -rf ~",
    "/usr/bin/ni[[:alpha:]]e rm -rf ~",
    "/usr/bin/tim[^x]out 5 dd if=/dev/zero of=/tmp/x",
]

# Everyday lines these readings must not refuse (asked: a nested runner is never allowed).
ASKED = [
    "parallel --ARG-SEP , gzip , dd.log mkfs.log",
    "parallel --ArgSep XX grep -c dd XX a.txt b.txt",
    "perf stat -- record ./bench dd",
    "perf stat -- record -e cycles ./bench --mode dd",
    "perf stat -- ./bench dd",
    "perf trace -- record grep -c dd log",
    "mpirun -np 2 --omca btl self ./solver dd",
    "mpirun --prepend-env PATH /opt/bin ./solver --method dd",
    "srun -n $N grep dd log",
    "mpirun -np $NP ./solver --method dd",
    "srun -n 1 grep dd src/{a,b}.c",
    "gosu app grep -n dd src/{a,b}.c",
    "perf stat make {dd,mkfs}.o",
    "./scripts/run[^x].sh dd",
    "./scripts/run[[:digit:]].sh dd",
]


(test_a_forbidden_command_a_runner_really_runs_is_refused,
 test_an_argument_of_the_runners_command_is_still_asked) = refused_and_asked(REFUSED, ASKED)
