"""Reusable Hypothesis strategies: valid relcrm values, and JSON documents that must be rejected.

``STRATEGIES`` maps every serialisable public attrs type to a strategy of valid instances, built
with :func:`hypothesis.strategies.builds` and one explicit strategy per field (``FIELDS`` records
which fields each strategy sets, so a new field without a strategy is noticed).
``PLAIN_STRATEGIES`` builds the same shapes from a small pool of strings, which is much cheaper.

:func:`malformed_documents` starts from a valid unstructured document and breaks it in exactly one
way that the converter must refuse (or replaces it with random JSON that cannot be valid), and
says at which path(s) the refusal must be reported. :func:`wrong_values` gives the JSON values a
field of a given type must refuse; :func:`field_sites` lists every field, nested ones included.
"""

import copy
import enum
import functools
import re
import types
import typing
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import strategies as st

import relcrm
from relcrm import (
    Actor,
    ActorRole,
    ArchiveReason,
    ArchiveReasonType,
    Availability,
    Candidacy,
    CandidacyView,
    CandidateView,
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentView,
    ContactKind,
    ContactPoint,
    Direction,
    DispatchReport,
    Education,
    EmploymentEpisode,
    Event,
    EventType,
    Experience,
    FollowUp,
    LawfulBasis,
    Link,
    Location,
    Milestone,
    Note,
    Opening,
    OpeningStatus,
    Person,
    Pipeline,
    Preferences,
    Referral,
    ReferralStatus,
    Relationship,
    RelationshipStage,
    RemotePolicy,
    SelfIdentification,
    Seniority,
    Stage,
    StageChange,
    TalentPool,
    TeamMember,
    Touchpoint,
    Transition,
    Versioned,
    Visibility,
)
from relcrm.events import EVENT_TYPES
from relcrm.lifecycle import GUARDS

# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

#: Characters that trip up naive JSON, SQL and path handling.
TRICKY_CHARS = tuple("\x00\"'\\\n\r\t\u2028\ufeff\u200b\u0301éßİﬃ😀${}[]@ .;-")
#: Whole strings that do the same.
TRICKY_STRINGS = ("", " @ $", "$.id", "[0]", "\r\n", "null", "'; DROP TABLE records; --")

#: Unicode text including NULs, quotes, backslashes, line separators and astral characters.
#: (Two plain alphabets in a ``one_of`` are several times faster to draw than one mixed one.)
texts = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=8),  # any code point UTF-8 can hold
    st.text(st.sampled_from(TRICKY_CHARS), max_size=6),
    st.sampled_from(TRICKY_STRINGS),
)

#: A small pool of strings, tricky ones included, for when the text is not the point.
PLAIN_TEXTS = ("", "a", "Ada Lovelace", "\x00", '"q"', " é😀 ", " @ $", "x\ny")

#: Whitespace that ``str.strip`` removes: strings made only of it count as empty.
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"
blanks = st.text(WHITESPACE, max_size=4)

offsets = st.one_of(
    st.just(UTC),
    st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))),
    st.integers(-86399, 86399).map(lambda s: timezone(timedelta(seconds=s))),
)
#: Timezone-aware datetimes over the whole range, with fixed offsets (to the second).
aware_datetimes = st.datetimes(timezones=offsets)
dates = st.dates()

_json_non_strings = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
json_scalars = _json_non_strings | texts


