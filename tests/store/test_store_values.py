"""store/values.py: the JSON a recorded event's data is stored as, held equal to json.dumps
(the chain hashes this text, and every reader parses it with json) on generated values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import values

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text())
keys = st.text() | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()
data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                    | st.dictionaries(keys, inner, max_size=5), max_leaves=40)


def _oracle(value: object) -> str | type[Exception]:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(data)
def test_the_same_text_as_json_dumps(value: object) -> None:
    expected = _oracle(value)
    if isinstance(expected, str):
        assert values.dumps(value) == expected
    else:
        with pytest.raises(expected):
            values.dumps(value)


@pytest.mark.parametrize("bad", [{1, 2}, object(), {(1, 2): "tuple key"}, b"bytes"])
def test_what_json_cannot_hold_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        values.dumps({"x": bad})


def test_a_value_that_contains_itself_or_nests_too_deep_is_a_value_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    mapping: dict[str, object] = {}
    mapping["me"] = mapping
    for bad in (loop, mapping):
        with pytest.raises(ValueError):
            values.dumps(bad)
    deep: list[object] = []
    tip = deep
    for _ in range(100_000):
        tip.append([])
        tip = tip[0]  # type: ignore[assignment]
    with pytest.raises(ValueError):
        values.dumps(deep)
    assert values.dumps({"after": [1, 2]}) == '{"after":[1,2]}'  # nothing left behind
