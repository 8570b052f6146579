"""JSON Resume documents (https://jsonresume.org): resumes for people, job documents for openings.

The attrs classes mirror the standard's schemas (``schema.json`` and ``job-schema.json``) field for
field; :func:`structure_resume` and :func:`structure_job` build them through a cattrs converter made
with :func:`relcrm.serialization.make_converter`, so every problem raises
:class:`relcrm.ValidationError` with one ``"message @ $.path"`` line per problem, paths spelled
as in the document (``$.work[0].startDate``).

What the converter checks, as the schema says:

* types: a string is a string, a list a list, an object an object; ``null`` is never a value
  (the standard's ``*Invalid`` fixtures are exactly these);
* dates (``startDate``, ``endDate``, ``date``, ``releaseDate``) match the schema's ``iso8601``
  pattern ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` and name a real calendar date (the pattern alone
  would let ``2013-19-39`` through);
* ``basics.email`` looks like an address (``local@domain``, no spaces);
* ``remote`` is one of ``"Full"``, ``"Hybrid"``, ``"None"``.

The schema allows additional properties everywhere, so unknown keys are accepted and not kept.
``uri`` formats are not checked: the standard's own fixtures accept ``"$schema": "foo-bar-baz"``.

Mapping to relcrm (:func:`person_from_resume`, :func:`resume_from_person`,
:func:`opening_from_job`, :func:`job_from_opening`) is described in ``docs/interchange.md``.
"""

import enum
import hashlib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import cache
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.preconf.json import JsonConverter

from ..exceptions import ValidationError
from ..ids import new_id
from ..model import (
    ContactKind,
    ContactPoint,
    Education,
    Experience,
    Link,
    Location,
    Opening,
    Person,
    Preferences,
    RemotePolicy,
    Seniority,
    normalise_skill,
)
from ..serialization import _describe, make_converter, unstructure
from ..storage._checks import encode_json

__all__ = [
    "Award",
    "Basics",
    "Certificate",
    "Interest",
    "Job",
    "JobRemote",
    "Language",
    "Meta",
    "PartialDate",
    "Place",
    "Profile",
    "Project",
    "Publication",
    "Reference",
    "Resume",
    "ResumeEducation",
    "Skill",
    "Volunteer",
    "Work",
    "job_from_opening",
    "make_jsonresume_converter",
    "opening_from_job",
    "opening_id_for_canonical",
    "person_from_resume",
    "person_id_for_email",
    "resume_from_person",
    "structure_job",
    "structure_resume",
    "unstructure_document",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# Dates with the precision the document gave
# --------------------------------------------------------------------------------------------

_DATE = re.compile(r"([12][0-9]{3})(?:-([0-9]{2})(?:-([0-9]{2}))?)?", re.ASCII)


@attrs.frozen(order=True)
class PartialDate:
    """A JSON Resume date: a year, a year and month, or a full date.

    ``str()`` gives the document form back; :meth:`first_day` the :class:`datetime.date` relcrm
    stores (``2013-12`` -> 2013-12-01, ``2013`` -> 2013-01-01).
    """

    year: int
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> "PartialDate":
        """Read ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; :class:`ValueError` otherwise."""
        found = _DATE.fullmatch(text)
        if found is None:
            raise ValueError(f"expected a date as YYYY, YYYY-MM or YYYY-MM-DD, got {text[:40]!r}")
        year, month, day = (int(g) if g is not None else None for g in found.groups())
        assert year is not None
        try:
            date(year, month or 1, day or 1)
        except ValueError:
            raise ValueError(f"no such date: {text!r}") from None
        return cls(year, month, day)

    @classmethod
    def from_date(cls, value: date) -> "PartialDate":
        return cls(value.year, value.month, value.day)

    @property
    def precision(self) -> str:
        """``"year"``, ``"month"`` or ``"day"``."""
        return "year" if self.month is None else "month" if self.day is None else "day"

    def first_day(self) -> date:
        return date(self.year, self.month or 1, self.day or 1)

    def __str__(self) -> str:
        text = f"{self.year:04d}"
        if self.month is not None:
            text += f"-{self.month:02d}"
            if self.day is not None:
                text += f"-{self.day:02d}"
        return text


# --------------------------------------------------------------------------------------------
# The documents. ``metadata["key"]`` is the document's spelling of a field when it differs.
# --------------------------------------------------------------------------------------------

_KEY = "jsonresume_key"
_CHECK = "jsonresume_check"
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)*")


def _check_email(value: str) -> None:
    if _EMAIL.fullmatch(value) is None:
        raise ValueError(f"expected an email address like name@example.org, got {value[:60]!r}")


def _key(key: str) -> dict[str, Any]:
    return {_KEY: key}


class JobRemote(enum.StrEnum):
    """The job schema's ``remote`` values."""

    FULL = "Full"
    HYBRID = "Hybrid"
    NONE = "None"


