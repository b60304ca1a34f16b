"""Review h158: everyday lines the s39 changes refused (forbid) where no forbid rule's intent
applies. Under the built-in claude and demo profiles (`forbid = [..., "dd", "mkfs"]`):

- A nested runner's command is read from each word past its name that is not an option (its
  options are not known), so an ARGUMENT of the command it runs was read as a command of its
  own: `perf stat grep -c dd log.txt`, `srun -n 1 grep dd file`, `gosu app pytest -k dd`,
  `ccache gcc -o dd dd.c`, `mpirun -np 4 python solve.py --method dd` were refused by "dd"
  (asked before s39, and asked is what they should be: a nested runner is never allowed).
- A part blind for its input alone (xargs, find -exec {}, parallel) was read flat against the
  forbid rules (`_forbidden_past_bounds`), meant for parts the reader stopped in: `find . -name
  '*.c' | xargs grep -l dd` and `find . -exec grep -H mkfs {} \\;` were refused.
"""

from __future__ import annotations

import pytest

from console.policy import ExecRules, evaluate_exec
from tests.policy.builtin_profiles import builtin_rules

CLAUDE, DEMO = builtin_rules("claude"), builtin_rules("demo")

RUNNER_ARGUMENTS = [
    "srun -n 1 grep dd file",
    "srun python train.py --optim dd",
    "perf stat grep -c dd log.txt",
    "perf stat -e cycles grep dd big.txt",
    "perf stat make dd",
    "perf stat git log --grep dd",
    "perf record -g ./bench --mode dd",
    "perf stat -e task-clock -r 5 ./bench dd",
    "mpirun -np 4 python solve.py --method dd",
    "mpirun -n 2 ./app --solver mkfs",
    "gdb --args ./a.out dd",
    "gdb -batch -ex run --args ./bench dd",
    "gdb -batch -ex run --args python script.py --mode dd",
    "gosu app pytest -k dd",
    "gosu app pytest -k mkfs",
    "gosu app git log -S dd",
    "watchexec -e py pytest -k dd",
    "entr -c pytest -k dd",
    "entr -r python app.py --db dd",
    "ls *.c | entr make dd",
    "ccache gcc -o dd dd.c",
    "ccache cc -o mkfs mkfs.c",
    "rr record ./a.out dd",
    "bundle exec rake dd",
    "retry -t 3 make dd",
    "nsys profile python train.py --mode dd",
]

INPUT_BLIND = [
    "xargs grep dd",
    "find . -name '*.c' | xargs grep -l dd",
    "git ls-files | xargs grep -n mkfs",
    "cat files.txt | xargs -I{} grep -c dd {}",
    "find . -name '*.sh' -exec grep -l dd {} +",
    "find . -type f -exec grep -H mkfs {} \\;",
    "ls | parallel grep dd {}",
]


@pytest.mark.parametrize("rules", [CLAUDE, DEMO], ids=["claude", "demo"])
@pytest.mark.parametrize("line", RUNNER_ARGUMENTS + INPUT_BLIND)
def test_an_argument_named_like_a_forbidden_program_is_asked_not_refused(
        line: str, rules: ExecRules) -> None:
    assert evaluate_exec(line, rules, consume=False).action == "ask"


# What the fixes must not let through: the command a runner runs, wherever it may start.
STILL_REFUSED = [
    "srun -J grep dd if=/dev/zero of=/dev/sda",   # -J takes a value: `grep` is the job's name
    "gosu root nice rm -rf ~",
    "gosu root nice -n 5 timeout 9 dd if=/dev/zero of=/dev/sda",
    "perf stat record rm -rf ~",
    "perf record -o out -- rm -rf ~",
    "mpirun --mca btl self -np 2 rm -rf ~",
    "mpiexec -genv OMP_NUM_THREADS 4 dd if=/dev/zero of=/dev/sda",
    "cross-env NODE_ENV=production A=1 rm -rf ~",
    "aws-vault exec dev rm -rf ~",
    "gdb --args dd if=/dev/zero of=/dev/sda",
    "ccache dd if=/dev/zero of=/dev/sda",
    "entr -c rm -rf ~",
    "bwrap --bind /a /b --ro-bind / / rm -rf ~",
    "mpirun -np 2 ./a.out : -np 2 rm -rf ~",
    "srun -n 1 ./a.out : -n 1 dd if=/dev/zero of=/dev/sda",
    "parallel ::: 'rm -rf ~' ls",
    "parallel -j 2 ::: ls 'git push --force'",
    "env-cmd .env.local rm -rf ~",
    "bundle exec nice rm -rf ~",
    "perf stat -x , -e cycles rm -rf ~",
    "xargs " + "nice " * 18 + "rm -rf ~",
    "xargs dd if=/dev/zero of=/dev/sda",
    "find . -exec dd if={} of=/dev/sda \\;",
]


@pytest.mark.parametrize("line", STILL_REFUSED)
def test_the_command_a_runner_runs_is_still_refused(line: str) -> None:
    assert evaluate_exec(line, CLAUDE, consume=False).action == "deny"
