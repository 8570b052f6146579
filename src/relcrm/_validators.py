"""Invariant checks shared by the vocabulary modules.

They raise :class:`InvalidField`, which remembers the field, so that the converter can report the
problem at the field's own path (``"must not be empty @ $.contacts[0].value"``). It is a
:class:`~relcrm.ValidationError`, so a value built directly (``Actor(role, "")``, or by
:func:`attrs.evolve` inside a command) is refused with the library's own error too.
"""

from datetime import datetime
from typing import Any

import attrs

from .exceptions import ValidationError

__all__ = ["InvalidField", "aware", "non_empty"]


class InvalidField(ValidationError):
    """A value broke an invariant of the field ``field`` (``subpath`` points inside it).

    ``type_name`` names the type being built, when the check knows it.
    """

    def __init__(self, field: str, message: str, subpath: str = "", type_name: str = "") -> None:
        self.field = field
        self.message = message
        self.subpath = subpath
        super().__init__(type_name or field, [f"{message} @ $.{field}{subpath}"])


def _owner(instance: object) -> str:
    return type(instance).__name__


def non_empty(instance: object, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if not isinstance(value, str):
        raise InvalidField(
            attribute.name, f"expected a string, got {type(value).__name__}", "", _owner(instance)
        )
    if not value.strip():
        raise InvalidField(attribute.name, "must not be empty", "", _owner(instance))


def aware(instance: object, attribute: "attrs.Attribute[Any]", value: datetime | None) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise InvalidField(
            attribute.name,
            f"expected a timezone-aware datetime, got {type(value).__name__}",
            "",
            _owner(instance),
        )
    if value.utcoffset() is None:
        raise InvalidField(
            attribute.name, f"must be timezone-aware, got {value.isoformat()}", "", _owner(instance)
        )
