"""Properties of the JSON boundary.

* every public attrs type survives ``unstructure -> json -> structure`` unchanged;
* malformed documents (at least 1,000 per top-level type) are refused with
  :class:`relcrm.ValidationError`, never another exception, and the error names the path;
* every field of every top-level type, nested ones included, refuses wrong-typed values;
* a CRM fed malformed input writes nothing: no record, no event, no outbox row.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, Phase, event, find, given, note, settings
from hypothesis import strategies as st

import relcrm
from relcrm import (
    Actor,
    ActorRole,
    Candidacy,
    ConsentRecord,
    EmploymentEpisode,
    Event,
    Location,
    Note,
    Opening,
    Person,
    Referral,
    Relationship,
    SelfIdentification,
    TalentPool,
    Touchpoint,
    ValidationError,
)
from relcrm.crm import KINDS
from relcrm.serialization import make_stored_converter, structure_stored

from .strategies import (
    BAD_DATES,
    FIELDS,
    MUTATIONS,
    ROOT_MUTATIONS,
    STRATEGIES,
    FieldSite,
    Malformed,
    blank_is_invalid,
    documents_reaching,
    field_sites,
    malformed_documents,
    malformed_profile_changes,
    structure_type,
    texts,
    wrong_values,
)

#: Every attrs class the package exports.
PUBLIC_ATTRS_TYPES = [
    obj
    for name in relcrm.__all__
    if isinstance(obj := getattr(relcrm, name), type) and attrs.has(obj)
]

#: Public attrs types deliberately not round-tripped through JSON, with the reason. Empty: the
#: pipeline definitions (``Pipeline``, ``Stage``, ``Transition``), the catalogue entry
#: (``EventType``), the read models (``CandidateView``...), ``DispatchReport`` and ``Versioned``
#: (as ``Versioned[Person]`` etc.) all structure back, so all are tested.
EXCLUDED: dict[type, str] = {}

#: The documents that enter relcrm from outside, one per stored aggregate kind plus events.
TOP_LEVEL = (
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
    Event,
)

MALFORMED_PER_TYPE = 1_000
RITA = Actor(ActorRole.RECRUITER, "rita")


def _name(cls: type) -> str:
    return cls.__name__


# --------------------------------------------------------------------------------------------
# The strategies themselves
# --------------------------------------------------------------------------------------------


def test_every_public_attrs_type_has_a_strategy_or_a_reason() -> None:
    missing = [
        cls.__name__ for cls in PUBLIC_ATTRS_TYPES if cls not in STRATEGIES and cls not in EXCLUDED
    ]
    assert not missing, f"add strategies to tests/properties/strategies.py for {missing}"
    assert set(TOP_LEVEL) <= set(STRATEGIES)
    assert set(KINDS) <= set(TOP_LEVEL), "a new aggregate kind needs malformed-input tests"


@pytest.mark.parametrize("cls", sorted(FIELDS, key=_name), ids=_name)
def test_strategy_sets_every_field(cls: type) -> None:
    assert FIELDS[cls] == {a.name for a in attrs.fields(cls)}


def _nested_types(cls: type, seen: set[type]) -> set[type]:
    if cls in seen:
        return seen
    seen.add(cls)
    for a in attrs.fields(attrs.resolve_types(cls)):
        for arg in (a.type, *getattr(a.type, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if attrs.has(inner):
                    _nested_types(inner, seen)
    return seen


def test_malformed_input_strategies_know_every_validator() -> None:
    """A validator the invalid-value strategies do not know about must be taught to them."""
    known = {"non_empty", "aware", "_dotted", "_json_data"}
    types_: set[type] = set()
    for cls in TOP_LEVEL:
        _nested_types(cls, types_)
    for cls in types_:
        for a in attrs.fields(cls):
            if a.validator is not None:
                assert getattr(a.validator, "__name__", None) in known, (cls, a.name)
    assert blank_is_invalid(attrs.fields(Person).name)
    assert not blank_is_invalid(attrs.fields(Person).headline)


# --------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------


STORED = make_stored_converter()


def test_stored_data_that_does_not_fit_gets_the_strict_error() -> None:
    doc = relcrm.unstructure(relcrm.Person(id="p1", name="Ada"))
    assert structure_stored(doc, relcrm.Person) == relcrm.Person(id="p1", name="Ada")
    with pytest.raises(ValidationError, match=r"@ \$\.name"):
        structure_stored({**doc, "name": ""}, relcrm.Person)
    with pytest.raises(ValidationError, match="unknown field"):
        structure_stored({**doc, "nickname": "A"}, relcrm.Person)


@pytest.mark.parametrize("cls", PUBLIC_ATTRS_TYPES, ids=_name)
def test_json_round_trip(cls: type) -> None:
    if cls in EXCLUDED:
        pytest.skip(EXCLUDED[cls])
    assert cls in STRATEGIES, f"no strategy for {cls.__name__} in tests/properties/strategies.py"

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(STRATEGIES[cls])
    def round_trip(value: Any) -> None:
        doc = json.loads(json.dumps(relcrm.unstructure(value)))
        back = relcrm.structure(doc, structure_type(value))
        assert back == value
        assert type(back) is type(value)
        # the faster converter for records read back from a store builds the same object
        # (by itself: not by falling back to the strict one)
        stored = STORED.structure(doc, structure_type(value))
        assert stored == value
        assert type(stored) is type(value)

    round_trip()


# --------------------------------------------------------------------------------------------
# Malformed documents
# --------------------------------------------------------------------------------------------


def assert_refused(error: ValidationError, bad: Malformed) -> None:
    assert error.errors, "a ValidationError must list its problems"
    assert " @ $" in str(error)
    for problem in error.errors:
        assert " @ $" in problem, f"no path in {problem!r}"
    assert any(bad.explains(p) for p in error.errors), (
        f"{bad.kind}: expected a problem at {bad.exact or bad.under}, got {error.errors}"
    )


def _fingerprint(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True)


@pytest.mark.parametrize("cls", TOP_LEVEL, ids=_name)
def test_malformed_documents_are_refused_with_paths(cls: type) -> None:
    seen: set[str] = set()
    kinds: Counter[str] = Counter()  # checked documents by kind of damage

    @settings(
        max_examples=MALFORMED_PER_TYPE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(bad=malformed_documents(cls))
    def refused(bad: Malformed) -> None:
        event(bad.kind)
        note(f"expected a problem at {bad.exact or bad.under}")
        with pytest.raises(ValidationError) as info:
            relcrm.structure(bad.doc, cls)
        assert info.value.type_name == cls.__name__
        assert_refused(info.value, bad)
        seen.add(_fingerprint(bad.doc))
        kinds[bad.kind] += 1

    refused()
    # Prove that the documents were really generated and checked, and that every kind of damage
    # was among them. Hypothesis favours simple values, so different examples sometimes build
    # the same document (say, the bare string ""): about 10-20 % are repeats.
    checked = sum(kinds.values())
    assert checked >= MALFORMED_PER_TYPE, f"only {checked} documents checked"
    assert len(seen) >= 0.75 * MALFORMED_PER_TYPE, f"only {len(seen)} distinct documents"
    assert set(kinds) == set(MUTATIONS + ROOT_MUTATIONS), kinds
    assert min(kinds.values()) >= 10, kinds


SITES = [site for cls in TOP_LEVEL for site in field_sites(cls)]


@pytest.mark.parametrize("site", SITES, ids=lambda site: f"{site.root.__name__}{site.path[1:]}")
def test_every_field_refuses_wrong_types(site: FieldSite) -> None:
    """Each field of each top-level type, nested ones included, refuses values of the wrong
    JSON type (a near miss first: ``0`` for a boolean, ``true`` for an integer, a naive
    date-time, an enum value in capitals...)."""

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=documents_reaching(site), bad=wrong_values(site.type))
    def refused(doc: dict[str, Any], bad: Any) -> None:
        parent = doc
        for part in site.parts[:-1]:
            parent = parent[part]
        parent[site.parts[-1]] = bad
        with pytest.raises(ValidationError) as info:
            relcrm.structure(doc, site.root)
        assert_refused(info.value, Malformed(doc, "wrong_type", under=(site.path,)))

    refused()


def _is_naive_datetime(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is None
    except ValueError:
        return False


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list | dict) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    return depth


@pytest.mark.parametrize(
    ("strategy", "condition"),
    [
        pytest.param(wrong_values(datetime), _is_naive_datetime, id="naive datetime"),
        pytest.param(wrong_values(date | None), BAD_DATES.__contains__, id="invalid date"),
        pytest.param(
            wrong_values(relcrm.RelationshipStage),
            lambda v: isinstance(v, str) and v.upper() == v and v.strip(),
            id="bad enum value",
        ),
        pytest.param(wrong_values(int), lambda v: isinstance(v, bool), id="boolean for int"),
        pytest.param(wrong_values(str), lambda v: isinstance(v, int | float), id="number for str"),
        pytest.param(wrong_values(tuple[str, ...]), _is_str, id="string for list"),
        pytest.param(wrong_values(Location), _is_list, id="list for object"),
        pytest.param(wrong_values(str | None), _is_dict, id="object for scalar"),
        pytest.param(wrong_values(str), lambda v: _depth(v) >= 70, id="deep nesting"),
        pytest.param(
            malformed_documents(Person),
            lambda bad: bad.kind == "drop" and bad.exact[0].startswith("$.contacts["),
            id="dropped nested key",
        ),
        pytest.param(
            malformed_documents(Event),
            lambda bad: isinstance(bad.doc, dict) and _depth(bad.doc.get("data")) > 64,
            id="event data too deep",
        ),
    ],
)
def test_malformed_documents_include_the_promised_damage(
    strategy: st.SearchStrategy[Any], condition: Callable[[Any], bool]
) -> None:
    """The generators make each kind of damage the module docstring promises (the kinds of
    mutation themselves are counted in the malformed-document test)."""
    find(
        strategy,
        condition,
        settings=settings(max_examples=5_000, database=None, phases=[Phase.generate]),
    )


@pytest.mark.parametrize("cls", TOP_LEVEL, ids=_name)
def test_dropping_a_field_with_a_default_is_not_malformed(cls: type) -> None:
    """The counterpart that keeps the generator honest: leaving out defaulted fields is fine."""

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(value=STRATEGIES[cls])
    def still_valid(value: Any) -> None:
        doc = relcrm.unstructure(value)
        for a in attrs.fields(cls):
            if a.default is not attrs.NOTHING:
                del doc[a.name]
        relcrm.structure(doc, cls)

    still_valid()


def test_event_type_with_trailing_newline_is_refused() -> None:
    doc = {
        "id": "evt_1",
        "type": "person.created\n",
        "occurred_at": "2024-05-01T09:30:00+00:00",
        "actor": {"role": "recruiter", "id": "rita"},
        "visibility": "internal",
    }
    try:
        relcrm.structure(doc, Event)
    except ValidationError:
        return
    raise AssertionError("an event type with a trailing newline was accepted")


def test_datetime_with_nul_and_trailing_text_is_refused() -> None:
    # CPython 3.11's datetime.fromisoformat stops reading at a NUL after the offset.
    doc = {
        "id": "evt_1",
        "type": "person.created",
        "occurred_at": "2024-05-01T09:30:00Z\x00 and then some",
        "actor": {"role": "recruiter", "id": "rita"},
        "visibility": "internal",
    }
    with pytest.raises(ValidationError, match=r"@ \$\.occurred_at"):
        relcrm.structure(doc, Event)


# --------------------------------------------------------------------------------------------
# A CRM fed malformed input writes nothing
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def crm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[relcrm.CRM]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/t.db"
    with relcrm.open(url, notifiers=["memory"], load_entrypoints=False) as opened:
        yield opened


def _snapshot(crm: relcrm.CRM) -> dict[str, Any]:
    """Everything the store holds: records of every kind, the event log and the outbox."""
    return {
        "records": {kind: list(crm.store.iter_records(kind)) for kind in sorted(KINDS.values())},
        "events": crm.store.events(),
        "outbox": crm.store.outbox(status=None),
        "people": crm.people(),
        "openings": crm.openings(),
    }


_CRM_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: The CRM makes up an id when the document has none, so a missing id is not malformed there.
_GENERATED = frozenset({"id"})


def test_add_person_with_malformed_input_writes_nothing(crm: relcrm.CRM) -> None:
    empty = _snapshot(crm)
    assert not empty["events"]
    assert not empty["people"]
    checked = 0

    @_CRM_SETTINGS
    @given(bad=malformed_documents(Person, _GENERATED))
    def refused(bad: Malformed) -> None:
        nonlocal checked
        event(bad.kind)
        with pytest.raises(ValidationError) as info:
            crm.add_person(bad.doc, actor=RITA)
        assert_refused(info.value, bad)
        assert _snapshot(crm) == empty
        checked += 1

    refused()
    assert checked >= 100
    # The same CRM still works: the failures left it usable.
    crm.add_person({"name": "Ada"}, actor=RITA)
    assert [p.name for p in crm.people()] == ["Ada"]


@st.composite
def _unknown_pipeline(draw: st.DrawFn, known: frozenset[str]) -> Malformed:
    """A well-formed opening whose pipeline the CRM does not have."""
    doc = relcrm.unstructure(draw(STRATEGIES[Opening]))
    doc["pipeline"] = draw(texts.filter(lambda name: name not in known))
    return Malformed(doc, "unknown_pipeline", exact=("$.pipeline",))


def test_add_opening_with_malformed_input_writes_nothing(crm: relcrm.CRM) -> None:
    empty = _snapshot(crm)
    assert not empty["openings"]
    checked = 0

    @_CRM_SETTINGS
    @given(
        bad=st.one_of(
            malformed_documents(Opening, _GENERATED), _unknown_pipeline(frozenset(crm.pipelines))
        )
    )
    def refused(bad: Malformed) -> None:
        nonlocal checked
        event(bad.kind)
        with pytest.raises(ValidationError) as info:
            crm.add_opening(bad.doc, actor=RITA)
        assert_refused(info.value, bad)
        assert _snapshot(crm) == empty
        checked += 1

    refused()
    assert checked >= 100
    crm.add_opening({"title": "Data engineer"}, actor=RITA)
    assert [o.title for o in crm.openings()] == ["Data engineer"]


def test_update_profile_with_malformed_changes_writes_nothing(crm: relcrm.CRM) -> None:
    person = crm.add_person(
        {
            "id": "per_ada",
            "name": "Ada",
            "contacts": [{"value": "ada@example.org"}],
            "skills": ["Python"],
        },
        actor=RITA,
    )
    version = crm.load(Person, person.id).version
    before = _snapshot(crm)
    assert before["events"], "adding the person is logged"
    checked = 0

    @_CRM_SETTINGS
    @given(
        bad=malformed_profile_changes(person),
        actor=st.sampled_from([RITA, Actor(ActorRole.CANDIDATE, person.id)]),
    )
    def refused(bad: Malformed, actor: Actor) -> None:
        nonlocal checked
        event(bad.kind)
        with pytest.raises(ValidationError) as info:
            crm.update_profile(person.id, bad.doc, actor=actor)
        assert_refused(info.value, bad)
        current = crm.load(Person, person.id)
        assert (current.value, current.version) == (person, version)
        assert _snapshot(crm) == before
        checked += 1

    refused()
    assert checked >= 100
    updated = crm.update_profile(person.id, {"headline": "Engineer"}, actor=RITA)
    assert updated.headline == "Engineer"
    assert crm.load(Person, person.id).version == version + 1
