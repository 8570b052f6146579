"""The stores parse stored JSON with ``decode_json``: the values ``json.loads`` gives, whichever
parser ran (``orjson`` where installed, ``json.loads`` for the text it refuses)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relcrm.storage import _checks
from relcrm.storage._checks import decode_json

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _typed(value: Any) -> Any:
    """``value`` with each number's type kept, so ``1`` and ``1.0`` compare unequal."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float):
        return ("float", value if not math.isinf(value) else str(value))
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(value=values, ascii_only=st.booleans())
def test_decode_json_gives_what_json_loads_gives(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _typed(decode_json(text)) == _typed(json.loads(text))
    assert _typed(decode_json(text.encode())) == _typed(json.loads(text))  # as psycopg gives it


def test_with_orjson_installed_it_parses_with_orjson() -> None:
    orjson = pytest.importorskip("orjson")
    calls: list[object] = []
    _checks._decoder.cache_clear()
    try:
        real = orjson.loads

        class Spy:
            @staticmethod
            def loads(text: object) -> object:
                calls.append(text)
                return real(text)

        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, "orjson", Spy)
            assert decode_json('{"a": 1}') == {"a": 1}
        assert calls == [b'{"a": 1}']
    finally:
        _checks._decoder.cache_clear()


@pytest.mark.parametrize(
    "text",
    [
        '{"big": 123456789012345678901234567890}',  # beyond 64 bits
        '{"t": "\\ud800 lone"}',  # an escaped lone surrogate
        '{"x": NaN, "y": -Infinity}',
        '{"f": 1e400}',
        '{"k": 1, "k": 2}',  # the last of a repeated key
    ],
)
def test_text_the_fast_parser_refuses_is_read_by_json_loads(text: str) -> None:
    assert repr(decode_json(text)) == repr(json.loads(text))


def test_bad_text_raises_what_json_loads_raises() -> None:
    with pytest.raises(json.JSONDecodeError):
        decode_json('{"unterminated": ')


def test_without_orjson_it_is_json_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _checks.importlib.import_module

    def no_orjson(name: str) -> Any:
        if name == "orjson":
            raise ImportError(name)
        return real(name)

    _checks._decoder.cache_clear()
    monkeypatch.setattr(_checks.importlib, "import_module", no_orjson)
    try:
        assert _checks._decoder() is json.loads
        assert decode_json('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    finally:
        _checks._decoder.cache_clear()
