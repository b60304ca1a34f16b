"""The rules of the house (docs/architecture.md), checked on every `make test`.

import-linter holds the layers and the forbidden imports (contracts in pyproject.toml);
tests/house/import_graph.py finds circles between modules, function-level imports included,
and files past the size a module with one job should have.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.house import import_graph

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing from the venv: run `make setup` (import-linter is "
                    "in the test extras)")
    done = subprocess.run([lint, "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", done.stdout)
    assert summary is not None, done.stdout[-2000:]
    assert (int(summary[1]), int(summary[2])) == (4, 0), "a contract was added or dropped"


def test_no_import_circles():
    edges = import_graph.graph(ROOT)
    assert edges, "the graph script found no modules"
    assert import_graph.circles(edges) == []


def test_no_module_is_past_the_size_of_one_job():
    too_long = {}
    for root in import_graph.ROOTS:
        for path in (ROOT / root).rglob("*.py"):
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES:
                too_long[str(path.relative_to(ROOT))] = lines
    assert too_long == {}


def test_console_top_level_is_a_handful_of_modules():
    top = sorted(p.name for p in (ROOT / "console").iterdir() if p.suffix == ".py")
    # wrapping.py (s40, review h162): a request's command wrapped with its breaks shown, for the
    # card and the CLI's tables alike; text.py, its natural home, is at the size limit. It sits
    # in the lowest layer beside text.py, under the same contracts (pyproject.toml).
    # home_trust.py (s41, reviews h164 and h169): whether another user could stand in for the
    # daemon, split from paths.py (where the state lives), beside it in the lowest layer.
    # cells.py (s44, review h185): characters drawn as nothing or at a width the layout does not
    # count, split from text.py (at the size limit), beside it in the lowest layer.
    assert top == ["__init__.py", "__main__.py", "cells.py", "home_trust.py", "paths.py",
                   "protocol.py", "text.py", "wire.py", "wrapping.py"]


def test_graph_script_sees_a_circle_and_type_checking_imports(tmp_path):
    # The checker itself must be able to fail: a planted circle is found, and an import
    # under TYPE_CHECKING is not counted.
    pkg = tmp_path / "console"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from console import b\n")
    (pkg / "b.py").write_text("def f():\n    from console.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from console import a\n")
    for other in ("store", "widgets"):
        (tmp_path / other).mkdir()
    edges = import_graph.graph(tmp_path)
    assert import_graph.circles(edges) == [["console.a", "console.b"]]
    assert edges["console.c"] == set()


def test_no_private_name_is_imported_across_modules():
    # A leading underscore means "this module's own": another module that needs it should get
    # a public name instead (shadow once took the engine's private helpers this way).
    found = []
    for root in import_graph.ROOTS:
        for path in (ROOT / root).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                        import_graph.ROOTS):
                    found += [f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}"
                              for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []


def test_sql_lives_in_store():
    # Statements written in console/ would spread the schema over the house: store/ holds them.
    statement = re.compile(r"""["'](SELECT|INSERT|UPDATE|DELETE FROM|CREATE TABLE)\b""")
    found = [f"{path.relative_to(ROOT)}:{n}"
             for path in (ROOT / "console").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if statement.search(line)]
    assert found == []
