"""People read for the index straight from their stored JSON (``StoredPerson``) give the index
that the whole ``Person`` gives; data not in the shape relcrm writes is built into a ``Person``
(or refused) the usual way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

import relcrm
from relcrm.matching import CandidateProfile, MatchEngine
from relcrm.matching._stored import StoredPerson, as_person, stored_person
from relcrm.model import Person
from relcrm.serialization import structure_stored, unstructure

from .test_batch_build import TODAY, _people, _same_profile, same_index


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
    same_index(whole, fields)


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
    assert len(whole) == 40
    same_index(whole, fields)


def test_people_who_share_a_context_get_the_context_each_would_get(tmp_path: Any) -> None:
    clock = [datetime(2025, 3, 3, 9, 0, tzinfo=UTC)]
    crm = relcrm.open(
        f"sqlite:///{tmp_path / 'pool.db'}",
        autodispatch=False,
        load_entrypoints=False,
        clock=lambda: clock[0],
    )
    rita = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")
    people = crm.add_people([p for p, _ in _people(8, 30)], actor=rita)  # one creation time
    clock[0] = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    later = [attrs.evolve(p, id=f"later-{p.id}") for p, _ in _people(9, 5)]
    people += crm.add_people(later, actor=rita)  # the same relationships, created later
    ids = [p.id for p in people]
    crm.log_touchpoint(ids[0], "email", "outbound", actor=rita)
    crm.log_touchpoint(ids[1], "email", "inbound", actor=rita)
    crm.assign_owner(ids[2], "rita", actor=rita)
    crm.schedule_follow_up(ids[3], clock[0], actor=rita)
    crm.start_employment(ids[4], "Baker", actor=rita, open_to_internal_moves=True)
    opening = crm.add_opening({"title": "Pastry Chef"}, actor=rita)
    crm.add_candidacy(ids[5], opening.id, actor=rita)
    crm.grant_consent(ids[6], "recruiting", actor=relcrm.Actor(relcrm.ActorRole.CANDIDATE, ids[6]))
    index = crm.talent_index()
    now = crm.now()
    for pid in ids:
        alone = index._profile(
            crm.get_person(pid),
            crm.relationship(pid),
            crm.candidacies(person_id=pid),
            crm.consent_ledger(pid),
            crm.employment(pid),
            now,
        )
        _same_profile(index.engine.profile(index.engine._row_of[pid]), alone)
