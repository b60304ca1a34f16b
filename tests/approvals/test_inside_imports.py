"""The helper starts on every hook call, so what it imports is most of what it costs: it stays
on the interpreter's own modules plus the C halves of json and socket, and its own JSON and
shell quoting write exactly what json and shlex would."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.sandbox import inside

INSIDE = Path(inside.__file__).resolve()
PYTHON = shutil.which("python3") or "python3"


def imported(*argv: str) -> set[str]:
    out = subprocess.run([PYTHON, "-S", "-E", "-X", "importtime", *argv], capture_output=True,
                         text=True, timeout=60, env={"PILOTHOUSE_AGENT_SOCK": "/nonexistent"})
    return {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:") and "|" in line} - {"package"}


def test_the_helper_imports_nothing_heavy() -> None:
    bare = imported("-c", "pass")
    for argv in (["ph-ask", "exec", "--", "git", "status"], ["ph-claude-hook"]):
        extra = imported(str(INSIDE), *argv) - bare
        assert extra <= {"_json", "_socket", "__future__"}, sorted(extra)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert inside.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert (inside.dumps(value, ensure_ascii=True, separators=(", ", ": "))
            == json.dumps(value))


@given(json_values)
def test_loads_reads_what_json_reads(value: object) -> None:
    for text in (json.dumps(value), f" \n{json.dumps(value, indent=2)}\t "):
        got, want = inside.loads(text), json.loads(text)
        assert repr(got) == repr(want) or (isinstance(want, float) and math.isnan(want))


@pytest.mark.parametrize("text", ["", " ", "{", '{"a": 1} x', "[1,]", "nul", '"\\x"', "{'a': 1}"])
def test_loads_refuses_what_json_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        inside.loads(text)


# bash's own list of its reserved words, the oracle for the words join must quote first.
BASH_KEYWORDS = frozenset(subprocess.run(["bash", "-c", "compgen -k"], capture_output=True, text=True, check=True).stdout.split())


def _read_otherwise_by_bash(word: str) -> bool:
    """A bare first word bash would take as an assignment or a keyword, which join quotes and shlex does not."""
    name = word.partition("=")[0].removesuffix("+")
    return word in BASH_KEYWORDS or ("=" in word and name.isidentifier())


@given(st.lists(st.text(), max_size=5))
def test_join_quotes_as_shlex_does(words: list[str]) -> None:
    """Word for word as shlex, but for a first word bash would read otherwise (see test_inside_helper)."""
    got = inside.join(words)
    assert shlex.split(got) == words
    if not (words and shlex.quote(words[0]) == words[0] and _read_otherwise_by_bash(words[0])):
        assert got == shlex.join(words)
    else:
        assert got.startswith("'" + words[0] + "'")


@pytest.mark.parametrize("first", ["A=", "a+=1", "if", "time"])
def test_join_quotes_a_first_word_bash_would_not_run(first: str) -> None:
    assert inside.join([first, "x"]) == f"'{first}' x" != shlex.join([first, "x"])
