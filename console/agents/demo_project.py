"""The demo agent's project: a tiny Python module with a bug its tests catch, and the patch
the agent writes. Standard library only, Python 3.8+: copied beside demo.py into a run folder.

`pilothouse demo-workspace` writes it on the host; the agent writes it inside the sandbox when
its workspace is not the demo project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DEMO_SUBDIR = "pilothouse-demo"
MARKER = "# pilothouse-demo-project"

README = """\
# pilothouse-demo

A tiny Python project for trying Pilothouse. `stats.mean` has a bug the tests catch:
its docstring promises 0.0 for an empty list, but it divides by zero.

Run the tests: `python3 -m unittest -v` (or `pytest -q`).
Let the demo agent fix it: `pilothouse run demo -w .`
"""

STATS = f'''{MARKER}
"""Small statistics helpers."""


def mean(values):
    """The arithmetic mean of values; 0.0 when there are none."""
    return sum(values) / len(values)
'''

TESTS = '''import unittest

from stats import mean


class MeanTest(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)

    def test_mean_of_nothing(self):
        self.assertEqual(mean([]), 0.0)


if __name__ == "__main__":
    unittest.main()
'''

STATS_FIXED = STATS.replace("    return sum", '''    if not values:
        return 0.0
    return sum''') + '''

def median(values):
    """The middle value of values (the mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of an empty list")
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
'''

TESTS_FIXED = TESTS.replace("from stats import mean", "from stats import mean, median").replace(
    '\n\nif __name__', '''

class MedianTest(unittest.TestCase):
    def test_odd_and_even(self):
        self.assertEqual(median([3, 1, 2]), 2)
        self.assertEqual(median([4, 1, 3, 2]), 2.5)


if __name__''')

PROJECT = {"README.md": README, "stats.py": STATS, "test_stats.py": TESTS}
PATCH = {"stats.py": STATS_FIXED, "test_stats.py": TESTS_FIXED}


def make_demo_workspace(path: str | os.PathLike, git: bool = True) -> Path:
    """Write the demo project (a module with a bug, its tests, a README) into path.

    With git=True and git installed, the folder becomes a repository with one commit. Raises
    FileExistsError when a file of the project is already there with other contents.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for name, text in PROJECT.items():
        target = root / name
        if target.exists() and target.read_text(encoding="utf-8") not in (text, PATCH.get(name)):
            raise FileExistsError(f"{target} exists with other contents; pick an empty folder")
    for name, text in PROJECT.items():
        (root / name).write_text(text, encoding="utf-8")
    if git and shutil.which("git") and not (root / ".git").exists():
        ident = ["-c", "user.name=Pilothouse demo", "-c", "user.email=demo@pilothouse.invalid",
                 "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
        for cmd in (["init", "-q"], ["add", *PROJECT], ["commit", "-q", "-m", "demo project"]):
            done = subprocess.run(["git", *ident, *cmd], cwd=root, capture_output=True)
            if done.returncode != 0:
                break  # a repository is a nicety; the project works without one
    return root