@attrs.frozen
class Place:
    """``basics.location`` and a job's ``location``."""

    address: str | None = None
    postal_code: str | None = attrs.field(default=None, metadata=_key("postalCode"))
    city: str | None = None
    country_code: str | None = attrs.field(default=None, metadata=_key("countryCode"))
    region: str | None = None


@attrs.frozen
class Profile:
    network: str | None = None
    username: str | None = None
    url: str | None = None


@attrs.frozen
class Basics:
    name: str | None = None
    label: str | None = None
    image: str | None = None
    email: str | None = attrs.field(default=None, metadata={_CHECK: _check_email})
    phone: str | None = None
    url: str | None = None
    summary: str | None = None
    location: Place | None = None
    profiles: tuple[Profile, ...] | None = None


@attrs.frozen
class Work:
    name: str | None = None
    location: str | None = None
    description: str | None = None
    position: str | None = None
    url: str | None = None
    start_date: PartialDate | None = attrs.field(default=None, metadata=_key("startDate"))
    end_date: PartialDate | None = attrs.field(default=None, metadata=_key("endDate"))
    summary: str | None = None
    highlights: tuple[str, ...] | None = None


@attrs.frozen
class Volunteer:
    organization: str | None = None
    position: str | None = None
    url: str | None = None
    start_date: PartialDate | None = attrs.field(default=None, metadata=_key("startDate"))
    end_date: PartialDate | None = attrs.field(default=None, metadata=_key("endDate"))
    summary: str | None = None
    highlights: tuple[str, ...] | None = None


@attrs.frozen
class ResumeEducation:
    institution: str | None = None
    url: str | None = None
    area: str | None = None
    study_type: str | None = attrs.field(default=None, metadata=_key("studyType"))
    start_date: PartialDate | None = attrs.field(default=None, metadata=_key("startDate"))
    end_date: PartialDate | None = attrs.field(default=None, metadata=_key("endDate"))
    score: str | None = None
    courses: tuple[str, ...] | None = None


@attrs.frozen
class Award:
    title: str | None = None
    date: PartialDate | None = None
    awarder: str | None = None
    summary: str | None = None


@attrs.frozen
class Certificate:
    name: str | None = None
    date: PartialDate | None = None
    url: str | None = None
    issuer: str | None = None


@attrs.frozen
class Publication:
    name: str | None = None
    publisher: str | None = None
    release_date: PartialDate | None = attrs.field(default=None, metadata=_key("releaseDate"))
    url: str | None = None
    summary: str | None = None


@attrs.frozen
class Skill:
    name: str | None = None
    level: str | None = None
    keywords: tuple[str, ...] | None = None


@attrs.frozen
class Language:
    language: str | None = None
    fluency: str | None = None


@attrs.frozen
class Interest:
    name: str | None = None
    keywords: tuple[str, ...] | None = None


@attrs.frozen
class Reference:
    name: str | None = None
    reference: str | None = None


@attrs.frozen
class Project:
    name: str | None = None
    description: str | None = None
    highlights: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    start_date: PartialDate | None = attrs.field(default=None, metadata=_key("startDate"))
    end_date: PartialDate | None = attrs.field(default=None, metadata=_key("endDate"))
    url: str | None = None
    roles: tuple[str, ...] | None = None
    entity: str | None = None
    type: str | None = None


@attrs.frozen
class Meta:
    canonical: str | None = None
    version: str | None = None
    last_modified: str | None = attrs.field(default=None, metadata=_key("lastModified"))


@attrs.frozen
class Resume:
    """A JSON Resume document (``schema.json``)."""

    schema: str | None = attrs.field(default=None, metadata=_key("$schema"))
    basics: Basics | None = None
    work: tuple[Work, ...] | None = None
    volunteer: tuple[Volunteer, ...] | None = None
    education: tuple[ResumeEducation, ...] | None = None
    awards: tuple[Award, ...] | None = None
    certificates: tuple[Certificate, ...] | None = None
    publications: tuple[Publication, ...] | None = None
    skills: tuple[Skill, ...] | None = None
    languages: tuple[Language, ...] | None = None
    interests: tuple[Interest, ...] | None = None
    references: tuple[Reference, ...] | None = None
    projects: tuple[Project, ...] | None = None
    meta: Meta | None = None


@attrs.frozen
class Job:
    """A JSON Resume job document (``job-schema.json``)."""

    schema: str | None = attrs.field(default=None, metadata=_key("$schema"))
    title: str | None = None
    company: str | None = None
    type: str | None = None
    date: PartialDate | None = None
    description: str | None = None
    location: Place | None = None
    remote: JobRemote | None = None
    salary: str | None = None
    experience: str | None = None
    responsibilities: tuple[str, ...] | None = None
    qualifications: tuple[str, ...] | None = None
    skills: tuple[Skill, ...] | None = None
    meta: Meta | None = None


