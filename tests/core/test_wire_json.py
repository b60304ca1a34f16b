"""console.wire's JSON text against json itself as the oracle: the same text out, the same
values and the same errors in, for anything JSON can hold (and the odd Python values `--json`
meets)."""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console import wire

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text())
keys = st.text() | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.tuples(inner, inner)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=40)


def _same(a: object, b: object) -> bool:
    """Equal, NaN included (json.loads gives a fresh NaN each time)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(values)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert wire.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert wire.dumps(value, compact=False) == json.dumps(value, ensure_ascii=False)
    assert wire.dumps_indented(value) == json.dumps(value, ensure_ascii=False, indent=2)


@settings(max_examples=400, deadline=None)
@given(values)
def test_loads_reads_what_json_reads(value: object) -> None:
    text = json.dumps(value, ensure_ascii=False)
    for form in (text, f" \n{text}\t\r\n", text.encode()):
        assert _same(wire.loads(form), json.loads(form))
    ascii_text = json.dumps(value)  # every non-ASCII character as a \\u escape
    assert _same(wire.loads(ascii_text), json.loads(ascii_text))


@pytest.mark.parametrize("text", [
    "", " ", "{", "[1,]", '{"a" 1}', "[1] [2]", "[1] x", "tru", "nul", '"\\x"', '"a', "01",
    '{"a":1,}', "\ufeff[]", "[1]\n\n x", "1.", "-", "[\x00]", '"\n"', "NaN1", "[" * 10 + "]",
])
def test_text_that_is_not_json_fails_as_json_fails(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        wire.loads(text)
    assert wire.is_syntax_error(got.value)
    assert (type(got.value), str(got.value)) == (type(expected.value), str(expected.value))


def test_an_integer_past_the_digit_limit_is_no_syntax_error() -> None:
    with pytest.raises(ValueError) as got:
        wire.loads("1" * 5000)
    assert not wire.is_syntax_error(got.value)


def test_nesting_too_deep_raises_recursion_error_as_json_does() -> None:
    with pytest.raises(RecursionError):
        json.loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RecursionError):
        wire.loads("[" * 100_000 + "]" * 100_000)


def test_bytes_must_be_utf8() -> None:
    # json.loads would guess UTF-16 here, and take a surrogate encoded in UTF-8 (ED A0 80).
    for raw in ('["a"]'.encode("utf-16"), b'["\xed\xa0\x80"]', b"\xef\xbb\xbf[]"):
        with pytest.raises(ValueError):
            wire.loads(raw)


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_python_values_beyond_json_go_through_default_as_with_json() -> None:
    odd = {"colour": Colour.RED, "level": Level.HIGH, "set": {1}, "obj": object, 3: 1.5,
           1.5: None, True: [], None: {}}
    for fn, kw in ((wire.dumps_indented, {}), (wire.dumps, {"compact": False})):
        ours = fn(odd, default=str, **kw)
        theirs = json.dumps(odd, ensure_ascii=False, default=str, **({"indent": 2} if not kw else {}))
        assert ours == theirs
    for bad in ({1}, {(1, 2): 1}, object()):
        with pytest.raises(TypeError) as expected:
            json.dumps(bad, indent=2)
        with pytest.raises(TypeError) as got:
            wire.dumps_indented(bad)
        assert str(got.value) == str(expected.value)
        with pytest.raises(TypeError) as got:
            wire.dumps(bad)
        assert str(got.value) == str(expected.value)


def test_importing_it_loads_neither_json_nor_re() -> None:
    import subprocess
    import sys

    code = ("import sys, console.wire as j; j.loads(j.dumps({'a': [1, 2.5, None]})); "
            "j.dumps_indented({'a': 'é'}); print(sorted({'json', 're', 'enum'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=str(__import__("tests.conftest").conftest.REPO))
    assert done.stdout.strip() == "[]", done.stderr


def test_fitting_keeps_the_head_that_batched_would_send_first() -> None:
    """fitting stops measuring at the first row past the bound; what it keeps is the first part
    wire.batched cuts (the oracle): at least one row, never past `most` otherwise."""
    import random

    rng = random.Random(15)
    for _ in range(300):
        rows = [{"id": i, "text": "x" * rng.randrange(0, 300)} for i in range(rng.randrange(0, 40))]
        most = rng.randrange(1, 3000)
        parts = wire.batched(rows, most)
        assert wire.fitting(rows, most) == (parts[0] if parts else [])


def test_an_answer_of_fitted_rows_is_the_answer_of_the_rows_themselves() -> None:
    """`fitted` serializes each row once and `encode` writes that text as the result: the
    bytes on the wire are the ones encoding the plain rows would give (the oracle), for text
    that is not ASCII too, paged ({rows, more}) or not."""
    import random

    rng = random.Random(16)
    letters = "aé€😀\u2028\x1b\"\\"
    for _ in range(200):
        rows = [{"id": i, "text": "".join(rng.choice(letters) for _ in range(rng.randrange(0, 200))),
                 "data": {"n": rng.random(), "ok": rng.random() < 0.5, "none": None}}
                for i in range(rng.randrange(0, 30))]
        most = rng.randrange(1, 4000)
        kept, text = wire.fitted(rows, most)
        assert kept == wire.fitting(rows, most)
        assert wire.encode(wire.ok(9, wire.Encoded(kept, text))) == wire.encode(wire.ok(9, kept))
        paged = {"rows": kept, "more": len(kept) < len(rows)}
        paged_text = f'{{"rows":{text},"more":{"true" if paged["more"] else "false"}}}'
        assert (wire.encode(wire.ok("x", wire.Encoded(paged, paged_text)))
                == wire.encode(wire.ok("x", paged)))
