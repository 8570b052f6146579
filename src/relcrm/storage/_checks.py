"""What every built-in backend checks before it stores or queries: one place, same messages."""

import functools
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import StorageError
from .base import JSONText

__all__ = [
    "OUTBOX_STATUSES",
    "check_limit",
    "check_status",
    "decode_json",
    "dump_mapping",
    "encode_json",
]

OUTBOX_STATUSES = frozenset({"pending", "delivered", "dead"})


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _make_encoder() -> Callable[[Any], str]:
    """``json.dumps`` with the settings below. Where the C accelerator is available its encoder
    is made once and called directly: bulk writes encode several mappings per record, and
    ``json.dumps`` sets a new encoder up on every call. It is made without the circular-reference
    check, so a cycle ends in ``RecursionError``, which :func:`dump_mapping` reports like any
    other problem."""
    from json import encoder

    plain: Callable[[Any], str] = functools.partial(
        json.dumps,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    make = getattr(encoder, "c_make_encoder", None)  # both None without the C accelerator
    quote = getattr(encoder, "c_encode_basestring", None)
    if make is None or quote is None:
        return plain
    try:
        # markers, default, string encoder, indent, key and item separators, sort_keys,
        # skipkeys, allow_nan: as json.dumps passes them for the settings above.
        encode = make(None, _json_default, quote, None, ":", ",", False, False, False)
    except TypeError:  # another signature: keep to json.dumps
        return plain

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    sample = {"text": 'é\u2028"', "numbers": [1, -2.5, 10**20], "flags": [True, None]}
    return dumps if dumps(sample) == plain(sample) else plain


_dumps = _make_encoder()
#: Compact JSON text of a JSON-compatible value, exactly as :func:`dump_mapping` writes it.
encode_json = _dumps


@functools.cache
def _decoder() -> Callable[[str | bytes], Any]:
    """``json.loads``, or with the optional ``orjson`` installed (``relcrm[fast]``) its parser,
    several times faster, for the text it reads exactly; the text it refuses (lone surrogates,
    ``NaN``) or might not read exactly (integers beyond 64 bits) goes to ``json.loads``, so the
    values are the same either way."""
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return json.loads
    fast = orjson.loads
    # orjson reads an integer beyond 64 bits as a float: text with 19 digits in a row (in a
    # number or not) goes to json.loads. (A bytes translation finds them several times faster
    # than a regular expression.)
    zeros = bytes.maketrans(b"123456789", b"000000000")
    long = b"0" * 19

    def loads(text: str | bytes) -> Any:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
        if long in data.translate(zeros):
            return json.loads(text)
        try:
            return fast(data)
        except ValueError:  # orjson.JSONDecodeError is one; so is a lone surrogate's UTF-8
            return json.loads(text)

    return loads


def decode_json(text: str | bytes) -> Any:
    """The value of the JSON ``text``, as ``json.loads`` gives it (faster with ``orjson``)."""
    return _decoder()(text)


def dump_mapping(what: str, value: Mapping[str, Any]) -> str:
    """Encode ``value`` as compact JSON text (strings verbatim), refusing what no database could
    store: non-mappings, ``NaN``, non-JSON objects, cycles and lone surrogates. The text of a
    :class:`~relcrm.storage.base.JSONText` is taken as it is (checked for lone surrogates only)."""
    if type(value) is JSONText:
        text = value.text
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise StorageError(f"{what} is not JSON-compatible: {exc}") from exc
        return text
    if not isinstance(value, Mapping):
        raise StorageError(f"{what} must be a mapping, not {type(value).__name__}")
    try:
        text = _dumps(value)
        if not text.isascii():  # only non-ASCII text can hold a lone surrogate
            text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise StorageError(f"{what} is not JSON-compatible: {exc}") from exc
    return text


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, not {limit}")


def check_status(status: str) -> None:
    if status not in OUTBOX_STATUSES:
        raise ValueError(f"outbox status must be one of {sorted(OUTBOX_STATUSES)}, not {status!r}")
