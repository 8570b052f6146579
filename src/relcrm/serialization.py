"""The boundary between relcrm objects and JSON-compatible data.

:func:`make_converter` builds a cattrs converter on top of :mod:`cattrs.preconf.json` that is
*strict*: unknown keys are rejected, a string is never silently turned into a number or a list,
datetimes must carry a timezone. :func:`structure` and :func:`unstructure` use one shared converter
and turn every structuring problem into a :class:`relcrm.ValidationError` whose message lists each
problem with its path (``"expected a string @ $.contacts[0].value"``).
"""

import enum
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._validators import InvalidField
from .exceptions import ValidationError

if TYPE_CHECKING:  # cattrs is imported on first use, keeping ``import relcrm`` quick
    import cattrs
    from cattrs.preconf.json import JsonConverter

__all__ = ["configure_converter", "make_converter", "structure", "unstructure"]

T = TypeVar("T")


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _structure_datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    try:
        if "\x00" in value:  # CPython 3.11's parser stops reading at a NUL after the offset
            raise ValueError(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date-time, got {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"expected a timezone in the date-time {value[:40]!r}")
    return parsed


def _structure_date(value: Any, _: type) -> date:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 date string, got {type(value).__name__}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date (YYYY-MM-DD), got {value[:40]!r}") from None


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_mapping(t: Any) -> bool:
    return typing.get_origin(t) in (dict, Mapping)


def _is_optional(t: Any) -> bool:
    """``X | None`` (or ``Optional[X]``) for one type ``X``."""
    args = typing.get_args(t)
    return (
        typing.get_origin(t) in (typing.Union, types.UnionType)
        and len(args) == 2
        and type(None) in args
    )


def configure_converter(converter: "cattrs.Converter") -> None:
    """Make ``converter`` strict in the way relcrm needs; usable on any cattrs converter."""
    import cattrs
    from cattrs.errors import IterableValidationNote
    from cattrs.fns import identity
    from cattrs.gen import make_dict_structure_fn

    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(date, _structure_date)
    converter.register_unstructure_hook(datetime, operator.methodcaller("isoformat"))
    converter.register_unstructure_hook(date, operator.methodcaller("isoformat"))

    def tuple_factory(t: Any) -> Callable[[Any, Any], Any]:
        (item_type,) = typing.get_args(t)[:1]
        item_hook = converter.get_structure_hook(item_type)

        def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected a list, got {type(value).__name__}")
            out, errors = [], []
            for i, item in enumerate(value):
                try:
                    out.append(item_hook(item, item_type))
                except Exception as exc:
                    note = IterableValidationNote(f"Structuring item @ index {i}", i, item_type)
                    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                    errors.append(exc)
            if errors:
                raise cattrs.IterableValidationError(
                    f"While structuring {t!r}", errors, t
                ) from None
            return tuple(out)

        return structure_tuple

    def mapping_factory(t: Any) -> Callable[[Any, Any], Any]:
        key_type, value_type = ((*typing.get_args(t), Any, Any))[:2]
        if key_type is not str:
            raise TypeError(f"relcrm mappings must have string keys, not {key_type!r}")
        value_hook = None if value_type is Any else converter.get_structure_hook(value_type)

        def structure_mapping(value: Any, _: Any) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            for k in value:
                if not isinstance(k, str):
                    raise TypeError(f"expected string keys, got {type(k).__name__}")
            if value_hook is None:
                return dict(value)
            return {k: value_hook(v, value_type) for k, v in value.items()}

        return structure_mapping

    def attrs_factory(cl: Any) -> Callable[[Any, Any], Any]:
        inner = make_dict_structure_fn(
            cl, converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
        )

        def structure_attrs(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return inner(value, cl)

        return structure_attrs

    def structure_enum(value: Any, enum_type: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            raise ValueError(f"expected one of {allowed}, got {value[:40]!r}") from None

    # Registered on the enum bases (not by predicate) so they win over the ``str`` hook that
    # ``StrEnum`` members would otherwise inherit through single dispatch.
    for base in (enum.StrEnum, enum.Enum):
        converter.register_structure_hook(base, structure_enum)
        converter.register_unstructure_hook(base, operator.attrgetter("value"))
    converter.register_structure_hook_factory(_is_homogeneous_tuple, tuple_factory)
    converter.register_structure_hook_factory(_is_mapping, mapping_factory)
    converter.register_structure_hook_factory(attrs.has, attrs_factory)

    # Unstructuring gives what cattrs gives, with fewer calls per value (bulk writes unstructure
    # every record): a tuple of values that stay as they are is copied into a list in one call,
    # other tuples with a list comprehension, and an optional value that stays as it is is not
    # wrapped at all (generated functions then read the attribute directly).
    def tuple_unstructure_factory(t: Any) -> Callable[[Any], Any]:
        item_hook = converter.get_unstructure_hook(typing.get_args(t)[0])
        if item_hook is identity:
            return list

        def unstructure_tuple(value: Any, _hook: Callable[[Any], Any] = item_hook) -> list[Any]:
            return [_hook(item) for item in value]

        return unstructure_tuple

    def optional_unstructure_factory(t: Any) -> Callable[[Any], Any]:
        (inner,) = (a for a in typing.get_args(t) if a is not type(None))
        hook = converter.get_unstructure_hook(inner)
        if hook is identity:
            return identity

        def unstructure_optional(value: Any, _hook: Callable[[Any], Any] = hook) -> Any:
            return None if value is None else _hook(value)

        return unstructure_optional

    converter.register_unstructure_hook_factory(_is_homogeneous_tuple, tuple_unstructure_factory)
    converter.register_unstructure_hook_factory(_is_optional, optional_unstructure_factory)


def make_converter() -> "JsonConverter":
    """A new strict JSON converter for every relcrm type (see :func:`configure_converter`)."""
    from cattrs.preconf.json import make_converter as make_json_converter

    converter = make_json_converter(forbid_extra_keys=True, detailed_validation=True)
    configure_converter(converter)
    return converter


@cache
def _converter() -> "JsonConverter":
    return make_converter()


def make_stored_converter() -> "JsonConverter":
    """A converter for data relcrm wrote itself (records read back from a store): it builds
    the same objects as :func:`make_converter` from such data, without the checks that give
    bad input its error messages, which makes reading many records faster. Unknown keys are
    still refused."""
    from cattrs.preconf.json import make_converter as make_json_converter

    converter = make_json_converter(forbid_extra_keys=True, detailed_validation=False)
    converter.register_structure_hook(str, lambda value, _: value)
    converter.register_structure_hook(datetime, lambda value, _: datetime.fromisoformat(value))
    converter.register_structure_hook(date, lambda value, _: date.fromisoformat(value))
    for base in (enum.StrEnum, enum.Enum):
        converter.register_structure_hook(base, lambda value, enum_type: enum_type(value))

    def tuple_factory(t: Any) -> Callable[[Any, Any], Any]:
        item_type = typing.get_args(t)[0]
        if item_type is str:
            return lambda value, _: tuple(value)
        item_hook = converter.get_structure_hook(item_type)
        return lambda value, _: tuple([item_hook(item, item_type) for item in value])

    converter.register_structure_hook_factory(_is_homogeneous_tuple, tuple_factory)
    return converter


@cache
def _stored_converter() -> "JsonConverter":
    return make_stored_converter()


def structure_stored(data: Any, cl: type[T]) -> T:
    """:func:`structure` for data relcrm wrote itself, faster (see
    :func:`make_stored_converter`); data that does not fit is handed to :func:`structure`, so
    a problem raises the same :class:`relcrm.ValidationError`."""
    try:
        return _stored_converter().structure(data, cl)
    except Exception:
        return structure(data, cl)


def _type_name(cl: Any) -> str:
    return getattr(cl, "__name__", None) or str(cl)


def structure(data: Any, cl: type[T]) -> T:
    """Build a ``cl`` from JSON-compatible ``data``; any problem raises
    :class:`relcrm.ValidationError` listing each one with its path."""
    try:
        return _converter().structure(data, cl)
    except RecursionError:
        raise ValidationError(_type_name(cl), ["input nested too deeply @ $"]) from None
    except Exception as exc:
        raise ValidationError(_type_name(cl), _describe(exc)) from exc


def unstructure(obj: Any) -> Any:
    """JSON-compatible data for any relcrm object (dicts, lists, strings, numbers, booleans).

    Data nested too deeply to walk raises :class:`relcrm.ValidationError`."""
    try:
        return _converter().unstructure(obj)
    except RecursionError:
        raise ValidationError(_type_name(type(obj)), ["input nested too deeply @ $"]) from None


_FIELD_MARK = "\x1f"


def _format(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, InvalidField):
        # transform_error only knows the path of the object; the field is appended in _describe.
        return f"{exc.message}{_FIELD_MARK}{exc.field}{exc.subpath}"
    import cattrs

    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s) {', '.join(sorted(map(repr, exc.extra_fields)))}"
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError):
        msg = str(exc)
        if msg.startswith("__init__() missing"):
            return "required field missing"
        return msg or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _describe(exc: BaseException) -> list[str]:
    import cattrs

    messages = cattrs.transform_error(exc, path="$", format_exception=_format)
    return [_place(m) for m in messages or [f"{_format(exc, None)} @ $"]]


def _place(message: str) -> str:
    """Move a field name marked by :func:`_format` into the path: ``"msg @ $.a.field"``."""
    if _FIELD_MARK not in message:
        return message
    text, rest = message.split(_FIELD_MARK, 1)
    field, _, path = rest.partition(" @ ")
    sep = "" if field.startswith("[") else "."
    return f"{text} @ {path or '$'}{sep}{field}"
