"""Review h165: leftovers of the runner readings (runnerstarts.py, runners.py). Under the built-in
claude and demo profiles (`forbid = [..., "rm -rf ~", "dd", ...]`):

- GNU parallel: an option the table did not know was read as taking a value, so `parallel -k
  echo ::: dd` was read with `echo` as -k's value and `dd` as the command, and refused (parallel
  20221122 runs `echo dd`). Its options are read now as its Getopt::Long does
  (console/policy/parallelopts.py, from /usr/bin/parallel's options_hash): flags (-k, --tag, a
  prefix or any case of a long one) take no value; -i and -e may take one (`parallel -i echo
  dd ... ::: a` runs dd: checked), and an option parallel does not know keeps both readings.
- dotenv was read as a runner of unknown shape (every word a start): `dotenv -e .env python
  app.py dd` was refused. python-dotenv 1.2.2 (installed: `dotenv --help`, its cli.py) runs
  `dotenv [-f F] [-q Q] [-e B] run [--override] CMD`, dotenv-cli `dotenv [-e F] CMD`: the
  command is one of the first two positional words.
- Lines handed to a shell were asked, not read: `tmux send-keys -t s 'rm -rf ~' Enter` types
  `rm -rf ~` and a newline into the pane's shell (tmux 3.3a), `doppler run --command 'rm -rf ~'`
  and `infisical run --command ...` run their value through a shell (their docs), as does
  `env-cmd --use-shell 'rm -rf ~'` (its README: "Execute the command in a new shell").
- A wrapper or runner inside a nested runner made every word after it a start: `srun -n 1 nice
  python app.py dd`, `srun -n 1 uv run python app.py dd` were refused. The first such word now
  starts a reading of its own, read as that program reads its words; past a second, and under
  parallel (`parallel nice ::: dd` runs `nice dd`: checked), every word stays a start.
"""

from __future__ import annotations

from tests.policy.runner_lines import refused_and_asked

REFUSED = [
    # keys typed into a shell, a line handed to one
    "tmux send-keys -t s 'rm -rf ~' Enter",
    "tmux send-keys -t s 'dd if=/dev/zero of=/tmp/x' C-m",
    "tmux send -t s 'rm -rf ~' enter",
    "tmux send-keys -t s -l 'rm -rf ~' \\; send-keys -t s Enter",
    "tmux new -d -s s \\; send-keys -t s 'rm -rf ~' Enter",
    "tmux send-keys -t s -H 72 6d 20 2d 72 66 20 7e 0a",
    "doppler run --command 'rm -rf ~'",
    "doppler run --command='dd if=/dev/zero of=/tmp/x'",
    "doppler run -p app -c dev --command 'make; rm -rf ~'",
    "infisical run --command 'rm -rf ~'",
    "infisical run --env=dev --command 'git push --force'",
    "env-cmd --use-shell 'rm -rf ~'",
    "env-cmd -f .env --use-shell 'make && dd if=/dev/zero of=/tmp/x'",
    "gosu app env-cmd --use-shell 'rm -rf ~'",
    "srun -n 1 doppler run --command 'rm -rf ~'",
    "gosu app tmux send-keys -t s 'rm -rf ~' Enter",
    # what GNU parallel's flags must not hide: its options that take a value, or may
    "parallel -k ::: 'rm -rf ~' ls",
    "parallel -k rm -rf ~ ::: a",
    "parallel --tag -j 2 rm -rf ~ ::: a",
    "parallel -kj2 dd if=/dev/zero of=/tmp/x ::: a",
    "parallel -kj 2 rm -rf ~ ::: a",
    "parallel --ke ::: 'rm -rf ~'",
    "parallel -0k rm -rf ~",
    "parallel -i echo dd if=/dev/zero of=/tmp/x ::: a",
    "parallel -e echo ::: 'rm -rf ~'",
    "parallel --replace echo rm -rf ~ ::: a",
    "parallel --no-such-option echo rm -rf ~ ::: a",
    "parallel -k --tagstring X rm -rf ~ ::: a",
    # dotenv's command, in either tool's shape
    "dotenv -e .env rm -rf ~",
    "dotenv -f .env run rm -rf ~",
    "dotenv run -- dd if=/dev/zero of=/tmp/x",
    "dotenv -e .env -- rm -rf ~",
    "dotenv run --override rm -rf ~",
    "dotenv -c production rm -rf ~",
    "gosu app dotenv -e .env rm -rf ~",
    # a wrapper or runner inside a nested runner: the first read as itself, the rest as before
    "srun -n 1 nice rm -rf ~",
    "srun -J nice dd if=/dev/zero of=/tmp/x",
    "srun -x nice -x nice rm -rf ~",
    "gosu nice rm -rf ~",
    "gosu app nice -n 5 uv run dd if=/dev/zero of=/tmp/x",
    "srun uv run -- rm -rf ~",
    "srun nice gosu app rm -rf ~",
    "gosu a gosu b gosu c gosu d rm -rf ~",
    "srun -n 1 ./a.out : -n 1 nice rm -rf ~",
    "tini nice rm -rf ~",
    "bundle exec nice rm -rf ~",
    "perf stat -- record nice rm -rf ~",
    "gdb --args nice rm -rf ~",
    "parallel nice -n 5 ::: dd",
    "parallel -k nice ::: dd",
    "srun -n 1 nice sh -c 'rm -rf ~'",
    # runners read before, that must stay refused
    "uv run -- dd if=/dev/zero of=/tmp/x",
    "uv run --with x rm -rf ~",
    "poetry run dd if=/dev/zero of=/tmp/x",
    "pipenv run rm -rf ~",
    "npx rm -rf ~",
    "nix-shell --run 'rm -rf ~'",
    "nix-shell -p hello --run 'dd if=/dev/zero of=/tmp/x'",
    "lldb -- dd if=/dev/zero of=/tmp/x",
]

# Everyday lines that must not be refused (asked: a nested runner is never allowed).
ASKED = [
    "parallel -k echo ::: dd",
    "parallel --keep-order grep -c dd ::: a.log b.log",
    "parallel --tag -k gzip ::: dd.img mkfs.log",
    "parallel -kj2 echo ::: dd",
    "parallel -k -j 2 echo ::: dd",
    "parallel --ke echo ::: dd",
    "parallel --KEEP-ORDER echo ::: dd",
    "parallel -k --jobs=2 echo ::: dd",
    "dotenv -e .env python app.py dd",
    "dotenv run python app.py --mode dd",
    "dotenv -f .env run python app.py dd",
    "dotenv run -- python app.py dd",
    "srun -n 1 nice python app.py dd",
    "srun -n 1 timeout 5 python app.py dd",
    "srun -n 1 uv run python app.py dd",
    "gosu app poetry run pytest -k dd",
    "gosu app pipenv run pytest -k dd",
    "srun bunx jest -t dd",
    "gosu app dotenv -e .env python app.py dd",
    "tmux send-keys -t s 'make test' Enter",
    "tmux send-keys -t s 'grep -c dd log' Enter",
    "doppler run --command 'make test'",
    "doppler run --command 'grep -c dd log'",
    "infisical run --command 'make test'",
    "env-cmd --use-shell 'make test'",
]

(test_a_forbidden_command_a_runner_really_runs_is_refused,
 test_an_argument_of_the_runners_command_is_still_asked) = refused_and_asked(REFUSED, ASKED)
