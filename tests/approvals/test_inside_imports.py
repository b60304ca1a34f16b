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


@given(st.lists(st.text(), max_size=5))
def test_join_quotes_as_shlex_does(words: list[str]) -> None:
    assert inside.join(words) == shlex.join(words)
