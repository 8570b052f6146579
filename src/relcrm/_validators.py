"""Invariant checks shared by the vocabulary modules.

They raise :class:`InvalidField`, which remembers the field, so that the converter can report the
problem at the field's own path (``"must not be empty @ $.contacts[0].value"``).
"""

from datetime import datetime
from typing import Any

import attrs

__all__ = ["InvalidField", "aware", "non_empty"]


class InvalidField(ValueError):
    """A value broke an invariant of the field ``field`` (``subpath`` points inside it)."""

    def __init__(self, field: str, message: str, subpath: str = "") -> None:
        self.field = field
        self.message = message
        self.subpath = subpath
        super().__init__(f"{field}{subpath}: {message}")


def non_empty(instance: object, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if not value.strip():
        raise InvalidField(attribute.name, "must not be empty")


def aware(instance: object, attribute: "attrs.Attribute[Any]", value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise InvalidField(attribute.name, f"must be timezone-aware, got {value.isoformat()}")
