"""People read for indexing straight from their stored JSON, without building a :class:`Person`.

Building a whole :class:`~relcrm.model.Person` (every contact, link and education entry, each an
attrs instance run through its converters) is the largest single cost of building the match index
from a store, and the index reads only a few of its fields. :func:`stored_person` reads those
fields from the data relcrm wrote for the person and keeps the rest as it is; data that is not in
that shape (a key the model does not have, a value of another type) is built into a
:class:`Person` the usual way, which raises :class:`relcrm.ValidationError` for data that is bad.
Values are taken as relcrm wrote them: skills, for one, are not normalised again (the index
compares skills by their normalised keys in any case).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import attrs

from ..model import Experience, Location, Person, Preferences
from ..serialization import structure_stored

__all__ = ["ExperienceFields", "PersonFields", "StoredPerson", "as_person", "stored_person"]

_PERSON_KEYS = frozenset(a.name for a in attrs.fields(Person))
_EXPERIENCE_KEYS = frozenset(a.name for a in attrs.fields(Experience))
#: Distinct locations and preference sets kept, each built once (they repeat across people).
_CACHE_LIMIT = 100_000
_locations: dict[tuple[Any, ...], Location] = {}
_preferences: dict[tuple[Any, ...], Preferences] = {}
_DEFAULT_PREFERENCES = Preferences()
#: ``str`` for as long as ``map`` asks (``isinstance`` of every item of a list).
_STR = itertools.repeat(str)


class ExperienceFields(Protocol):
    """What the index reads of a position."""

    @property
    def title(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def highlights(self) -> Sequence[str]: ...
    @property
    def end(self) -> date | None: ...


class PersonFields(Protocol):
    """What the index reads of a person: a :class:`Person` or a :class:`StoredPerson`."""

    @property
    def id(self) -> str: ...
    @property
    def headline(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def skills(self) -> Sequence[str]: ...
    @property
    def experience(self) -> Sequence[ExperienceFields]: ...
    @property
    def location(self) -> Location | None: ...
    @property
    def preferences(self) -> Preferences: ...
    @property
    def created_at(self) -> datetime | None: ...


class _NotPlain(Exception):
    """The data is not what relcrm writes for a person: build a Person from it instead."""


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _NotPlain
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if type(value) is not list or not all(map(isinstance, value, _STR)):
        raise _NotPlain
    return tuple(value)


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(_text(value))


def _cached(cache: dict[tuple[Any, ...], Any], data: Any, cl: type[Any]) -> Any:
    """``structure_stored(data, cl)``, made once for equal ``data``."""
    if type(data) is not dict:
        raise _NotPlain
    key = tuple([(k, tuple(v) if type(v) is list else v) for k, v in data.items()])
    found = cache.get(key)
    if found is None:
        found = structure_stored(data, cl)
        if len(cache) < _CACHE_LIMIT:
            cache[key] = found
    return found


class _StoredExperience:
    __slots__ = ("end", "highlights", "summary", "title")

    def __init__(self, data: Any) -> None:
        if type(data) is not dict or not data.keys() <= _EXPERIENCE_KEYS:
            raise _NotPlain
        self.title = _text(data["title"])
        self.summary = _text(data.get("summary", ""))
        self.highlights = _texts(data.get("highlights", []))
        self.end = _day(data.get("end"))
        # not read by the index, checked so that data a Person would refuse is refused here too
        _day(data.get("start"))
        _text(data.get("organisation", ""))


class StoredPerson:
    """The fields of :class:`PersonFields`, read from a person's stored ``data`` (the mapping as
    relcrm encodes a :class:`Person`); :meth:`person` builds the whole :class:`Person`."""

    __slots__ = (
        "created_at",
        "data",
        "experience",
        "headline",
        "id",
        "location",
        "preferences",
        "skills",
        "summary",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        if type(data) is not dict or not data.keys() <= _PERSON_KEYS:
            raise _NotPlain
        self.data = data
        self.id = _text(data["id"])
        if not self.id:
            raise _NotPlain
        self.headline = _text(data.get("headline", ""))
        self.summary = _text(data.get("summary", ""))
        self.skills = _texts(data.get("skills", []))
        experience = data.get("experience", [])
        if type(experience) is not list:
            raise _NotPlain
        self.experience = tuple([_StoredExperience(e) for e in experience])
        location = data.get("location")
        self.location = None if location is None else _cached(_locations, location, Location)
        preferences = data.get("preferences")
        self.preferences = (
            _DEFAULT_PREFERENCES
            if "preferences" not in data
            else _cached(_preferences, preferences, Preferences)
        )
        created = data.get("created_at")
        self.created_at = None if created is None else datetime.fromisoformat(_text(created))
        if self.created_at is not None and self.created_at.tzinfo is None:
            raise _NotPlain

    def person(self) -> Person:
        """The :class:`Person` these fields were read from."""
        return structure_stored(self.data, Person)


def stored_person(data: Any) -> Person | StoredPerson:
    """What the index needs of the person stored as ``data``: a :class:`StoredPerson` when the
    data is what relcrm writes, else the :class:`Person` built from it (or
    :class:`relcrm.ValidationError` when it is not a person)."""
    try:
        return StoredPerson(data)
    except (_NotPlain, KeyError, TypeError, ValueError):
        return structure_stored(data, Person)


def as_person(person: Person | StoredPerson) -> Person:
    """``person`` as a :class:`Person`."""
    return person if isinstance(person, Person) else person.person()
