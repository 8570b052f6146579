"""What every built-in backend checks before it stores or queries: one place, same messages."""

import json
from collections.abc import Mapping
from typing import Any

from ..exceptions import StorageError

__all__ = ["OUTBOX_STATUSES", "check_limit", "check_status", "dump_mapping"]

OUTBOX_STATUSES = frozenset({"pending", "delivered", "dead"})


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def dump_mapping(what: str, value: Mapping[str, Any]) -> str:
    """Encode ``value`` as compact JSON text (strings verbatim), refusing what no database could
    store: non-mappings, ``NaN``, non-JSON objects and lone surrogates."""
    if not isinstance(value, Mapping):
        raise StorageError(f"{what} must be a mapping, not {type(value).__name__}")
    try:
        text = json.dumps(
            value,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{what} is not JSON-compatible: {exc}") from exc
    return text


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, not {limit}")


def check_status(status: str) -> None:
    if status not in OUTBOX_STATUSES:
        raise ValueError(f"outbox status must be one of {sorted(OUTBOX_STATUSES)}, not {status!r}")
