"""Review h159: lines a forbid rule must refuse that the h158 changes left only asked. Under the
built-in claude and demo profiles (`forbid = ["rm -rf ~", ..., "dd", "mkfs"]`), each line below
runs the forbidden command (checked with gdb 13, perf 6.1, GNU parallel 20221122 and bash, the
program a stand-in: /bin/echo copied as `dd` first on PATH); each was refused before h158.

- runnerstarts.plausible_starts counts the words before a nested runner's command, and some are
  not its positional words:
  - gdb runs the first word after `--args` (or `-args`, `--ar`, ... getopt_long_only's prefixes),
    whatever positional word came before it: `gdb -batch -ex run foo --args dd ...` runs dd.
  - `perf stat` and `perf trace` take `record` after their own options (`perf stat -a record
    CMD`, `perf stat -e cycles record CMD`, `perf trace -v record CMD`), and perf stat a prefix
    of it (`perf stat rec CMD`: builtin-stat.c's strstarts("record", argv[0])).
  - Open MPI 5 (PRRTE) takes two values after `--gpmixmca` and `--gprtemca` too (prte(1):
    `--gpmixmca <key> <value>`).
  - GNU parallel's `--arg-sep SEP` (`--argsep`, `--arg-file-sep`) makes SEP its `:::`: `parallel
    --arg-sep XX XX 'rm -rf ~'` runs rm.
- Only a part CommandPart.bounded is read flat against the forbid rules; a part whose program
  word the reader could not read (a glob, an extglob, a brace expansion: `/usr/bin/nic? rm -rf ~`
  is `nice rm -rf ~`, `env {-u,X} rm -rf ~` is `env -u X rm -rf ~`) stopped it as surely, and is
  not marked; nor is one whose words are typed into a shell (`tmux send-keys -t s rm Space -rf
  Space '~' Enter` types `rm -rf ~` and a newline: tmux 3.3a) or point a name at a program
  (`hash -p /bin/dd ls; ls ...` runs dd), whose words the reader does not follow either.
"""

from __future__ import annotations

from tests.policy.runner_lines import refused_and_asked

REFUSED = [
    # gdb: the word after --args is the program, a positional word before it is dropped
    "gdb -batch -ex run foo --args dd if=/dev/zero of=/tmp/x",
    "gdb -batch -ex run ./a.out --args rm -rf ~",
    "gdb -ex run -q foo --args dd if=/dev/zero of=/tmp/x",
    "gdb -batch -ex run foo -args dd if=/dev/zero of=/tmp/x",
    "gdb -batch -ex run foo --ar dd if=/dev/zero of=/tmp/x",
    "cuda-gdb -batch -ex run foo --args dd if=/dev/zero of=/tmp/x",
    # perf stat / perf trace: `record` after their options, perf stat's prefixes of it
    "perf stat rec dd if=/dev/zero of=/tmp/x",
    "perf stat reco rm -rf ~",
    "perf stat -a record dd if=/dev/zero of=/tmp/x",
    "perf stat -g record rm -rf ~",
    "perf stat -e cycles record rm -rf ~",
    "perf stat -e a -e b -e c record dd if=/dev/zero of=/tmp/x",
    "perf trace -v record dd if=/dev/zero of=/tmp/x",
    "perf trace -a record rm -rf ~",
    # Open MPI's options of two values
    "mpirun --gpmixmca a b rm -rf ~",
    "mpirun --gprtemca a b rm -rf ~",
    # GNU parallel's own separator
    "parallel --arg-sep XX XX 'rm -rf ~'",
    "parallel --argsep XX XX 'rm -rf ~'",
    "parallel -j2 --arg-sep , , 'rm -rf ~' ls",
    "parallel --arg-file-sep YY --arg-sep XX XX 'dd if=/dev/zero of=/tmp/x'",
    # a program word the reader cannot read: a glob, a brace expansion
    "/usr/bin/nic? rm -rf ~",
    "/usr/bin/nic[e] rm -rf ~",
    "/bin/ti?eout 5 dd if=/dev/zero of=/tmp/x",
    "env {-u,X} rm -rf ~",
    "sudo {-u,root} rm -rf ~",
    "nice {-n,5} dd if=/dev/zero of=/tmp/x",
    "shopt -s extglob\n/usr/bin/@(nice) rm -rf ~",
    # a runner in a runner, and the same in a function or a substitution
    "gosu app perf stat rec dd if=/dev/zero of=/tmp/x",
    "srun gdb -batch -ex run foo --args dd if=/dev/zero of=/tmp/x",
    "f() { /usr/bin/nic? rm -rf ~; }; f",
    "echo $(/usr/bin/nic? rm -rf ~)",
    # words typed into a shell (tmux's key Space is a blank), a name pointed at dd
    "tmux send-keys -t s rm Space -rf Space '~' Enter",
    "tmux send -t s dd Space if=/dev/zero Space of=/tmp/x Enter",
    "hash -p /bin/dd ls; ls if=/dev/zero of=/tmp/x",
]

# Everyday lines these readings must not refuse (asked: a nested runner is never allowed).
ASKED = [
    "perf stat grep -c record dd.log",
    "perf stat -e cycles grep rec dd",
    "perf trace -a grep record dd",
    "gdb -batch -ex run --args ./a.out dd",
    "gdb -batch -ex run --args ./bench --mode mkfs",
    "parallel --arg-sep XX grep -c dd XX a.txt b.txt",
    "mpirun --gpmixmca a b python solve.py --method dd",
    "ls src/{a,b}.c | xargs grep -l dd",
    "grep -n dd src/{a,b}.c",
    "./scripts/run?.sh dd",
    "/usr/bin/gi[t] log --grep dd",
    "echo x | sh -s dd",
]


(test_a_forbidden_command_a_runner_really_runs_is_refused,
 test_an_argument_of_the_runners_command_is_still_asked) = refused_and_asked(REFUSED, ASKED)
