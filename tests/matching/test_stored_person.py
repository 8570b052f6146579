"""People read for the index straight from their stored JSON (``StoredPerson``) give the index
that the whole ``Person`` gives; data not in the shape relcrm writes is built into a ``Person``
(or refused) the usual way."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

import relcrm
from relcrm.matching import CandidateProfile, MatchEngine
from relcrm.matching._stored import StoredPerson, as_person, stored_person
from relcrm.model import Person
from relcrm.serialization import structure_stored, unstructure

from .test_batch_build import ROLES, TODAY, _people, _profiles, _ranking, _same_profile


def _stored(person: Person) -> dict[str, Any]:
    """The data a store hands back for ``person``: its JSON, parsed again."""
    data: dict[str, Any] = json.loads(json.dumps(unstructure(person)))
    return data


@pytest.mark.parametrize("seed", [4, 5])
def test_stored_people_index_like_the_people_they_were_read_from(seed: int) -> None:
    people = _people(seed, 300)
    read = [(stored_person(_stored(p)), c) for p, c in people]
    assert all(isinstance(p, StoredPerson) for p, _ in read)
    assert [as_person(p) for p, _ in read] == [p for p, _ in people]
    whole, fields = MatchEngine(), MatchEngine()
    whole.index(people, today=TODAY)
    fields.index(read, today=TODAY)
    a, b = _profiles(whole), _profiles(fields)
    assert a.keys() == b.keys()
    for pid in a:
        _same_profile(a[pid], b[pid])
    for role in ROLES:
        ra, rb = _ranking(whole, role), _ranking(fields, role)
        assert [p for p, _ in ra] == [p for p, _ in rb]
        assert all(math.isclose(x, y, rel_tol=1e-6) for (_, x), (_, y) in zip(ra, rb, strict=True))


def test_a_stored_person_given_twice_is_built_whole_and_the_later_version_wins() -> None:
    (first, _), (second, _) = _people(6, 2)
    later = Person(id=first.id, name="Later", headline="Pastry Chef", skills=("baking",))
    engine = MatchEngine()
    engine.index([(stored_person(_stored(p)), None) for p in (first, second, later)], today=TODAY)
    assert len(engine) == 2
    expected = CandidateProfile.from_person(later, today=TODAY)
    _same_profile(engine.profile(engine._row_of[first.id]), expected)


@pytest.mark.parametrize(
    "change",
    [
        {"nickname": "Al"},  # a key the model does not have
        {"experience": [{"title": "Chef", "end": "2020-01-01", "employer": "x"}]},
        {"experience": [{"end": "2020-01-01"}]},  # a position without a title
        {"experience": [{"title": "Chef", "end": "yesterday"}]},  # an end that is no date
        {"experience": {"title": "Chef"}},
        {"skills": "python"},
        {"skills": ["python", 3]},
        {"preferences": None},
        {"preferences": {"availability": "someday"}},
        {"preferences": {"roles": [["nested"]]}},
        {"location": "Berlin"},
        {"headline": 3},
        {"id": ""},
        {"created_at": "2025-01-01T00:00:00"},  # no time zone
        {"created_at": "soon"},
    ],
    ids=repr,
)
def test_data_not_in_the_shape_relcrm_writes_is_read_as_a_person_would_be(
    change: dict[str, Any],
) -> None:
    data = {**_stored(Person(id="p1", name="Ada", skills=("python",))), **change}
    try:
        expected: Person | None = structure_stored(data, Person)
    except relcrm.ValidationError:
        expected = None
    if expected is None:
        with pytest.raises(relcrm.ValidationError):
            stored_person(data)
    else:
        assert stored_person(data) == expected


def test_data_a_person_accepts_in_another_shape_is_built_into_that_person() -> None:
    person = Person(
        id="p1", name="Ada", skills=("python",), created_at=datetime(2025, 1, 1, tzinfo=UTC)
    )
    data = _stored(person)
    data["skills"] = ("python",)  # a tuple, not the list JSON gives: read the usual way
    found = stored_person(data)
    assert isinstance(found, Person)
    assert found == person
    assert stored_person(_stored(person)).created_at == person.created_at  # type: ignore[union-attr]


def test_the_index_of_a_store_reads_stored_people(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = relcrm.open(f"sqlite:///{tmp_path / 'pool.db'}", autodispatch=False)
    actor = relcrm.Actor(relcrm.ActorRole.SYSTEM, "test")
    crm.add_people([p for p, _ in _people(7, 40)], actor=actor)
    read: list[type] = []

    def spy(data: Any) -> Person | StoredPerson:
        found = stored_person(data)
        read.append(type(found))
        return found

    monkeypatch.setattr("relcrm.matching._stored.stored_person", spy)
    fields = crm.talent_index().engine
    assert read == [StoredPerson] * 40
    monkeypatch.setattr(
        "relcrm.matching._stored.stored_person", lambda data: structure_stored(data, Person)
    )
    crm._talent = None
    whole = crm.talent_index().engine
    a, b = _profiles(whole), _profiles(fields)
    assert a.keys() == b.keys()
    assert len(a) == 40
    for pid in a:
        _same_profile(a[pid], b[pid])
