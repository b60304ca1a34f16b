"""Review h168: attack review of h165's runner leftovers. Under the built-in claude and demo
profiles (`forbid = [..., "rm -rf ~", "dd", ...]`), checked with GNU parallel 20221122 and tmux
3.3a, a stand-in `dd` first on PATH:

- GNU parallel runs its command with each argument filled in for a replacement string, or
  appended: `parallel -k {} ::: dd` runs dd, `parallel -k sh -c ::: dd` runs `sh -c dd`. Those
  arguments were never read as part of the command; the line was refused only while -k was read
  as taking a value (every later word a start). Once h165 read -k as the flag it is, such lines
  were asked (and `parallel {} ::: dd`, no option before it, was asked before h165 too). The
  lines parallel runs are read now (console/policy/paralleljobs.py).
- python-dotenv reads `run` past a `--` (`dotenv -- run dd` runs dd): past a runner's `--`,
  only the next word was a start; the runner's own words not given before it may come first.
- `tmux send-keys`: the keys were joined as typed, but bash's readline edits the line with some
  (`dx BSpace d Enter` runs dd, `xdd Home Delete Enter` too), -N types them again (`-N 2 d`),
  `0x64` is the key d, and a carriage return (`-H ... 0d`) ends a line: such lines were asked
  (before h165 too). The line as the shell edits it is read as well (tmuxkeys.py).
- `tmux send-keys` read the rest of the line once for every word naming send-keys: a 56 KB line
  of `send a` took 6.8 s to decide (0.15 s before h165).
"""

from __future__ import annotations

import pytest

from console.policy.tmuxkeys import typed_lines
from tests.policy.runner_lines import refused_and_asked

REFUSED = [
    # A long typed line used up the line's budget of nested text, and the command after it was
    # read flat only (asked): s41, from h168's report
    pytest.param("tmux send-keys -t s " + "a" * 70_000 + " Enter; sh -c 'dd if=/dev/zero of=/tmp/x'",
                 id="a-70000-key-typed-line-then-dd"),
    # refused before h165 (-k read as taking a value), asked after it
    "parallel -k {} ::: dd",
    "parallel --tag {} ::: dd",
    "parallel --tag {1} ::: dd",
    "parallel -k '{}' ::: 'dd if=/dev/zero of=/tmp/x'",
    "parallel -k {} ::: 'rm -rf ~'",
    "parallel -k eval ::: dd",
    "parallel -k sh -c ::: 'rm -rf ~'",
    "parallel -k bash -c ::: dd",
    "parallel -k env ::: dd",
    "parallel -k -q sh -c ::: dd",
    "parallel -k {2} ::: a ::: dd",
    "parallel -k 'echo;{}' ::: dd",
    "parallel -k echo '$({})' ::: dd",
    # asked before h165 too
    "parallel {} ::: dd",
    "parallel eval ::: dd",
    "parallel -j 2 sh -c ::: 'rm -rf ~'",
    "parallel {.} ::: dd.x",
    "parallel {2} ::: a ::: dd",
    "parallel -k echo {}\\;{} ::: dd",
    "parallel --tag {=1 =} ::: dd",
    "parallel -k -I XX XX ::: dd",
    "parallel -k --er XX XX ::: dd.x",
    "parallel -k --rpl 'XX s/a/b/' XX ::: dd",
    "srun -n 1 parallel -k {} ::: dd",
    "parallel -k -- {} ::: dd",
    "parallel --argsep=XX -k eval XX dd",
    "parallel --arg-sep XX sh -c XX dd",
    "parallel -k --colsep , {1} ::: dd,a",
    "parallel -k --plus {..} ::: dd.a.b",
    # python-dotenv's click reads its `run` past a `--` (dotenv 1.2.2: ran dd)
    "dotenv -- run dd",
    "dotenv -f .env -- run rm -rf ~",
    # keys the pane's shell (bash, readline) edits with, or tmux types more than once
    "tmux send-keys -t s dx BSpace d Enter",
    "tmux send-keys -t s 'rm -rf ~/x' BSpace BSpace Enter",
    "tmux send-keys -t s ddd Left BSpace Enter",
    "tmux send-keys -t s xdd Home Delete Enter",
    "tmux send-keys -t s xdd C-a C-d Enter",
    "tmux send-keys -t s 'echo' C-u 'rm -rf ~' C-m",
    "tmux send-keys -t s -N 2 d \\; send-keys -t s Enter",
    "tmux send-keys -t s -H 64 64 0d",
    "tmux send-keys -t s 0x64 0x64 Enter",
]

ASKED = [
    "parallel -k echo {} ::: dd",
    "parallel -k echo ::: dd",
    "parallel -k gzip ::: dd.log",
    "parallel -k grep -c dd ::: a.log",
    "parallel -k mv {} {.}.bak ::: dd.txt",
    "parallel -k -I XX echo XX ::: dd",
    "parallel -k -i XX echo ::: dd",
    "parallel -k --rpl '{x} s/a/b/' echo ::: dd",
    "dotenv -- run echo dd",
    "dotenv -f .env -- run python app.py dd",
    "perf stat -- grep dd log",
    "gosu app -- grep dd log",
    "tmux send-keys -t s 'echo ddx' BSpace Enter",
    "tmux send-keys -t s 'make test' Enter",
    "tmux send-keys -t s -N ² a Enter",  # no count tmux takes (it types nothing); read, not a crash
]

test_refused, test_asked = refused_and_asked(REFUSED, ASKED)


def test_send_keys_words_are_read_once_not_once_per_send_word() -> None:
    """Each word naming send-keys typed the rest of the line: the lines read grew with the square
    of the line's length (8000 `send a`: 6.8 s). They stay within a few times its length."""
    words = ["tmux", *["send", "a"] * 2000]
    assert sum(len(line) for line in typed_lines(words)) <= 4 * len(" ".join(words))


def test_send_keys_after_a_value_naming_send_keys_is_still_read() -> None:
    assert "dd\n" in typed_lines(["tmux", "-L", "send", "send-keys", "-t", "s", "dd", "Enter"])
    assert "dd\n" in typed_lines(["tmux", "send-keys", "-t", "s", "a", ";", "send", "dd", "Enter"])