def json_values_of(texts: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value (what ``json.loads`` can return), with strings from ``texts``."""
    return st.recursive(
        _json_non_strings | texts,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=6,
    )


json_values = json_values_of(texts)

_DOTTED = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
dotted_names = st.one_of(
    st.sampled_from(sorted(EVENT_TYPES)),
    st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_]{0,6}){1,3}", fullmatch=True),
)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def tuples_of(strategy: st.SearchStrategy[Any], max_size: int = 2) -> st.SearchStrategy[Any]:
    return st.lists(strategy, max_size=max_size).map(tuple)


def enums(cls: type[enum.Enum]) -> st.SearchStrategy[Any]:
    return st.sampled_from(list(cls))


# --------------------------------------------------------------------------------------------
# Valid instances of every serialisable type
# --------------------------------------------------------------------------------------------

#: Types the CRM stores as aggregates (``Versioned`` wraps one of them).
AGGREGATES = (
    Person,
    Opening,
    Candidacy,
    Relationship,
    Touchpoint,
    Note,
    Referral,
    EmploymentEpisode,
    ConsentRecord,
    SelfIdentification,
    TalentPool,
)


def build_strategies(
    texts: st.SearchStrategy[str],
) -> tuple[dict[type, st.SearchStrategy[Any]], dict[type, frozenset[str]]]:
    """A strategy of valid instances per type, and the fields each one sets explicitly (all of
    them, which a test checks), with strings drawn from ``texts``."""
    strategies: dict[type, st.SearchStrategy[Any]] = {}
    fields_set: dict[type, frozenset[str]] = {}
    non_empty = texts.filter(lambda s: bool(s.strip()))
    json_values = json_values_of(texts)

    def _builds(cls: type, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        strategy = st.builds(cls, **fields)
        strategies[cls] = strategy
        fields_set[cls] = frozenset(fields)
        return strategy

    actors = _builds(Actor, role=enums(ActorRole), id=non_empty)
    contact_points = _builds(ContactPoint, value=non_empty, kind=enums(ContactKind))
    locations = _builds(Location, city=texts, region=texts, country_code=texts)
    links = _builds(Link, url=non_empty, label=texts)
    experiences = _builds(
        Experience,
        title=texts,
        organisation=texts,
        start=optional(dates),
        end=optional(dates),
        summary=texts,
        highlights=tuples_of(texts),
    )
    educations = _builds(
        Education,
        institution=texts,
        area=texts,
        study_type=texts,
        start=optional(dates),
        end=optional(dates),
    )
    preferences = _builds(
        Preferences,
        roles=tuples_of(texts),
        locations=tuples_of(texts),
        remote=optional(enums(RemotePolicy)),
        availability=enums(Availability),
        check_back_on=optional(dates),
        hear_about_openings=st.booleans(),
    )
    _builds(
        Person,
        id=non_empty,
        name=non_empty,
        contacts=tuples_of(contact_points),
        location=optional(locations),
        headline=texts,
        summary=texts,
        skills=tuples_of(texts),  # normalised by the class; normalising again changes nothing
        experience=tuples_of(experiences, 2),
        education=tuples_of(educations, 2),
        links=tuples_of(links),
        preferences=preferences,
        sources=tuples_of(texts),
        tags=tuples_of(texts),
        owner_id=optional(texts),
        created_at=optional(aware_datetimes),
    )
    _builds(
        SelfIdentification,
        person_id=non_empty,
        answers=st.dictionaries(texts, texts, max_size=3),
        recorded_at=optional(aware_datetimes),
    )
    team_members = _builds(TeamMember, user_id=non_empty, role=texts)
    _builds(
        Opening,
        id=non_empty,
        title=non_empty,
        description=texts,
        required_skills=tuples_of(texts),
        nice_to_have_skills=tuples_of(texts),
        responsibilities=tuples_of(texts),
        qualifications=tuples_of(texts),
        seniority=optional(enums(Seniority)),
        location=optional(locations),
        remote=enums(RemotePolicy),
        status=enums(OpeningStatus),
        owner_id=optional(texts),
        hiring_team=tuples_of(team_members),
        pipeline=texts,
        created_at=optional(aware_datetimes),
    )
    archive_reasons = _builds(ArchiveReason, type=enums(ArchiveReasonType), note=texts)
    stage_changes = _builds(
        StageChange,
        from_stage=optional(texts),
        to_stage=texts,
        transition=texts,
        actor=actors,
        at=aware_datetimes,
    )
    _builds(
        Candidacy,
        id=non_empty,
        person_id=non_empty,
        opening_id=non_empty,
        stage=non_empty,
        pipeline=texts,
        history=tuples_of(stage_changes),
        archive_reason=optional(archive_reasons),
        source=texts,
        referrer_id=optional(texts),
        furthest_milestone=enums(Milestone),
        interest_confirmed=st.booleans(),
        created_at=optional(aware_datetimes),
    )
    follow_ups = _builds(FollowUp, due=aware_datetimes, owner_id=non_empty, note=texts)
    _builds(
        Relationship,
        person_id=non_empty,
        organisation=texts,
        stage=enums(RelationshipStage),
        owner_ids=tuples_of(texts),
        pools=tuples_of(texts),
        touchpoint_count=st.integers(),
        last_touch_at=optional(aware_datetimes),
        last_inbound_at=optional(aware_datetimes),
        next_follow_up=optional(follow_ups),
    )
    _builds(
        Touchpoint,
        id=non_empty,
        person_id=non_empty,
        channel=enums(Channel),
        direction=enums(Direction),
        actor=actors,
        occurred_at=aware_datetimes,
        summary=texts,
    )
    _builds(
        Note,
        id=non_empty,
        person_id=non_empty,
        author=actors,
        text=non_empty,
        created_at=aware_datetimes,
    )
    _builds(TalentPool, id=non_empty, name=non_empty, description=texts, owner_id=optional(texts))
    _builds(
        Referral,
        id=non_empty,
        referrer_id=non_empty,
        person_id=non_empty,
        opening_id=optional(texts),
        candidacy_id=optional(texts),
        status=enums(ReferralStatus),
        note=texts,
        created_at=optional(aware_datetimes),
    )
    _builds(
        EmploymentEpisode,
        id=non_empty,
        person_id=non_empty,
        title=non_empty,
        started_on=dates,
        ended_on=optional(dates),
        candidacy_id=optional(texts),
        open_to_internal_moves=st.booleans(),
        departure_reason=texts,
        rehire_eligible=optional(st.booleans()),
    )
    _builds(
        ConsentRecord,
        id=non_empty,
        person_id=non_empty,
        purpose=non_empty,
        action=enums(ConsentAction),
        lawful_basis=enums(LawfulBasis),
        recorded_at=aware_datetimes,
        actor=actors,
        expires_at=optional(aware_datetimes),
    )
    _builds(
        Event,
        id=texts,  # the envelope does not insist on a non-empty id
        type=dotted_names,
        occurred_at=aware_datetimes,
        actor=actors,
        visibility=enums(Visibility),
        subjects=st.dictionaries(texts, texts, max_size=3),
        data=st.dictionaries(texts, json_values, max_size=4),
        correlation_id=optional(texts),
        schema_version=st.integers(),
    )
    _builds(
        EventType,
        name=dotted_names,
        visibility=enums(Visibility),
        description=texts,
        candidate_fields=st.frozensets(texts, max_size=3),
        referrer_fields=st.frozensets(texts, max_size=3),
    )
    candidacy_views = _builds(
        CandidacyView,
        candidacy_id=texts,
        opening_id=texts,
        opening_title=texts,
        stage=texts,
        active=st.booleans(),
        actions=tuples_of(texts),
    )
    consent_views = _builds(
        ConsentView,
        purpose=texts,
        granted=st.booleans(),
        lawful_basis=enums(LawfulBasis),
        recorded_at=aware_datetimes,
        expires_at=optional(aware_datetimes),
    )
    _builds(
        CandidateView,
        person_id=texts,
        name=texts,
        availability=enums(Availability),
        check_back_on=optional(dates),
        hear_about_openings=st.booleans(),
        candidacies=tuples_of(candidacy_views),
        consents=tuples_of(consent_views),
        actions=tuples_of(texts),
    )
    _builds(DispatchReport, delivered=st.integers(), failed=st.integers(), dead=st.integers())
    stages = _builds(
        Stage, id=texts, label=texts, milestone=enums(Milestone), candidate_label=texts
    )
    _builds(
        Transition,
        name=texts,
        sources=st.frozensets(texts, max_size=3),
        target=texts,
        roles=st.frozensets(enums(ActorRole)),
        event_type=texts,
        guards=tuples_of(texts),
        requires_reason=st.booleans(),
        archive_reason=optional(enums(ArchiveReasonType)),
    )

    @st.composite
    def pipelines(draw: st.DrawFn) -> Pipeline:
        """A consistent pipeline: unique stage ids, an archived stage, transitions between known
        stages with known guards and event types (``Pipeline`` checks all of that when built)."""
        drawn = draw(st.lists(stages, min_size=1, max_size=5, unique_by=lambda s: s.id))
        archived = draw(st.integers(0, len(drawn) - 1))
        drawn[archived] = attrs.evolve(drawn[archived], milestone=Milestone.ARCHIVED)
        ids = st.sampled_from([s.id for s in drawn])
        moves = st.builds(
            Transition,
            name=texts,
            sources=st.frozensets(ids),
            target=ids,
            roles=st.frozensets(enums(ActorRole)),
            event_type=st.sampled_from(sorted(EVENT_TYPES)),
            guards=tuples_of(st.sampled_from(sorted(GUARDS))),
            requires_reason=st.booleans(),
            archive_reason=optional(enums(ArchiveReasonType)),
        )
        return Pipeline(
            name=draw(texts),
            stages=tuple(drawn),
            transitions=tuple(draw(st.lists(moves, max_size=4, unique_by=lambda t: t.name))),
            initial=draw(ids),
        )

    strategies[Pipeline] = pipelines()
    fields_set[Pipeline] = frozenset({"name", "stages", "transitions", "initial"})

    _builds(
        Versioned,
        value=st.one_of([strategies[cls] for cls in AGGREGATES]),
        version=st.integers(),
    )
    return strategies, fields_set


#: Valid instances of every serialisable type, per type, with strings from ``texts``.
STRATEGIES, FIELDS = build_strategies(texts)
#: The same shapes with strings from a small fixed pool: several times cheaper to draw, used as
#: the valid starting points of malformed documents (whose point is the damage, not the text).
PLAIN_STRATEGIES, _ = build_strategies(st.sampled_from(PLAIN_TEXTS))


def structure_type(obj: Any) -> Any:
    """The type to structure ``obj``'s document back into: its own, except that a generic
    ``Versioned`` needs its parameter (``Versioned[Person]``)."""
    if isinstance(obj, Versioned):
        return Versioned[type(obj.value)]  # type: ignore[misc]
    return type(obj)


# --------------------------------------------------------------------------------------------
# Invalid JSON values, by declared type
# --------------------------------------------------------------------------------------------

_numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
_bools = st.booleans()
_strings = texts
_lists = st.lists(json_values, max_size=3)
_objects = st.dictionaries(texts, json_values, max_size=3)
_digitless = st.text(st.characters(codec="utf-8", exclude_categories=["Nd"]), max_size=12)

#: Strings that look like dates but are not valid ISO 8601 dates.
BAD_DATES = (
    "",
    "2023-02-29",
    "2024-02-30",
    "2024-13-01",
    "2024-00-10",
    "2024-01-32",
    "2024-1-1",
    "24-01-01",
    "2024/01/01",
    "01.02.2024",
    "2024-01-01T00:00:00",
    "2024-01-01T00:00:00+00:00",
    "2024-01-01 ",
    " 2024-01-01",
    "2024-01-01\x00",
    "tomorrow",
)
#: Strings that are not timezone-aware ISO 8601 date-times.
BAD_DATETIMES = (
    "",
    "2024-01-01",  # a date: no time, no zone
    "2024-01-01T09:30",
    "2024-01-01T09:30:00.123456",
    "2024-01-01T25:00:00+00:00",
    "2024-02-30T09:30:00+00:00",
    "2024-01-01T09:30:00+24:00",
    "2024-01-01T09:30:00+99:99",
    "2024-01-01T09:30:00 UTC",
    "1704101400",
    "now",
)
naive_datetimes = st.datetimes().map(datetime.isoformat)
#: A valid date(-time) followed by a NUL and more text: still not a date(-time).
nul_suffixed_datetimes = st.builds(
    lambda d, rest: f"{d.isoformat()}\x00{rest}", aware_datetimes, texts
)
nul_suffixed_dates = st.builds(lambda d, rest: f"{d.isoformat()}\x00{rest}", dates, texts)


def _nest(kind: str, depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if kind == "list" else {"\x00deep": value}
    return value


#: Lists or objects nested 70 to 200 levels deep (deeper than event data may go).
deeply_nested = st.builds(_nest, st.sampled_from(["list", "object"]), st.integers(70, 200))

_NoneType = type(None)


def split_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``; other unions are not expected."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        rest = [a for a in args if a is not _NoneType]
        if len(rest) != 1 or len(args) != 2:
            raise NotImplementedError(f"no invalid-value strategy for the union {tp!r}")
        return rest[0], True
    return tp, False


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


@functools.cache
def wrong_values(tp: Any) -> st.SearchStrategy[Any]:
    """JSON values the converter must refuse for a field declared as ``tp``.

    Raises :class:`NotImplementedError` for a type it does not know, so that a new kind of field
    makes the malformed-input tests fail instead of being silently skipped.
    """
    inner, is_optional = split_optional(tp)
    null = st.nothing() if is_optional else st.none()
    origin = typing.get_origin(inner)
    if inner is str:
        return st.one_of(_numbers, _bools, null, _lists, _objects, deeply_nested)
    if inner is bool:
        return st.one_of(
            st.integers(0, 1),  # the near misses first
            st.sampled_from(["true", "false", "1", ""]),
            null,
            _numbers,
            _lists,
            _objects,
        )
    if inner is int:
        return st.one_of(
            _bools,  # the near misses first
            st.integers().map(float),
            st.integers().map(str),
            null,
            st.floats(allow_nan=False, allow_infinity=False),
            _strings,
            _lists,
            _objects,
        )
    if inner is datetime:
        return st.one_of(
            naive_datetimes,  # the near misses first
            st.sampled_from(BAD_DATETIMES),
            dates.map(date.isoformat),
            nul_suffixed_datetimes,
            _digitless,
            null,
            _numbers,
            _bools,
            _lists,
            _objects,
        )
    if inner is date:
        return st.one_of(
            st.sampled_from(BAD_DATES),  # the near misses first
            nul_suffixed_dates,
            _digitless,
            null,
            _numbers,
            _bools,
            _lists,
            _objects,
        )
    if _is_enum(inner):
        allowed = {m.value for m in inner}
        return st.one_of(
            # the near misses first: a member's value in capitals, or padded
            st.sampled_from(sorted(allowed)).map(str.upper).filter(lambda v: v not in allowed),
            st.sampled_from(sorted(allowed)).map(lambda v: f" {v}"),
            _strings.filter(lambda v: v not in allowed),
            null,
            _numbers,
            _bools,
            _lists,
            _objects,
        )
    if attrs.has(inner):
        return st.one_of(_lists, _strings, null, _numbers, _bools, deeply_nested)
    if origin is tuple:
        item, ellipsis = typing.get_args(inner)
        assert ellipsis is Ellipsis, inner
        return st.one_of(
            wrong_values(item).map(lambda v: [v]),  # a list with a wrong item first
            _strings,
            _objects,
            null,
            _numbers,
            _bools,
            deeply_nested,
        )
    if origin in (Mapping, dict):
        key, value = typing.get_args(inner)
        assert key is str, inner
        broken: list[st.SearchStrategy[Any]] = [_lists, _strings, null, _numbers, _bools]
        if value is not Any:  # an object with a wrong value first
            broken.insert(0, st.dictionaries(texts, wrong_values(value), min_size=1, max_size=2))
        return st.one_of(broken)
    raise NotImplementedError(f"no invalid-value strategy for {tp!r}")


def blank_is_invalid(attribute: "attrs.Attribute[Any]") -> bool:
    """Whether the field refuses empty and whitespace-only strings (``non_empty`` validator)."""
    return getattr(attribute.validator, "__name__", None) == "non_empty"


def _bad_event_type(value: str) -> bool:
    return not _DOTTED.fullmatch(value)


_bad_event_types = texts.filter(_bad_event_type)
#: Event data nested deeper than the 64 levels its validator allows.
_too_deep_data = deeply_nested.map(lambda v: {"k": v})


def invalid_values(cls: type, attribute: "attrs.Attribute[Any]") -> st.SearchStrategy[Any] | None:
    """Values of the right JSON type that the field's validator refuses, if it has one."""
    if blank_is_invalid(attribute):
        return blanks
    if cls is Event and attribute.name == "type":
        return _bad_event_types
    if cls is Event and attribute.name == "data":
        return _too_deep_data
    return None


# --------------------------------------------------------------------------------------------
# Malformed documents
# --------------------------------------------------------------------------------------------


def path_of(parts: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


@attrs.frozen
class Malformed:
    """A document that must be refused, and where the refusal must be reported.

    An error must be reported at one of the ``exact`` paths, or at or below one of ``under``.
    """

    doc: Any
    kind: str
    exact: tuple[str, ...] = ()
    under: tuple[str, ...] = ()

    def explains(self, error: str) -> bool:
        if any(error.endswith(f" @ {p}") for p in self.exact):
            return True
        path = error.rsplit(" @ ", 1)[-1]
        return any(p in ("$", path) or path.startswith((f"{p}.", f"{p}[")) for p in self.under)


@attrs.frozen
class _ObjectSite:
    parts: tuple[str | int, ...]
    cls: type


@attrs.frozen
class _ValueSite:
    parts: tuple[str | int, ...]
    cls: type  # the class that declares the field
    attribute: "attrs.Attribute[Any]"


def _sites(doc: Any, cls: type, parts: tuple[str | int, ...] = ()) -> tuple[list[Any], list[Any]]:
    """Every attrs object in ``doc`` and every field value present in them."""
    objects: list[_ObjectSite] = [_ObjectSite(parts, cls)]
    values: list[_ValueSite] = []
    for a in attrs.fields(attrs.resolve_types(cls)):
        if a.name not in doc:
            continue
        here = (*parts, a.name)
        values.append(_ValueSite(here, cls, a))
        inner, _ = split_optional(a.type)
        value = doc[a.name]
        if attrs.has(inner) and isinstance(value, dict):
            o, v = _sites(value, inner, here)
            objects += o
            values += v
        elif typing.get_origin(inner) is tuple and attrs.has(typing.get_args(inner)[0]):
            for i, item in enumerate(value):
                o, v = _sites(item, typing.get_args(inner)[0], (*here, i))
                objects += o
                values += v
    return objects, values


def _at(doc: Any, parts: tuple[str | int, ...]) -> Any:
    for p in parts:
        doc = doc[p]
    return doc


def _replace(doc: Any, parts: tuple[str | int, ...], value: Any) -> Any:
    new = copy.deepcopy(doc)
    _at(new, parts[:-1])[parts[-1]] = value
    return new


def _required(cls: type) -> set[str]:
    return {a.name for a in attrs.fields(cls) if a.default is attrs.NOTHING}


MUTATIONS = ("drop", "unknown_key", "wrong_type", "invalid_value", "deep")
#: How often each kind of damage is drawn: wrong types have the most variants, so the most weight.
_WEIGHTED_MUTATIONS = (
    *("wrong_type", "drop", "wrong_type", "unknown_key"),
    *("wrong_type", "invalid_value", "deep", "wrong_type"),
)
ROOT_MUTATIONS = ("not_an_object", "random_json")

_random_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
_not_objects = st.one_of(json_scalars, st.lists(json_values, max_size=3), deeply_nested)


@functools.cache
def _unknown_keys(cls: type) -> st.SearchStrategy[str]:
    names = frozenset(a.name for a in attrs.fields(cls))
    return texts.filter(lambda k: k not in names)


def _pick(draw: st.DrawFn, choices: list[Any]) -> Any:
    return choices[draw(st.integers(0, len(choices) - 1))]


@st.composite
def random_documents(
    draw: st.DrawFn, cls: type, generated: frozenset[str] = frozenset()
) -> Malformed:
    """Fully random JSON: a non-object, or an object that is certain to be invalid because it
    has a key ``cls`` does not know or lacks one it requires (``generated`` keys are filled
    in by the caller and so not required)."""
    doc = draw(_random_json)
    if isinstance(doc, dict):
        names = {a.name for a in attrs.fields(cls)}
        if set(doc) <= names and not (_required(cls) - generated - set(doc)):
            doc["\x00unknown"] = draw(json_values)
        return Malformed(doc, "random_json", under=("$",))
    return Malformed(doc, "random_json", exact=("$",))


def _mutate(
    draw: st.DrawFn,
    doc: dict[str, Any],
    cls: type,
    *,
    generated: frozenset[str] = frozenset(),
    within: frozenset[str] | None = None,
) -> Malformed:
    """Break ``doc`` (a valid document for ``cls``) in one way, somewhere in its tree.

    ``within`` limits mutations to the subtrees of those top-level keys (the root object itself
    is then left alone); ``generated`` names root keys the caller fills in when missing.
    """
    objects, values = _sites(doc, cls)
    if within is not None:
        objects = [o for o in objects if o.parts and o.parts[0] in within]
        values = [v for v in values if v.parts[0] in within]
    kind = draw(st.sampled_from(_WEIGHTED_MUTATIONS))
    if kind == "drop":
        choices = [
            (o, name)
            for o in objects
            for name in sorted(_required(o.cls))
            if name in _at(doc, o.parts) and not (o.parts == () and name in generated)
        ]
        if choices:
            o, name = _pick(draw, choices)
            new = copy.deepcopy(doc)
            del _at(new, o.parts)[name]
            return Malformed(new, kind, exact=(path_of((*o.parts, name)),))
        kind = "wrong_type"
    if kind == "unknown_key" and objects:
        o = _pick(draw, objects)
        key = draw(_unknown_keys(o.cls))
        new = copy.deepcopy(doc)
        _at(new, o.parts)[key] = draw(json_values)
        return Malformed(new, kind, exact=(path_of(o.parts),))
    if kind == "invalid_value":
        choices = [v for v in values if invalid_values(v.cls, v.attribute) is not None]
        if choices:
            site = _pick(draw, choices)
            bad = draw(invalid_values(site.cls, site.attribute))  # type: ignore[arg-type]
            # Validators report at the field they guard (or inside it, for event data).
            return Malformed(_replace(doc, site.parts, bad), kind, under=(path_of(site.parts),))
        kind = "wrong_type"
    if kind == "deep":
        site = _pick(draw, values)
        inner, _ = split_optional(site.attribute.type)
        if typing.get_origin(inner) in (Mapping, dict) and typing.get_args(inner)[1] is Any:
            # Any JSON goes in event data, but no deeper than 64 levels (a validator says so).
            bad = draw(_too_deep_data)
            return Malformed(_replace(doc, site.parts, bad), kind, under=(path_of(site.parts),))
        bad = draw(deeply_nested)
        return Malformed(_replace(doc, site.parts, bad), kind, under=(path_of(site.parts),))
    site = _pick(draw, values)
    bad = draw(wrong_values(site.attribute.type))
    return Malformed(_replace(doc, site.parts, bad), "wrong_type", under=(path_of(site.parts),))


@st.composite
def malformed_documents(
    draw: st.DrawFn, cls: type, generated: frozenset[str] = frozenset()
) -> Malformed:
    """A document ``relcrm.structure(doc, cls)`` must refuse.

    Mostly a valid document broken in one place (a required key dropped, an unknown key added, a
    wrong-typed or invalid value, a deeply nested value); sometimes not an object at all, or
    random JSON. ``generated`` names root keys that the caller fills in when they are missing
    (the CRM makes up ids), which are therefore never dropped.
    """
    how = draw(st.sampled_from(("mutation",) * 6 + ROOT_MUTATIONS))
    if how == "not_an_object":
        # (a deeply nested object is refused for its unknown key, also at "$")
        doc = draw(_not_objects)
        return Malformed(doc, how, exact=("$",))
    if how == "random_json":
        return draw(random_documents(cls, generated))
    doc = relcrm.unstructure(draw(PLAIN_STRATEGIES[cls]))
    return _mutate(draw, doc, cls, generated=generated)


#: Profile fields a candidate may change (``update_profile``).
PROFILE_FIELDS = frozenset(
    {
        "name",
        "contacts",
        "location",
        "headline",
        "summary",
        "skills",
        "experience",
        "education",
        "links",
        "preferences",
    }
)


@st.composite
def malformed_profile_changes(draw: st.DrawFn, current: Person) -> Malformed:
    """``changes`` for ``crm.update_profile(current.id, changes)`` that must be refused."""
    how = draw(
        st.sampled_from(["field", "field", "field", "not_editable", "availability", "not_object"])
    )
    if how == "not_object":
        doc = draw(st.one_of(json_scalars, st.lists(json_values, max_size=3)))
        return Malformed(doc, how, exact=("$",))
    if how == "availability":
        # Availability changes go through set_availability(), never through the profile.
        prefs = current.preferences
        other = draw(
            st.one_of(
                st.sampled_from([a for a in Availability if a is not prefs.availability]).map(
                    lambda a: attrs.evolve(prefs, availability=a)
                ),
                dates.filter(lambda d: d != prefs.check_back_on).map(
                    lambda d: attrs.evolve(prefs, check_back_on=d)
                ),
            )
        )
        return Malformed({"preferences": relcrm.unstructure(other)}, how, exact=("$.preferences",))
    valid = relcrm.unstructure(draw(PLAIN_STRATEGIES[Person]))
    keys = draw(st.sets(st.sampled_from(sorted(PROFILE_FIELDS)), min_size=1))
    if how == "not_editable":
        names = {a.name for a in attrs.fields(Person)}
        key = draw(
            st.one_of(
                st.sampled_from(sorted(names - PROFILE_FIELDS)),
                texts.filter(lambda k: k not in PROFILE_FIELDS and " @ " not in k),
            )
        )
        changes = {k: valid[k] for k in keys} | {key: draw(json_values)}
        return Malformed(changes, how, exact=(f"$.{key}",))
    broken = _mutate(draw, valid, Person, within=frozenset(keys))
    return attrs.evolve(broken, doc={k: broken.doc[k] for k in keys})


# --------------------------------------------------------------------------------------------
# Every field, one at a time
# --------------------------------------------------------------------------------------------


@attrs.frozen
class FieldSite:
    """A field somewhere in a top-level type: ``parts`` leads to it (``0`` for a list item)."""

    root: type
    parts: tuple[str | int, ...]
    type: Any

    @property
    def path(self) -> str:
        return path_of(self.parts)


def field_sites(root: type) -> list[FieldSite]:
    """Every field of ``root`` and of the attrs types nested in it (one item of each list)."""
    found: list[FieldSite] = []

    def walk(cls: type, parts: tuple[str | int, ...]) -> None:
        for a in attrs.fields(attrs.resolve_types(cls)):
            here = (*parts, a.name)
            found.append(FieldSite(root, here, a.type))
            inner, _ = split_optional(a.type)
            if attrs.has(inner):
                walk(inner, here)
            elif typing.get_origin(inner) is tuple and attrs.has(typing.get_args(inner)[0]):
                walk(typing.get_args(inner)[0], (*here, 0))

    walk(root, ())
    return found


@st.composite
def documents_reaching(draw: st.DrawFn, site: FieldSite) -> dict[str, Any]:
    """A valid document for ``site.root`` in which the field at ``site`` is present: nested
    objects on the way that are ``None`` and lists that are empty get a valid member."""
    doc = relcrm.unstructure(draw(PLAIN_STRATEGIES[site.root]))
    here, cls = doc, site.root
    for name, nxt in zip(site.parts, (*site.parts[1:], None), strict=True):
        if not isinstance(name, str) or nxt is None:
            continue
        inner, _ = split_optional(attrs.fields_dict(attrs.resolve_types(cls))[name].type)
        if attrs.has(inner):
            if here[name] is None:
                here[name] = relcrm.unstructure(draw(PLAIN_STRATEGIES[inner]))
            here, cls = here[name], inner
        else:  # a tuple of attrs objects, and ``nxt`` is 0
            item = typing.get_args(inner)[0]
            if not here[name]:
                here[name] = [relcrm.unstructure(draw(PLAIN_STRATEGIES[item]))]
            here, cls = here[name][0], item
    return doc