_DOCUMENT_TYPES: frozenset[type] = frozenset(
    {
        Place,
        Profile,
        Basics,
        Work,
        Volunteer,
        ResumeEducation,
        Award,
        Certificate,
        Publication,
        Skill,
        Language,
        Interest,
        Reference,
        Project,
        Meta,
        Resume,
        Job,
    }
)

# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------


def _without_none(t: Any) -> Any:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


def _expected(t: Any) -> str:
    if t is str:
        return "a string"
    if t is PartialDate:
        return "a date string"
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in t)
    if typing.get_origin(t) is tuple:
        return "a list"
    return "an object"


def _is_tuple_type(t: Any) -> bool:
    return t is tuple or typing.get_origin(t) is tuple


def _structure_partial_date(value: Any, _: Any) -> PartialDate:
    if not isinstance(value, str):
        raise TypeError(f"expected a date string, got {type(value).__name__}")
    return PartialDate.parse(value)


def make_jsonresume_converter() -> JsonConverter:
    """A strict converter (:func:`relcrm.serialization.make_converter`) that also knows the JSON
    Resume document classes: document keys (``startDate``, ``$schema``), ``null`` refused, unknown
    keys accepted (the schema allows them), ``None`` fields left out when unstructuring."""
    converter = make_converter()
    converter.register_structure_hook(PartialDate, _structure_partial_date)
    converter.register_unstructure_hook(PartialDate, str)

    def structure_factory(cl: Any) -> Callable[[Any, Any], Any]:
        plan = []
        for f in attrs.fields(cl):
            inner = _without_none(f.type)
            plan.append(
                (
                    f.name,
                    f.metadata.get(_KEY, f.name),
                    inner,
                    converter.get_structure_hook(inner),
                    f.metadata.get(_CHECK),
                )
            )

        def structure_document(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            kwargs: dict[str, Any] = {}
            errors: list[Exception] = []
            for name, key, inner, hook, check in plan:
                if key not in value:
                    continue
                raw = value[key]
                try:
                    if raw is None:
                        raise TypeError(f"expected {_expected(inner)}, got null")
                    kwargs[name] = hook(raw, inner)
                    if check is not None:
                        check(kwargs[name])
                except Exception as exc:
                    note = cattrs.AttributeValidationNote(
                        f"Structuring class {cl.__qualname__} @ attribute {key}", key, inner
                    )
                    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                    errors.append(exc)
            if errors:
                raise ClassValidationError(f"While structuring {cl.__name__}", errors, cl)
            return cl(**kwargs)

        return structure_document

    def unstructure_factory(cl: Any) -> Callable[[Any], Any]:
        plan = [(f.name, f.metadata.get(_KEY, f.name)) for f in attrs.fields(cl)]

        def unstructure_document(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, key in plan:
                value = getattr(obj, name)
                if value is not None:
                    out[key] = converter.unstructure(value)
            return out

        return unstructure_document

    def unstructure_tuple(value: tuple[Any, ...]) -> list[Any]:
        return [converter.unstructure(v) for v in value]

    converter.register_structure_hook_factory(lambda t: t in _DOCUMENT_TYPES, structure_factory)
    converter.register_unstructure_hook_factory(lambda t: t in _DOCUMENT_TYPES, unstructure_factory)
    converter.register_unstructure_hook_func(_is_tuple_type, unstructure_tuple)
    return converter


@cache
def _converter() -> JsonConverter:
    return make_jsonresume_converter()


def _structure(data: Any, cl: type[T]) -> T:
    if not isinstance(data, Mapping):
        raise ValidationError(cl.__name__, [f"expected an object, got {type(data).__name__} @ $"])
    try:
        return _converter().structure(data, cl)
    except RecursionError:
        raise ValidationError(cl.__name__, ["input nested too deeply @ $"]) from None
    except Exception as exc:
        raise ValidationError(cl.__name__, _describe(exc)) from exc


def structure_resume(data: Any) -> Resume:
    """A :class:`Resume` from a parsed JSON document; :class:`relcrm.ValidationError` if the
    standard rejects it."""
    return _structure(data, Resume)


def structure_job(data: Any) -> Job:
    """A :class:`Job` from a parsed JSON job document; :class:`relcrm.ValidationError` if the
    standard rejects it."""
    return _structure(data, Job)


def unstructure_document(doc: Resume | Job) -> dict[str, Any]:
    """The JSON-compatible form of a document, in the standard's spelling, absent fields left
    out."""
    out: dict[str, Any] = _converter().unstructure(doc)
    return out


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------

#: The label of the :class:`~relcrm.Link` that holds ``basics.url``.
WEBSITE_LABEL = "website"


def person_id_for_email(email: str) -> str:
    """The person id an import derives from an email address: ``per_`` and 24 hex digits of a
    SHA-256 of the trimmed, case-folded address. The same address always gives the same id, so
    importing a file twice is detected."""
    digest = hashlib.sha256(email.strip().casefold().encode("utf-8")).hexdigest()
    return f"per_{digest[:24]}"


def _text(value: str | None) -> str:
    return value if value is not None else ""


def _present(value: str | None) -> typing.TypeGuard[str]:
    """A value relcrm can keep (its ids, contact points and links must not be blank)."""
    return value is not None and bool(value.strip())


def _day(value: PartialDate | None) -> date | None:
    return value.first_day() if value is not None else None


def _location(place: Place | None) -> Location | None:
    if place is None:
        return None
    loc = Location(
        city=_text(place.city), region=_text(place.region), country_code=_text(place.country_code)
    )
    return None if loc == Location() else loc


def _skill_names(skills: Iterable[Skill]) -> list[str]:
    names: list[str] = []
    for s in skills:
        if s.name:
            names.append(s.name)
        names.extend(s.keywords or ())
    return names


def person_from_resume(
    document: Mapping[str, Any] | Resume, *, id: str | None = None, sources: Iterable[str] = ()
) -> Person:
    """A :class:`~relcrm.Person` from a JSON Resume document (a parsed dict or a
    :class:`Resume`).

    The id is ``id`` if given, else :func:`person_id_for_email` of ``basics.email``, else a new
    one. A resume without ``basics.name`` raises :class:`relcrm.ValidationError` (relcrm needs a
    name; an email is not one).
    """
    if type(document) is dict:
        fast = _fast_person(document, id, sources)
        if fast is not None:
            return fast
    resume = document if isinstance(document, Resume) else structure_resume(document)
    basics = resume.basics or Basics()
    if basics.name is None or not basics.name.strip():
        raise ValidationError("Person", ["a person needs a name @ $.basics.name"])
    contacts = []
    if _present(basics.email):
        contacts.append(ContactPoint(basics.email, ContactKind.EMAIL))
    if _present(basics.phone):
        contacts.append(ContactPoint(basics.phone, ContactKind.PHONE))
    links = []
    if _present(basics.url):
        links.append(Link(basics.url, WEBSITE_LABEL))
    for profile in basics.profiles or ():
        if _present(profile.url):
            links.append(Link(profile.url, _text(profile.network)))
    experience = tuple(
        Experience(
            title=_text(w.position),
            organisation=_text(w.name),
            start=_day(w.start_date),
            end=_day(w.end_date),
            summary=_text(w.summary),
            highlights=tuple(w.highlights or ()),
        )
        for w in resume.work or ()
    )
    education = tuple(
        Education(
            institution=_text(e.institution),
            area=_text(e.area),
            study_type=_text(e.study_type),
            start=_day(e.start_date),
            end=_day(e.end_date),
        )
        for e in resume.education or ()
    )
    if id is None:
        id = person_id_for_email(basics.email) if _present(basics.email) else new_id("per")
    return Person(
        id=id,
        name=basics.name,
        contacts=tuple(contacts),
        location=_location(basics.location),
        headline=_text(basics.label),
        summary=_text(basics.summary),
        skills=tuple(_skill_names(resume.skills or ())),
        experience=experience,
        education=education,
        links=tuple(links),
        sources=tuple(sources),
    )


# --------------------------------------------------------------------------------------------
# The fast path for the common document
# --------------------------------------------------------------------------------------------
#
# Bulk imports read documents parsed from JSON: plain dicts, lists and strings. For those,
# ``_fast_person`` checks the sections relcrm keeps (basics, work, education, skills) in place and
# builds the person directly, without the document classes. It accepts only what the converter
# accepts and builds exactly what ``person_from_resume`` builds from it; anything it is not sure
# of (a wrong type, a null, a bad date or email, a missing name, another container type) makes it
# give up, and the converter then reports the problems with their paths as usual.

#: Keys of the document classes relcrm keeps, and the keys whose values are strings.
_BASICS_TEXT = frozenset({"name", "label", "image", "email", "phone", "url", "summary"})
_PLACE_TEXT = frozenset({"address", "postalCode", "city", "countryCode", "region"})
_PROFILE_TEXT = frozenset({"network", "username", "url"})
_WORK_TEXT = frozenset({"name", "location", "description", "position", "url", "summary"})
_EDUCATION_TEXT = frozenset({"institution", "url", "area", "studyType", "score"})
_SKILL_TEXT = frozenset({"name", "level"})
_DATE_KEYS = ("startDate", "endDate")
_KEPT = frozenset({"basics", "work", "education", "skills"})
#: First days of the dates seen, by their text (a bounded cache: documents repeat dates a lot).
_FIRST_DAYS: dict[str, date] = {}
_FIRST_DAYS_MAX = 50_000


class _GiveUp(Exception):
    """The fast path is not sure; the converter decides."""


def _texts(item: Mapping[str, Any], keys: frozenset[str]) -> None:
    for key in keys.intersection(item):
        if type(item[key]) is not str:
            raise _GiveUp


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _GiveUp
    return value


def _objects(value: Any) -> list[dict[str, Any]]:
    if type(value) is not list:
        raise _GiveUp
    for item in value:
        if type(item) is not dict:
            raise _GiveUp
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _GiveUp
    for item in value:
        if type(item) is not str:
            raise _GiveUp
    return tuple(value)


def _first_day(item: Mapping[str, Any], key: str) -> date | None:
    text = item.get(key, _ABSENT)
    if text is _ABSENT:
        return None
    day = _FIRST_DAYS.get(text) if type(text) is str else None
    if day is None:
        if type(text) is not str:
            raise _GiveUp
        try:
            day = PartialDate.parse(text).first_day()
        except ValueError:
            raise _GiveUp from None
        if len(_FIRST_DAYS) < _FIRST_DAYS_MAX:
            _FIRST_DAYS[text] = day
    return day


_ABSENT: Any = object()


@cache
def _other_sections() -> dict[str, tuple[Any, Callable[[Any, Any], Any]]]:
    """``{key: (type, structure hook)}`` of the resume's sections relcrm validates but does not
    keep."""
    converter = _converter()
    out = {}
    for f in attrs.fields(Resume):
        key = f.metadata.get(_KEY, f.name)
        if key not in _KEPT:
            inner = _without_none(f.type)
            out[key] = (inner, converter.get_structure_hook(inner))
    return out


#: A checked document: basics, email, work entries and education entries with their first days,
#: skill names, and the profiles.
_Checked = tuple[
    dict[str, Any],
    str | None,
    list[tuple[dict[str, Any], date | None, date | None, tuple[str, ...]]],
    list[tuple[dict[str, Any], date | None, date | None]],
    list[str],
    list[dict[str, Any]],
]


def _fast_check(document: dict[str, Any]) -> _Checked | None:
    """The parts of ``document`` a person is made of, checked as the converter checks them, or
    ``None`` if the fast path is not sure the converter would accept the document (see the
    comment above)."""
    try:
        others = _other_sections()
        for key in others.keys() & document.keys():
            value = document[key]
            if value is None:
                return None
            inner, hook = others[key]
            hook(value, inner)
        basics = _object(document.get("basics", _ABSENT))
        _texts(basics, _BASICS_TEXT)
        name = basics.get("name")
        if name is None or not name.strip():
            return None
        email = basics.get("email")
        if email is not None and _EMAIL.fullmatch(email) is None:
            return None
        profiles = _objects(basics["profiles"]) if "profiles" in basics else []
        for profile in profiles:
            _texts(profile, _PROFILE_TEXT)
        if "location" in basics:
            _texts(_object(basics["location"]), _PLACE_TEXT)
        works = []
        for work in _objects(document["work"]) if "work" in document else ():
            _texts(work, _WORK_TEXT)
            highlights = _strings(work["highlights"]) if "highlights" in work else ()
            works.append(
                (work, _first_day(work, "startDate"), _first_day(work, "endDate"), highlights)
            )
        schools = []
        for school in _objects(document["education"]) if "education" in document else ():
            _texts(school, _EDUCATION_TEXT)
            if "courses" in school:
                _strings(school["courses"])
            schools.append((school, _first_day(school, "startDate"), _first_day(school, "endDate")))
        skills: list[str] = []
        for skill in _objects(document["skills"]) if "skills" in document else ():
            _texts(skill, _SKILL_TEXT)
            if skill.get("name"):
                skills.append(skill["name"])
            if "keywords" in skill:
                skills.extend(_strings(skill["keywords"]))
    except Exception:
        return None
    return basics, email, works, schools, skills, profiles


def _reach(
    basics: dict[str, Any], email: str | None, profiles: list[dict[str, Any]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], tuple[str, str, str] | None]:
    """The contact points (value, kind), links (url, label) and place (city, region, country
    code; ``None`` when all are blank) that a checked document's basics give a person."""
    get = basics.get
    contacts = []
    if email is not None and email.strip():
        contacts.append((email, "email"))
    phone = get("phone")
    if phone is not None and phone.strip():
        contacts.append((phone, "phone"))
    links = []
    url = get("url")
    if url is not None and url.strip():
        links.append((url, WEBSITE_LABEL))
    for profile in profiles:
        url = profile.get("url")
        if url is not None and url.strip():
            links.append((url, profile.get("network") or ""))
    place = None
    found = get("location")
    if found is not None:
        city = found.get("city", "")
        region = found.get("region", "")
        country_code = found.get("countryCode", "")
        if city or region or country_code:
            place = (city, region, country_code)
    return contacts, links, place


def _fast_person(document: dict[str, Any], id: str | None, sources: Iterable[str]) -> Person | None:
    """What :func:`person_from_resume` gives for ``document``, or ``None`` if the fast path is
    not sure the converter would accept it (see the comment above)."""
    checked = _fast_check(document)
    if checked is None:
        return None
    basics, email, works, schools, skills, profiles = checked
    get = basics.get
    try:
        contact_parts, link_parts, place = _reach(basics, email, profiles)
        contacts = [ContactPoint(value, ContactKind(kind)) for value, kind in contact_parts]
        links = [Link(url, label) for url, label in link_parts]
        location = None
        if place is not None:
            city, region, country_code = place
            location = Location(city=city, region=region, country_code=country_code)
        if id is None and email is not None and email.strip():
            id = person_id_for_email(email)
        return Person(
            id=id if id is not None else new_id("per"),
            name=basics["name"],
            contacts=tuple(contacts),
            location=location,
            headline=get("label", ""),
            summary=get("summary", ""),
            skills=tuple(skills),
            experience=tuple(
                Experience(
                    title=work.get("position", ""),
                    organisation=work.get("name", ""),
                    start=start,
                    end=end,
                    summary=work.get("summary", ""),
                    highlights=highlights,
                )
                for work, start, end, highlights in works
            ),
            education=tuple(
                Education(
                    institution=school.get("institution", ""),
                    area=school.get("area", ""),
                    study_type=school.get("studyType", ""),
                    start=start,
                    end=end,
                )
                for school, start, end in schools
            ),
            links=tuple(links),
            sources=tuple(sources),
        )
    except Exception:
        return None


#: A person as a bulk import writes it: id, name, email and the stored record.
_PersonRecord = tuple[str, str, str | None, dict[str, Any]]


def _fast_record(
    document: dict[str, Any], id: str | None, sources: Iterable[str]
) -> _PersonRecord | None:
    """What :func:`person_from_resume` gives for ``document``, as the store keeps it: the id, the
    name, the email and :func:`relcrm.serialization.unstructure` of the person, made from the
    document directly (for bulk imports, which would only make the person to take it apart
    again); ``None`` when :func:`_fast_person` would give ``None``. The record is made to be
    encoded at once: parts of it are shared between records."""
    preferences = _stored_preferences()
    if preferences is None:
        return None
    return _make_record(document, id, sources, preferences)


def _make_record(
    document: dict[str, Any], id: str | None, sources: Iterable[str], preferences: dict[str, Any]
) -> _PersonRecord | None:
    checked = _fast_check(document)
    if checked is None:
        return None
    basics, email, works, schools, skills, profiles = checked
    get = basics.get
    contact_parts, link_parts, place = _reach(basics, email, profiles)
    if email is not None and email.strip():
        if id is None:
            id = person_id_for_email(email)
    else:
        email = None
    contacts = [{"value": value, "kind": kind} for value, kind in contact_parts]
    links = [{"url": url, "label": label} for url, label in link_parts]
    location = None
    if place is not None:
        city, region, country_code = place
        location = {"city": city, "region": region, "country_code": country_code}
    if id is None:
        id = new_id("per")
    name = basics["name"]
    record = {
        "id": id,
        "name": name,
        "contacts": contacts,
        "location": location,
        "headline": get("label", ""),
        "summary": get("summary", ""),
        "skills": _normalised_skills(skills),
        "experience": [
            {
                "title": work.get("position", ""),
                "organisation": work.get("name", ""),
                "start": _iso(start),
                "end": _iso(end),
                "summary": work.get("summary", ""),
                "highlights": list(highlights),
            }
            for work, start, end, highlights in works
        ],
        "education": [
            {
                "institution": school.get("institution", ""),
                "area": school.get("area", ""),
                "study_type": school.get("studyType", ""),
                "start": _iso(start),
                "end": _iso(end),
            }
            for school, start, end in schools
        ],
        "links": links,
        "preferences": preferences,
        "sources": list(dict.fromkeys(sources)),
        "tags": [],
        "owner_id": None,
        "created_at": None,
    }
    return id, name, email, record


def _normalised_skills(skills: list[str]) -> list[str]:
    """What :class:`Person` makes of ``skills`` (normalised, blanks and repeats left out), with
    the normalised form of each skill text remembered (bulk imports see the same ones again and
    again)."""
    seen = _SKILL_FORMS
    out: dict[str, None] = {}
    for skill in skills:
        form = seen.get(skill)
        if form is None:
            form = normalise_skill(skill)
            if len(seen) < _SKILL_FORMS_MAX:
                seen[skill] = form
        if form:
            out[form] = None
    return list(out)


#: Normalised skills by their text (a bounded cache).
_SKILL_FORMS: dict[str, str] = {}
_SKILL_FORMS_MAX = 50_000


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


#: Documents :func:`_stored_preferences` tries :func:`_fast_record` on: every kept field, and
#: the least a person needs.
_RECORD_SAMPLES: tuple[dict[str, Any], ...] = (
    {
        "basics": {
            "name": "Ann Example",
            "label": "Nurse",
            "email": "ann@example.org",
            "phone": "+44 1",
            "url": "https://ann.example.org",
            "summary": "Cares.",
            "location": {"city": "Leeds", "region": "Yorkshire", "countryCode": "GB"},
            "profiles": [{"network": "Mastodon", "url": "https://m.example/@ann"}, {"url": "x"}],
        },
        "work": [
            {"name": "NHS", "position": "Nurse", "startDate": "2019-04", "highlights": ["a"]},
            {"name": "Old", "summary": "s", "startDate": "2010", "endDate": "2019-03-31"},
        ],
        "education": [{"institution": "Leeds", "area": "Nursing", "studyType": "BSc"}],
        "skills": [{"name": " Triage ", "keywords": ["IV  lines", "triage"]}],
    },
    {"basics": {"name": "Bo", "location": {}}},
)


@cache
def _stored_preferences() -> dict[str, Any] | None:
    """The stored form of the default preferences, or ``None`` (which turns :func:`_fast_record`
    off) if :func:`_fast_record` does not encode exactly as ``unstructure`` of the person made by
    :func:`_fast_person` does on the samples (checked once)."""
    preferences: dict[str, Any] = unstructure(Preferences())
    sources = ("a", "b", "a")
    for document in _RECORD_SAMPLES:
        person = _fast_person(document, None, sources)
        if person is None:
            return None
        made = _make_record(document, person.id, sources, preferences)
        if made is None or made[:3] != (person.id, person.name, person.email):
            return None
        if encode_json(made[3]) != encode_json(unstructure(person)):
            return None
    return preferences


def _check_person_document(document: Any) -> None:
    """Check ``document`` as :func:`person_from_resume` does, without making the person when it
    can: raises the same :class:`relcrm.ValidationError` for a document it would refuse (for the
    validation pass of a bulk import)."""
    if type(document) is dict and _fast_check(document) is not None:
        return
    person_from_resume(document)


def _opt(value: str) -> str | None:
    return value or None


def _opt_list(values: Iterable[T]) -> tuple[T, ...] | None:
    return tuple(values) or None


def _partial(value: date | None) -> PartialDate | None:
    return PartialDate.from_date(value) if value is not None else None


def _place(loc: Location | None) -> Place | None:
    if loc is None or loc == Location():
        return None
    return Place(city=_opt(loc.city), region=_opt(loc.region), country_code=_opt(loc.country_code))


def resume_from_person(person: Person) -> dict[str, Any]:
    """The JSON Resume document of a person (a dict ready for :func:`json.dumps`).

    The first email and phone contact points become ``basics.email`` and ``basics.phone``; the
    first link, if labelled ``"website"``, becomes ``basics.url`` and the other links ``profiles``
    (label -> ``network``); dates are written in full (``YYYY-MM-DD``). Internal fields (tags,
    sources, owner) and preferences are not part of a resume and are left out.
    """
    email = next((c.value for c in person.contacts if c.kind is ContactKind.EMAIL), None)
    phone = next((c.value for c in person.contacts if c.kind is ContactKind.PHONE), None)
    first = person.links[0] if person.links else None
    website = first if first is not None and first.label == WEBSITE_LABEL else None
    profiles = [
        Profile(network=_opt(lk.label), url=lk.url) for lk in person.links if lk is not website
    ]
    basics = Basics(
        name=person.name,
        label=_opt(person.headline),
        email=email,
        phone=phone,
        url=website.url if website is not None else None,
        summary=_opt(person.summary),
        location=_place(person.location),
        profiles=_opt_list(profiles),
    )
    work = [
        Work(
            name=_opt(x.organisation),
            position=_opt(x.title),
            start_date=_partial(x.start),
            end_date=_partial(x.end),
            summary=_opt(x.summary),
            highlights=_opt_list(x.highlights),
        )
        for x in person.experience
    ]
    education = [
        ResumeEducation(
            institution=_opt(e.institution),
            area=_opt(e.area),
            study_type=_opt(e.study_type),
            start_date=_partial(e.start),
            end_date=_partial(e.end),
        )
        for e in person.education
    ]
    resume = Resume(
        basics=basics,
        work=_opt_list(work),
        education=_opt_list(education),
        skills=_opt_list(Skill(name=s) for s in person.skills),
    )
    return unstructure_document(resume)


# --------------------------------------------------------------------------------------------
# Openings
# --------------------------------------------------------------------------------------------

#: ``meta.canonical`` of an opening that has no URL of its own: this prefix and its id.
CANONICAL_PREFIX = "urn:relcrm:opening:"

_REMOTE_IN = {
    JobRemote.FULL: RemotePolicy.REMOTE,
    JobRemote.HYBRID: RemotePolicy.HYBRID,
    JobRemote.NONE: RemotePolicy.ONSITE,
}
_REMOTE_OUT = {v: k for k, v in _REMOTE_IN.items()}

#: ``experience`` values read as a seniority (after case-folding); the first of each is written.
_SENIORITY_WORDS: dict[Seniority, tuple[str, ...]] = {
    Seniority.INTERN: ("Intern", "internship", "trainee"),
    Seniority.JUNIOR: ("Junior", "entry-level", "entry level", "entry", "graduate"),
    Seniority.MID: ("Mid-level", "mid level", "mid", "intermediate", "experienced"),
    Seniority.SENIOR: ("Senior", "senior-level", "senior level", "sr", "sr."),
    Seniority.LEAD: ("Lead", "principal", "staff"),
    Seniority.EXECUTIVE: ("Executive", "director", "c-level", "vp"),
}
_SENIORITY_IN = {w.casefold(): s for s, words in _SENIORITY_WORDS.items() for w in words}
_NICE_TO_HAVE_LEVELS = frozenset({"nice to have", "nice-to-have", "optional", "preferred", "bonus"})
#: ``level`` written for a nice-to-have skill.
NICE_TO_HAVE_LEVEL = "Nice to have"
_WHITESPACE = re.compile(r"\s")


def opening_id_for_canonical(canonical: str) -> str:
    """The opening id an import derives from ``meta.canonical``: the URL itself (so it can be
    written back), or the id inside a ``urn:relcrm:opening:<id>`` written by
    :func:`job_from_opening`."""
    if not canonical or _WHITESPACE.search(canonical):
        raise ValueError(f"expected a URI without spaces, got {canonical[:60]!r}")
    return canonical.removeprefix(CANONICAL_PREFIX) or canonical


def _seniority(experience: str | None) -> Seniority | None:
    if experience is None:
        return None
    return _SENIORITY_IN.get(" ".join(experience.split()).casefold())


def opening_from_job(document: Mapping[str, Any] | Job, *, id: str | None = None) -> Opening:
    """An :class:`~relcrm.Opening` from a JSON Resume job document (a parsed dict or a
    :class:`Job`).

    The id is ``id`` if given, else :func:`opening_id_for_canonical` of ``meta.canonical``, else
    a new one. A job without a title raises :class:`relcrm.ValidationError`.
    """
    job = document if isinstance(document, Job) else structure_job(document)
    problems = []
    if job.title is None or not job.title.strip():
        problems.append("an opening needs a title @ $.title")
    canonical = job.meta.canonical if job.meta is not None else None
    if id is None and canonical is not None:
        try:
            id = opening_id_for_canonical(canonical)
        except ValueError as exc:
            problems.append(f"{exc} @ $.meta.canonical")
    if problems:
        raise ValidationError("Opening", problems)
    assert job.title is not None
    required: list[str] = []
    nice: list[str] = []
    for skill in job.skills or ():
        level = " ".join((skill.level or "").split()).casefold()
        (nice if level in _NICE_TO_HAVE_LEVELS else required).extend(_skill_names([skill]))
    return Opening(
        id=id or new_id("opn"),
        title=job.title,
        description=_text(job.description),
        required_skills=tuple(required),
        nice_to_have_skills=tuple(nice),
        responsibilities=tuple(job.responsibilities or ()),
        qualifications=tuple(job.qualifications or ()),
        seniority=_seniority(job.experience),
        location=_location(job.location),
        remote=_REMOTE_IN[job.remote] if job.remote is not None else RemotePolicy.ONSITE,
    )


def job_from_opening(opening: Opening) -> dict[str, Any]:
    """The JSON Resume job document of an opening (a dict ready for :func:`json.dumps`).

    ``meta.canonical`` is the opening's id when the id is a URI (it came from one), else
    ``urn:relcrm:opening:<id>``; nice-to-have skills carry ``level: "Nice to have"``. Status,
    owner, hiring team and pipeline are internal and left out.
    """
    canonical = opening.id if ":" in opening.id else CANONICAL_PREFIX + opening.id
    skills = [Skill(name=s) for s in opening.required_skills]
    skills += [Skill(name=s, level=NICE_TO_HAVE_LEVEL) for s in opening.nice_to_have_skills]
    job = Job(
        title=opening.title,
        description=_opt(opening.description),
        location=_place(opening.location),
        remote=_REMOTE_OUT[opening.remote],
        experience=(
            _SENIORITY_WORDS[opening.seniority][0] if opening.seniority is not None else None
        ),
        responsibilities=_opt_list(opening.responsibilities),
        qualifications=_opt_list(opening.qualifications),
        skills=_opt_list(skills),
        meta=Meta(canonical=canonical),
    )
    return unstructure_document(job)
