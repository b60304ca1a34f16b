"""Policy benchmark: what reading commands with shell semantics costs per decision.

    .venv/bin/python bench/policy.py [--quick]

Figure: exec decisions per second through ExecRules.evaluate (the engine agent.sock, the gate's
asker and `policy check` use) for the built-in demo profile, over the shared exec corpus plus
wrapper, redirection and flag-order lines. Anchor, same lines, same run: `shlex.split` of each
line, the least a reader of shell words must do. Each decision starts from nothing: what an
earlier one worked out from the same words (console.policy caches it) is forgotten first, so
repeating the same lines does not flatter the figure. A decision reaches an agent once per command,
so the budget is a person's patience, not a hot loop: the target is >= 2,000 decisions/s.
Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Row, emit  # noqa: E402
from console.config.load import load  # noqa: E402
from console.policy import ExecRules, forget_worked_out  # noqa: E402

EXTRA = [
    "sudo -u root rm -fr /", "env -u HOME nice -n 5 timeout -s KILL 5 rm -r -f /",
    "grep -rn TODO src > ~/.profile", "rg --pre ./x.sh pattern .", "git diff --output=/tmp/x",
    "find . -name '*.py' -exec grep -l foo {} +", "bash -c 'git status && rm --recursive --force /'",
    "git -c core.pager=less -C repo log --oneline | head -20", "pytest -q tests/ 2>&1 | tee log",
    "git push origin +main",
]


def rate(fn, lines: list[str], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for line in lines:
            fn(line)
        n += len(lines)
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else 5.0
    corpus = tomllib.loads((ROOT.parent / "shared" / "corpus" / "exec_cases.toml").read_text())
    lines = [c["command"] for c in corpus["case"]] + EXTRA
    rules = ExecRules.from_config(load(None).profile("demo").exec)

    def split(line: str) -> None:
        try:
            shlex.split(line)
        except ValueError:
            pass

    def decide(line: str) -> None:
        forget_worked_out()
        rules.evaluate(line)

    ours = rate(decide, lines, seconds)
    anchor = rate(split, lines, seconds)
    emit([Row("exec decisions/s, demo profile", ours, "/s", "shlex.split/s, same lines", anchor,
              ">= 2000")], f"policy ({len(lines)} lines, {'--quick' if args.quick else 'full'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
