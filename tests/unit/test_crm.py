"""The CRM facade: commands, validation at the boundary, the relationship beyond one opening,
optimistic locking and the event log."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import relcrm
from relcrm import (
    CRM,
    Actor,
    ActorRole,
    AlreadyExists,
    Availability,
    Candidacy,
    ConcurrencyConflict,
    ConsentAction,
    EmploymentEpisode,
    Event,
    InvalidTransition,
    LawfulBasis,
    NotFound,
    OpeningStatus,
    PermissionDenied,
    Person,
    ReferralStatus,
    Relationship,
    RelationshipStage,
    UnknownBackend,
    ValidationError,
)
from relcrm.serialization import structure

C, R, F, S = ActorRole.CANDIDATE, ActorRole.RECRUITER, ActorRole.REFERRER, ActorRole.SYSTEM
DOTTED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def all_events(crm: CRM) -> list[Event]:
    return [structure(rec.payload, Event) for rec in crm.store.events()]


def snapshot(crm: CRM) -> tuple[Any, ...]:
    """Everything a command could have written."""
    return (
        [
            (r.kind, r.id, r.version)
            for k in ("person", "opening", "candidacy", "relationship")
            for r in crm.store.find(k)
        ],
        [e.id for e in crm.store.events()],
        [r.id for r in crm.outbox(None)],
    )


def person(crm: CRM, rec: Actor, name: str = "Ada Lovelace", **fields: Any) -> str:
    return crm.add_person({"name": name, **fields}, actor=rec).id


def opening(crm: CRM, rec: Actor, title: str = "Data Engineer", **fields: Any) -> str:
    return crm.add_opening({"title": title, **fields}, actor=rec).id


# --------------------------------------------------------------------------------------------
# Adding people and openings
# --------------------------------------------------------------------------------------------


def test_add_person_from_a_dict(crm: CRM, recruiter: Actor, clock: Any) -> None:
    p = crm.add_person(
        {
            "name": "Ada Lovelace",
            "contacts": [{"value": "ada@example.org"}, {"value": "+44 1", "kind": "phone"}],
            "skills": [" Python", "python", "Big  Data"],
            "owner_id": "rec_owner",
            "tags": ["Silver Medalist"],
        },
        actor=recruiter,
    )
    assert re.fullmatch(r"per_[0-9A-Z]{26}", p.id)
    assert p.created_at == clock.now
    assert p.email == "ada@example.org"
    assert p.skills == ("python", "big data")
    assert p.tags == ("silver medalist",)
    assert crm.get_person(p.id) == p
    assert crm.load(Person, p.id).version == 1
    rel = crm.relationship(p.id)
    assert (rel.stage, rel.owner_ids, rel.organisation) == (
        RelationshipStage.PROSPECT,
        ("rec_owner",),
        "default",
    )
    (event,) = all_events(crm)
    assert (event.type, event.actor, event.person_id) == ("person.created", recruiter, p.id)
    # a second person gets another id
    assert person(crm, recruiter, "Grace Hopper") != p.id
    assert [x.name for x in crm.people()] == ["Ada Lovelace", "Grace Hopper"]


def test_add_person_keeps_a_given_id_and_a_person_instance(crm: CRM, recruiter: Actor) -> None:
    assert crm.add_person({"id": "per_custom", "name": "Ada"}, actor=recruiter).id == "per_custom"
    given = Person(id="per_obj", name="Grace")
    assert crm.add_person(given, actor=recruiter).id == "per_obj"
    assert crm.get_person("per_obj").name == "Grace"


def test_add_opening_from_a_dict(crm: CRM, recruiter: Actor, clock: Any) -> None:
    o = crm.add_opening(
        {
            "title": "Data Engineer",
            "required_skills": ["SQL"],
            "remote": "hybrid",
            "seniority": "senior",
        },
        actor=recruiter,
    )
    assert re.fullmatch(r"opn_[0-9A-Z]{26}", o.id)
    assert (o.status, o.pipeline, o.created_at) == (OpeningStatus.OPEN, "default", clock.now)
    assert o.required_skills == ("sql",)
    assert crm.get_opening(o.id) == o
    assert crm.openings() == [o]
    assert crm.openings(OpeningStatus.CLOSED) == []
    assert all_events(crm)[-1].type == "opening.created"
    assert all_events(crm)[-1].person_id is None


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"name": 3}, "@ $.name"),
        ({"name": "Ada", "bogus": True}, "'bogus'"),
        ({"name": "Ada", "contacts": [{"value": 5}]}, "@ $.contacts[0].value"),
        ({"name": "Ada", "contacts": [{"value": "a@b", "kind": "pigeon"}]}, "@ $.contacts[0].kind"),
        ({"name": "Ada", "created_at": "2024-01-01T00:00:00"}, "@ $.created_at"),
        ({"name": "Ada", "preferences": {"availability": "maybe"}}, "@ $.preferences.availability"),
        ({"name": "Ada", "skills": "python"}, "@ $.skills"),
        ({}, "@ $.name"),
        ("Ada", "@ $"),
        ({"name": "  "}, "must not be empty @ $.name"),
    ],
)
def test_bad_person_input_is_refused_with_a_path(
    crm: CRM, recruiter: Actor, data: Any, where: str
) -> None:
    before = snapshot(crm)
    with pytest.raises(ValidationError) as info:
        crm.add_person(data, actor=recruiter)
    assert info.value.type_name == "Person"
    assert any(where in e for e in info.value.errors), info.value.errors
    assert all(" @ $" in e for e in info.value.errors)
    assert snapshot(crm) == before
    assert crm.people() == []


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"title": "X", "status": "archived"}, "@ $.status"),
        ({"title": "X", "required_skills": [1]}, "@ $.required_skills[0]"),
        ({"title": "X", "pipeline": "nope"}, "@ $.pipeline"),
        ({}, "@ $.title"),
    ],
)
def test_bad_opening_input_is_refused_with_a_path(
    crm: CRM, recruiter: Actor, data: Any, where: str
) -> None:
    with pytest.raises(ValidationError) as info:
        crm.add_opening(data, actor=recruiter)
    assert any(where in e for e in info.value.errors), info.value.errors
    assert crm.openings() == []
    assert crm.store.events() == []


def test_duplicate_ids_are_refused_and_nothing_is_written(crm: CRM, recruiter: Actor) -> None:
    crm.add_person({"id": "per_1", "name": "Ada"}, actor=recruiter)
    crm.add_opening({"id": "opn_1", "title": "X"}, actor=recruiter)
    before = snapshot(crm)
    with pytest.raises(AlreadyExists) as info:
        crm.add_person({"id": "per_1", "name": "Imposter"}, actor=recruiter)
    assert (info.value.kind, info.value.id) == ("person", "per_1")
    with pytest.raises(AlreadyExists):
        crm.add_opening({"id": "opn_1", "title": "Y"}, actor=recruiter)
    assert snapshot(crm) == before
    assert crm.get_person("per_1").name == "Ada"
    assert crm.get_opening("opn_1").title == "X"


def test_who_may_add(crm: CRM) -> None:
    with pytest.raises(PermissionDenied):
        crm.add_person({"name": "Ada"}, actor=Actor(F, "emp_1"))
    with pytest.raises(PermissionDenied):
        crm.add_person({"id": "per_x", "name": "Ada"}, actor=Actor(C, "per_y"))
    assert crm.add_person({"id": "per_me", "name": "Me"}, actor=Actor(C, "per_me")).id == "per_me"
    with pytest.raises(PermissionDenied):
        crm.add_opening({"title": "X"}, actor=Actor(C, "per_me"))
    assert [p.id for p in crm.people()] == ["per_me"]


def test_unknown_ids_are_not_found(crm: CRM, recruiter: Actor) -> None:
    with pytest.raises(NotFound) as info:
        crm.get_person("per_missing")
    assert (info.value.kind, info.value.id) == ("person", "per_missing")
    with pytest.raises(NotFound):
        crm.add_note("per_missing", "x", actor=recruiter)
    with pytest.raises(NotFound):
        crm.timeline("per_missing")
    with pytest.raises(NotFound):
        crm.notifier("smtp")
    with pytest.raises(NotFound):
        crm.pipeline("nope")


# --------------------------------------------------------------------------------------------
# Profile and availability
# --------------------------------------------------------------------------------------------


def test_update_profile_changes_only_profile_fields(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    me = Actor(C, pid)
    new = crm.update_profile(
        pid,
        {"headline": "Data engineer", "skills": ["SQL", " Spark "], "location": {"city": "London"}},
        actor=me,
    )
    assert new.headline == "Data engineer"
    assert new.skills == ("sql", "spark")
    assert new.location is not None
    assert new.location.city == "London"
    assert crm.get_person(pid) == new
    assert crm.load(Person, pid).version == 2
    event = all_events(crm)[-1]
    assert event.type == "person.profile_updated"
    assert event.actor == me
    assert dict(event.data["changes"]) == {
        "headline": "Data engineer",
        "skills": ["sql", "spark"],
        "location": {"city": "London", "region": "", "country_code": ""},
    }
    # a recruiter may correct it too; an unchanged value writes nothing
    crm.update_profile(pid, {"summary": "Pipelines"}, actor=recruiter)
    before = snapshot(crm)
    assert crm.update_profile(pid, {"summary": "Pipelines"}, actor=recruiter).summary == "Pipelines"
    assert snapshot(crm) == before
    # preferences other than availability may change through the profile
    prefs = {"roles": ["data engineer"], "hear_about_openings": True}
    assert crm.update_profile(pid, {"preferences": prefs}, actor=me).preferences.hear_about_openings


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"tags": ["vip"]}, "$.tags"),
        ({"owner_id": "rec_me"}, "$.owner_id"),
        ({"sources": ["x"]}, "$.sources"),
        ({"id": "per_other"}, "$.id"),
        ({"created_at": "2020-01-01T00:00:00+00:00"}, "$.created_at"),
        ({"preferences": {"availability": "not_looking"}}, "$.preferences"),
        (
            {"preferences": {"availability": "not_now", "check_back_on": "2030-01-01"}},
            "$.preferences",
        ),
        ({"headline": 5}, "$.headline"),
    ],
)
def test_update_profile_refuses_internal_fields_and_availability(
    crm: CRM, recruiter: Actor, changes: dict[str, Any], where: str
) -> None:
    pid = person(crm, recruiter, owner_id="rec_owner")
    before = snapshot(crm)
    with pytest.raises(ValidationError) as info:
        crm.update_profile(pid, changes, actor=Actor(C, pid))
    assert any(where in e for e in info.value.errors), info.value.errors
    assert snapshot(crm) == before
    p = crm.get_person(pid)
    assert (p.owner_id, p.tags, p.preferences.availability) == ("rec_owner", (), Availability.OPEN)


def test_update_profile_permissions(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    other = person(crm, recruiter, "Grace")
    with pytest.raises(PermissionDenied):
        crm.update_profile(pid, {"headline": "hacked"}, actor=Actor(C, other))
    with pytest.raises(PermissionDenied):
        crm.update_profile(pid, {"headline": "hacked"}, actor=Actor(F, "emp_1"))
    assert crm.get_person(pid).headline == ""


def test_not_now_defaults_to_checking_back_in_six_months(
    crm: CRM, recruiter: Actor, clock: Any
) -> None:
    pid = person(crm, recruiter)
    me = Actor(C, pid)
    p = crm.set_availability(pid, "not_now", actor=me)
    back = p.preferences.check_back_on
    assert back is not None
    assert 180 <= (back - clock.now.date()).days <= 184
    assert back == (clock.now + timedelta(days=182)).date()
    event = all_events(crm)[-1]
    assert event.type == "relationship.availability_changed"
    assert dict(event.data) == {
        "availability": "not_now",
        "check_back_on": back.isoformat(),
        "previous": "open",
    }
    chosen = date(2025, 1, 15)
    p = crm.set_availability(pid, Availability.NOT_NOW, actor=me, check_back_on=chosen)
    assert p.preferences.check_back_on == chosen
    # other values clear the date
    p = crm.set_availability(pid, "open", actor=recruiter)
    assert (p.preferences.availability, p.preferences.check_back_on) == (Availability.OPEN, None)


@pytest.mark.parametrize("value", ["open", "not_looking", "do_not_contact"])
def test_check_back_only_goes_with_not_now(crm: CRM, recruiter: Actor, value: str) -> None:
    pid = person(crm, recruiter)
    before = snapshot(crm)
    with pytest.raises(ValidationError) as info:
        crm.set_availability(pid, value, actor=Actor(C, pid), check_back_on=date(2025, 1, 1))
    assert any("$.check_back_on" in e for e in info.value.errors)
    assert snapshot(crm) == before


def test_set_availability_refuses_bad_values_and_other_people(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    with pytest.raises(ValidationError):
        crm.set_availability(pid, "whenever", actor=recruiter)
    with pytest.raises(PermissionDenied):
        crm.set_availability(pid, "open", actor=Actor(C, "per_other"))
    with pytest.raises(PermissionDenied):
        crm.set_availability(pid, "open", actor=Actor(S, "bot"))
    assert crm.load(Person, pid).version == 1


# --------------------------------------------------------------------------------------------
# Consent
# --------------------------------------------------------------------------------------------


def test_consent_ledger_is_append_only_with_current_state_and_expiry(
    crm: CRM, recruiter: Actor, clock: Any
) -> None:
    pid = person(crm, recruiter)
    me = Actor(C, pid)
    t0 = clock.now
    assert crm.consents(pid) == {}
    assert not crm.has_consent(pid, "talent_pool")
    first = crm.grant_consent(pid, "talent_pool", actor=me, expires_at=t0 + timedelta(days=365))
    assert (first.action, first.lawful_basis, first.recorded_at) == (
        ConsentAction.GRANTED,
        LawfulBasis.CONSENT,
        t0,
    )
    assert crm.has_consent(pid, "talent_pool")
    clock.advance(days=10)
    second = crm.withdraw_consent(pid, "talent_pool", actor=me)
    assert not crm.has_consent(pid, "talent_pool")
    clock.advance(days=10)
    third = crm.grant_consent(
        pid, "talent_pool", actor=recruiter, expires_at=clock.now + timedelta(days=30)
    )
    crm.grant_consent(pid, "marketing", actor=me, lawful_basis="legitimate_interest")
    ledger = crm.consent_ledger(pid)
    assert [r.id for r in ledger][:3] == [first.id, second.id, third.id]
    assert ledger[0] == first  # earlier entries are never rewritten
    assert ledger[1] == second
    assert len(ledger) == 4
    current = crm.consents(pid)
    assert set(current) == {"talent_pool", "marketing"}
    assert current["talent_pool"] == third
    assert current["marketing"].lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
    assert crm.has_consent(pid, "talent_pool")
    # the grant lapses at its expiry, the other purpose does not
    assert crm.has_consent(pid, "talent_pool", at=clock.now + timedelta(days=29))
    assert not crm.has_consent(pid, "talent_pool", at=clock.now + timedelta(days=30))
    clock.advance(days=31)
    assert not crm.has_consent(pid, "talent_pool")
    assert crm.has_consent(pid, "marketing")
    granted = {c.purpose: c.granted for c in crm.candidate_view(pid).consents}
    assert granted == {"talent_pool": False, "marketing": True}
    assert [e.type for e in all_events(crm) if e.type.startswith("consent.")] == [
        "consent.granted",
        "consent.withdrawn",
        "consent.granted",
        "consent.granted",
    ]


def test_consent_permissions(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    crm.grant_consent(pid, "talent_pool", actor=Actor(C, pid))
    with pytest.raises(PermissionDenied):
        crm.grant_consent(pid, "talent_pool", actor=Actor(S, "bot"))
    with pytest.raises(PermissionDenied):
        crm.withdraw_consent(pid, "talent_pool", actor=Actor(C, "per_other"))
    crm.withdraw_consent(pid, "talent_pool", actor=Actor(S, "retention_job"))  # e.g. on expiry
    assert len(crm.consent_ledger(pid)) == 2
    with pytest.raises(ValidationError):
        crm.grant_consent(pid, "x", actor=recruiter, lawful_basis="because")
    assert len(crm.consent_ledger(pid)) == 2


# --------------------------------------------------------------------------------------------
# The relationship: touchpoints, warmth, follow-ups, pools, tags
# --------------------------------------------------------------------------------------------


def test_touchpoints_warm_the_relationship_and_warmth_decays(
    crm: CRM, recruiter: Actor, clock: Any
) -> None:
    pid = person(crm, recruiter)
    t0 = clock.now
    assert crm.warmth(pid) == 0.0
    tp = crm.log_touchpoint(pid, "email", "outbound", "sent the JD", actor=recruiter)
    assert (tp.occurred_at, tp.summary, tp.actor) == (t0, "sent the JD", recruiter)
    assert crm.touchpoints(pid) == [tp]
    rel = crm.relationship(pid)
    assert (rel.touchpoint_count, rel.last_touch_at, rel.last_inbound_at) == (1, t0, None)
    assert crm.warmth(pid) == pytest.approx(0.6)
    clock.advance(days=60)
    assert crm.warmth(pid) == pytest.approx(0.3)
    clock.advance(days=60)
    assert crm.warmth(pid) == pytest.approx(0.15)
    assert crm.warmth(pid, at=t0) == pytest.approx(0.6)
    # she writes back: warm again, inbound counts too
    crm.log_touchpoint(pid, "email", "inbound", "interested!", actor=recruiter)
    assert crm.warmth(pid) == pytest.approx(1.0)
    # a touchpoint logged late with its real time does not move the last touch backwards
    crm.log_touchpoint(pid, "phone", "outbound", actor=recruiter, occurred_at=t0)
    rel = crm.relationship(pid)
    assert (rel.touchpoint_count, rel.last_touch_at) == (3, clock.now)
    warm = crm.warmth(pid)
    clock.advance(days=30)
    assert 0.0 < crm.warmth(pid) < warm


def test_the_candidate_acting_warms_the_relationship(
    crm: CRM, recruiter: Actor, clock: Any
) -> None:
    pid = person(crm, recruiter)
    clock.advance(days=3)
    crm.set_availability(pid, "not_looking", actor=Actor(C, pid))
    rel = crm.relationship(pid)
    assert (rel.last_inbound_at, rel.last_touch_at) == (clock.now, clock.now)
    assert crm.warmth(pid) == pytest.approx(1.0)
    # a recruiter recording something for her is not contact from her
    clock.advance(days=1)
    crm.set_availability(pid, "open", actor=recruiter)
    assert crm.relationship(pid).last_inbound_at == clock.now - timedelta(days=1)


def test_touchpoint_refuses_bad_channels_and_candidates(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    with pytest.raises(ValidationError):
        crm.log_touchpoint(pid, "carrier_pigeon", "outbound", actor=recruiter)
    with pytest.raises(PermissionDenied):
        crm.log_touchpoint(pid, "email", "inbound", actor=Actor(C, pid))
    assert crm.touchpoints(pid) == []
    assert crm.relationship(pid).touchpoint_count == 0


def test_follow_ups_come_due(crm: CRM, recruiter: Actor, clock: Any) -> None:
    ada, grace, alan = (person(crm, recruiter, n) for n in ("Ada", "Grace", "Alan"))
    t0 = clock.now
    crm.schedule_follow_up(ada, t0 + timedelta(days=7), actor=recruiter, note="after her launch")
    crm.schedule_follow_up(grace, t0 + timedelta(days=2), actor=recruiter, owner_id="rec_bob")
    assert crm.due_follow_ups() == []
    assert crm.due_follow_ups(by=t0 + timedelta(days=1)) == []
    (due,) = crm.due_follow_ups(by=t0 + timedelta(days=2))
    assert due.person_id == grace
    assert due.next_follow_up is not None
    assert due.next_follow_up.owner_id == "rec_bob"
    clock.advance(days=7)
    assert [r.person_id for r in crm.due_follow_ups()] == [grace, ada]  # soonest first
    ada_follow = crm.relationship(ada).next_follow_up
    assert ada_follow is not None
    assert (ada_follow.owner_id, ada_follow.note) == (recruiter.id, "after her launch")
    # rescheduling replaces the earlier one
    crm.schedule_follow_up(ada, clock.now + timedelta(days=30), actor=recruiter)
    assert [r.person_id for r in crm.due_follow_ups()] == [grace]
    assert alan not in [r.person_id for r in crm.due_follow_ups(by=clock.now + timedelta(days=365))]
    with pytest.raises(ValidationError):
        crm.schedule_follow_up(ada, datetime(2030, 1, 1), actor=recruiter)  # naive


def test_pools(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    silver = crm.create_pool("Silver medalists: data", actor=recruiter, description="close calls")
    other = crm.create_pool("Alumni", actor=recruiter)
    assert {p.name for p in crm.pools()} == {"Silver medalists: data", "Alumni"}
    assert silver.owner_id == recruiter.id
    crm.add_to_pool(pid, silver.id, actor=recruiter)
    events = len(crm.store.events())
    assert crm.add_to_pool(pid, silver.id, actor=recruiter).pools == (silver.id,)  # idempotent
    assert len(crm.store.events()) == events
    crm.add_to_pool(pid, other.id, actor=recruiter)
    assert crm.relationship(pid).pools == (silver.id, other.id)
    joined = [e for e in all_events(crm) if e.type == "relationship.pool_joined"]
    assert [e.data["pool_name"] for e in joined] == ["Silver medalists: data", "Alumni"]
    with pytest.raises(NotFound):
        crm.add_to_pool(pid, "pol_missing", actor=recruiter)
    with pytest.raises(PermissionDenied):
        crm.add_to_pool(pid, silver.id, actor=Actor(C, pid))


def test_tags_are_normalised_and_kept_unique(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    crm.tag(pid, " Silver  Medalist ", "python", actor=recruiter)
    p = crm.tag(pid, "silver medalist", "PYTHON", "Remote-OK", actor=recruiter)
    assert p.tags == ("silver medalist", "python", "remote-ok")
    assert crm.get_person(pid).tags == p.tags
    event = all_events(crm)[-1]
    assert (event.type, event.data["tags"]) == (
        "person.tagged",
        ["silver medalist", "python", "remote-ok"],
    )
    with pytest.raises(PermissionDenied):
        crm.tag(pid, "x", actor=Actor(C, pid))


def test_assign_owner(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter, owner_id="rec_first")
    p = crm.assign_owner(pid, "rec_second", actor=recruiter)
    assert p.owner_id == "rec_second"
    assert crm.relationship(pid).owner_ids == ("rec_second", "rec_first")


# --------------------------------------------------------------------------------------------
# Referrals, hires, employees and alumni
# --------------------------------------------------------------------------------------------


def test_referral_of_a_new_person_with_an_opening(crm: CRM, recruiter: Actor) -> None:
    oid = opening(crm, recruiter)
    bob = Actor(F, "emp_bob")
    ref = crm.refer(
        {"name": "Ada", "contacts": [{"value": "ada@example.org"}]},
        referrer_id="emp_bob",
        actor=bob,
        opening_id=oid,
        note="worked together",
    )
    assert (ref.referrer_id, ref.opening_id, ref.status, ref.note) == (
        "emp_bob",
        oid,
        ReferralStatus.SUBMITTED,
        "worked together",
    )
    p = crm.get_person(ref.person_id)
    assert p.sources == ("referral",)
    assert ref.candidacy_id is not None
    c = crm.get_candidacy(ref.candidacy_id)
    assert (c.referrer_id, c.source, c.stage, c.opening_id) == ("emp_bob", "referral", "lead", oid)
    assert crm.referrals_by("emp_bob") == [ref]
    assert crm.referrals(person_id=p.id) == [ref]
    assert crm.relationship(p.id).stage is RelationshipStage.CANDIDATE
    # the referral follows the candidacy
    crm.move(c.id, "applied", actor=recruiter)
    assert crm.referrals(person_id=p.id)[0].status is ReferralStatus.IN_PROCESS
    for stage in ("screening", "interview", "offer", "hired"):
        crm.move(c.id, stage, actor=recruiter)
    assert crm.referrals(person_id=p.id)[0].status is ReferralStatus.HIRED


def test_referral_of_an_existing_person_without_an_opening(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    ref = crm.refer(pid, referrer_id="emp_bob", actor=Actor(F, "emp_bob"))
    assert (ref.person_id, ref.opening_id, ref.candidacy_id) == (pid, None, None)
    assert crm.candidacies(person_id=pid) == []
    assert len(crm.people()) == 1
    with pytest.raises(NotFound):
        crm.refer("per_missing", referrer_id="emp_bob", actor=Actor(F, "emp_bob"))
    with pytest.raises(PermissionDenied):
        crm.refer(pid, referrer_id="emp_bob", actor=Actor(C, pid))


def test_archived_referral_is_closed(crm: CRM, recruiter: Actor) -> None:
    oid = opening(crm, recruiter)
    ref = crm.refer({"name": "Ada"}, referrer_id="emp_bob", actor=recruiter, opening_id=oid)
    assert ref.candidacy_id is not None
    crm.archive(ref.candidacy_id, "we_declined", actor=recruiter)
    assert crm.referrals(person_id=ref.person_id)[0].status is ReferralStatus.CLOSED


def test_hire_starts_employment_and_leaving_makes_alumni(
    crm: CRM, recruiter: Actor, clock: Any
) -> None:
    pid = person(crm, recruiter)
    oid = opening(crm, recruiter, "Analytics Lead")
    cid = crm.add_candidacy(pid, oid, actor=recruiter, stage="offer").id
    assert crm.relationship(pid).stage is RelationshipStage.CANDIDATE
    crm.move(cid, "hired", actor=recruiter)
    (episode,) = crm.employment(pid)
    assert (episode.title, episode.started_on, episode.candidacy_id, episode.current) == (
        "Analytics Lead",
        clock.now.date(),
        cid,
        True,
    )
    assert crm.relationship(pid).stage is RelationshipStage.EMPLOYEE
    hire_events = [
        e for e in all_events(crm) if e.correlation_id == all_events(crm)[-1].correlation_id
    ]
    assert [e.type for e in hire_events] == [
        "candidacy.hired",
        "employment.started",
        "relationship.stage_changed",
    ]
    with pytest.raises(AlreadyExists):
        crm.start_employment(pid, "Second job", actor=recruiter)
    crm.set_internal_moves(pid, True, actor=Actor(C, pid))
    assert crm.employment(pid)[0].open_to_internal_moves is True
    clock.advance(days=400)
    ended = crm.end_employment(pid, actor=recruiter, reason="relocation", rehire_eligible=True)
    assert (ended.ended_on, ended.departure_reason, ended.rehire_eligible, ended.current) == (
        clock.now.date(),
        "relocation",
        True,
        False,
    )
    assert crm.load(EmploymentEpisode, ended.id).value == ended
    assert crm.relationship(pid).stage is RelationshipStage.ALUMNI
    with pytest.raises(NotFound):
        crm.end_employment(pid, actor=recruiter)
    with pytest.raises(PermissionDenied):
        crm.end_employment(pid, actor=Actor(C, pid))
    # a boomerang: alumni can be rehired directly
    crm.start_employment(pid, "Principal", actor=recruiter, started_on=date(2026, 1, 5))
    assert crm.relationship(pid).stage is RelationshipStage.EMPLOYEE
    assert [e.current for e in sorted(crm.employment(pid), key=lambda e: e.started_on)] == [
        False,
        True,
    ]


def test_relationship_stages_follow_the_candidacies(crm: CRM, recruiter: Actor) -> None:
    pid = person(crm, recruiter)
    o1, o2 = opening(crm, recruiter, "A"), opening(crm, recruiter, "B")
    assert crm.relationship(pid).stage is RelationshipStage.PROSPECT
    c1 = crm.add_candidacy(pid, o1, actor=recruiter).id
    assert crm.relationship(pid).stage is RelationshipStage.CANDIDATE
    c2 = crm.add_candidacy(pid, o2, actor=recruiter).id
    crm.archive(c1, "we_declined", actor=recruiter)
    assert crm.relationship(pid).stage is RelationshipStage.CANDIDATE  # still in process for B
    crm.withdraw(c2, actor=Actor(C, pid))
    assert crm.relationship(pid).stage is RelationshipStage.ENGAGED  # kept warm
    crm.move(c1, "applied", actor=recruiter)  # reopened
    assert crm.relationship(pid).stage is RelationshipStage.CANDIDATE
    changes = [
        (e.data["from_stage"], e.data["to_stage"])
        for e in all_events(crm)
        if e.type == "relationship.stage_changed"
    ]
    assert changes == [
        ("prospect", "candidate"),
        ("candidate", "engaged"),
        ("engaged", "candidate"),
    ]


# --------------------------------------------------------------------------------------------
# Candidacies: uniqueness, closed openings, starting stages
# --------------------------------------------------------------------------------------------


def test_one_active_candidacy_per_person_and_opening(crm: CRM, recruiter: Actor) -> None:
    pid, oid = person(crm, recruiter), opening(crm, recruiter)
    first = crm.add_candidacy(pid, oid, actor=recruiter)
    before = snapshot(crm)
    with pytest.raises(AlreadyExists) as info:
        crm.add_candidacy(pid, oid, actor=Actor(C, pid))
    assert (info.value.kind, info.value.id) == ("candidacy", first.id)
    assert snapshot(crm) == before
    crm.archive(first.id, "unresponsive", actor=recruiter)
    second = crm.add_candidacy(pid, oid, actor=Actor(C, pid))
    assert second.id != first.id
    assert (second.stage, second.interest_confirmed) == ("applied", True)  # she applied herself
    assert {c.id for c in crm.candidacies(person_id=pid)} == {first.id, second.id}
    assert {c.id for c in crm.candidacies(opening_id=oid)} == {first.id, second.id}


@pytest.mark.parametrize("status", ["draft", "on_hold", "filled", "closed"])
def test_no_candidacy_on_an_opening_that_is_not_open(
    crm: CRM, recruiter: Actor, status: str
) -> None:
    pid, oid = person(crm, recruiter), opening(crm, recruiter)
    crm.set_opening_status(oid, status, actor=recruiter)
    before = snapshot(crm)
    with pytest.raises(InvalidTransition) as info:
        crm.add_candidacy(pid, oid, actor=recruiter)
    assert status in info.value.reason
    assert snapshot(crm) == before
    assert crm.candidacies(person_id=pid) == []
    assert crm.relationship(pid).stage is RelationshipStage.PROSPECT


def test_starting_stages(crm: CRM, recruiter: Actor) -> None:
    pid, oid = person(crm, recruiter), opening(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter, stage="interview", source="linkedin")
    assert (c.stage, c.furthest_milestone.value, c.source) == ("interview", "interview", "linkedin")
    assert c.history[0].transition == "create"
    o2 = opening(crm, recruiter, "B")
    with pytest.raises(InvalidTransition):
        crm.add_candidacy(pid, o2, actor=Actor(C, pid), stage="offer")  # only recruiters choose
    with pytest.raises(InvalidTransition):
        crm.add_candidacy(pid, o2, actor=recruiter, stage="hired")
    with pytest.raises(ValidationError):
        crm.add_candidacy(pid, o2, actor=recruiter, stage="moon")
    with pytest.raises(NotFound):
        crm.add_candidacy(pid, "opn_missing", actor=recruiter)
    with pytest.raises(PermissionDenied):
        crm.add_candidacy(pid, o2, actor=Actor(C, "per_other"))
    assert len(crm.candidacies(person_id=pid)) == 1


# --------------------------------------------------------------------------------------------
# Optimistic locking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_stale_expected_version_conflicts_and_writes_nothing(
    open_crm: Any, recruiter: Actor, backend: str
) -> None:
    crm = open_crm(backend)
    pid, oid = person(crm, recruiter), opening(crm, recruiter)
    cid = crm.add_candidacy(pid, oid, actor=recruiter).id
    read = crm.load(Person, pid)
    crm.update_profile(pid, {"headline": "first"}, actor=recruiter, expected_version=read.version)
    before = snapshot(crm)
    with pytest.raises(ConcurrencyConflict) as info:
        crm.update_profile(
            pid, {"headline": "second"}, actor=recruiter, expected_version=read.version
        )
    assert (info.value.kind, info.value.id, info.value.expected, info.value.actual) == (
        "person",
        pid,
        read.version,
        read.version + 1,
    )
    with pytest.raises(ConcurrencyConflict):
        crm.set_availability(pid, "not_looking", actor=recruiter, expected_version=read.version)
    rel = crm.load(Relationship, pid)
    with pytest.raises(ConcurrencyConflict):
        crm.log_touchpoint(
            pid, "email", "outbound", actor=recruiter, expected_version=rel.version - 1
        )
    with pytest.raises(ConcurrencyConflict):
        crm.transition(cid, "apply", actor=recruiter, expected_version=99)
    assert snapshot(crm) == before
    assert crm.get_person(pid).headline == "first"
    assert crm.touchpoints(pid) == []
    assert crm.load(Candidacy, cid).version == 1


# --------------------------------------------------------------------------------------------
# Opening a CRM
# --------------------------------------------------------------------------------------------


def test_unknown_storage_scheme() -> None:
    with pytest.raises(UnknownBackend) as info:
        relcrm.open("cassandra://cluster/talent", load_entrypoints=False)
    assert info.value.scheme == "cassandra"
    assert set(info.value.known) >= {"memory", "sqlite"}
    with pytest.raises(ValidationError):
        relcrm.open("no-scheme-here", load_entrypoints=False)


def test_unknown_or_repeated_notifier() -> None:
    with pytest.raises(ValidationError) as info:
        relcrm.open("memory://", notifiers=["memory", "pager"], load_entrypoints=False)
    assert any("pager" in e for e in info.value.errors)
    with pytest.raises(ValidationError, match="twice"):
        relcrm.open("memory://", notifiers=["memory", "memory"], load_entrypoints=False)


def test_open_defaults(clock: Any) -> None:
    with relcrm.open("memory://", load_entrypoints=False, clock=clock) as crm:
        assert sorted(crm.notifiers) == ["log"]
        assert crm.now() == clock.now
        assert "memory://" in repr(crm)


def test_clock_must_be_aware_for_records(open_crm: Any) -> None:
    naive = datetime(2024, 1, 1)
    crm = open_crm(clock=lambda: naive)
    with pytest.raises(ValueError, match="timezone"):
        crm.add_person({"name": "Ada"}, actor=Actor(R, "rec"))
    assert crm.people() == []


# --------------------------------------------------------------------------------------------
# The event log
# --------------------------------------------------------------------------------------------


def run_a_busy_day(crm: CRM, rec: Actor) -> dict[str, str]:
    pid = person(crm, rec, owner_id="rec_owner")
    me = Actor(C, pid)
    oid = opening(crm, rec, owner_id="rec_hm")
    cid = crm.add_candidacy(pid, oid, actor=rec).id
    crm.confirm_interest(cid, actor=me)
    crm.add_note(pid, "strong", actor=rec)
    crm.tag(pid, "data", actor=rec)
    crm.log_touchpoint(pid, "meeting", "inbound", "coffee", actor=rec)
    crm.grant_consent(pid, "talent_pool", actor=me)
    crm.set_availability(pid, "open", actor=me)
    for stage in ("screening", "interview", "offer", "hired"):
        crm.move(cid, stage, actor=rec)
    crm.refer(
        {"name": "Grace"}, referrer_id=pid, actor=Actor(F, pid), opening_id=opening(crm, rec, "B")
    )
    crm.end_employment(pid, actor=rec, reason="moved")
    return {"person": pid, "candidacy": cid}


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_every_event_has_a_dotted_type_and_a_correlation_id(
    open_crm: Any, recruiter: Actor, backend: str
) -> None:
    crm = open_crm(backend)
    run_a_busy_day(crm, recruiter)
    records = crm.store.events()
    events = all_events(crm)
    assert len(events) >= 20
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert len({e.id for e in events}) == len(events)
    for rec, event in zip(records, events, strict=True):
        assert DOTTED.match(event.type), event.type
        assert event.type == rec.type
        assert event.type in relcrm.events.EVENT_TYPES
        assert event.correlation_id, event
        assert event.correlation_id.startswith("cor_")
        assert event.schema_version == 1
        assert event.occurred_at.utcoffset() is not None
        assert rec.person_id == event.person_id
    # one command, one correlation id; different commands, different ids
    by_corr: dict[str, list[str]] = {}
    for e in events:
        by_corr.setdefault(e.correlation_id or "", []).append(e.type)
    assert [
        "candidacy.hired",
        "employment.started",
        "relationship.stage_changed",
    ] in by_corr.values()
    assert [
        "person.created",
        "candidacy.created",
        "relationship.stage_changed",
        "referral.submitted",
    ] in by_corr.values()
    assert len(by_corr) == 16  # the commands run above


def test_sqlite_and_memory_agree_on_a_busy_day(open_crm: Any, recruiter: Actor) -> None:
    summaries = []
    for backend in ("memory", "sqlite"):
        crm = open_crm(backend)
        ids = run_a_busy_day(crm, recruiter)
        pid = ids["person"]
        c = crm.get_candidacy(ids["candidacy"])
        summaries.append(
            (
                [e.type for e in crm.timeline(pid)],
                [e.type for e in crm.timeline(pid, "candidate")],
                [h.transition for h in c.history],
                c.furthest_milestone,
                crm.relationship(pid).stage,
                crm.relationship(pid).touchpoint_count,
                [(n.recipient.role.value, n.event_type) for n in crm.notifier("memory").sent],  # type: ignore[attr-defined]
                len(crm.outbox(None)),
            )
        )
    assert summaries[0] == summaries[1]
    assert summaries[0][4] is RelationshipStage.ALUMNI


def test_timeline_is_oldest_first(crm: CRM, recruiter: Actor, clock: Any) -> None:
    pid = person(crm, recruiter)
    for i in range(3):
        clock.advance(hours=1)
        crm.add_note(pid, f"note {i}", actor=recruiter)
    notes = [e for e in crm.timeline(pid) if e.type == "relationship.note_added"]
    assert [e.data["text"] for e in notes] == ["note 0", "note 1", "note 2"]
    assert [e.occurred_at for e in notes] == sorted(e.occurred_at for e in notes)
    assert all(e.occurred_at.tzinfo is not None for e in notes)
    assert crm.notes(pid)[0].created_at == notes[0].occurred_at
    assert notes[0].occurred_at.astimezone(UTC) == notes[0].occurred_at


def test_add_people_writes_a_whole_batch_or_nothing(crm: relcrm.CRM) -> None:
    rita = relcrm.Actor(relcrm.ActorRole.RECRUITER, "rita")
    added = crm.add_people([{"name": "Ada"}, {"name": "Grace"}], actor=rita)
    assert [p.name for p in crm.people()] == ["Ada", "Grace"]
    assert [e.type for e in crm.timeline(added[1].id)] == ["person.created"]
    events = len(crm.store.events())
    with pytest.raises(relcrm.ValidationError, match=r"@ \$\.name"):
        crm.add_people([{"name": "Edsger"}, {"name": 7}], actor=rita)
    with pytest.raises(relcrm.AlreadyExists):
        crm.add_people(
            [{"id": "per_x", "name": "Alan"}, {"id": added[0].id, "name": "Ada"}], actor=rita
        )
    with pytest.raises(relcrm.AlreadyExists, match="twice"):
        crm.add_people([{"id": "per_y", "name": "A"}, {"id": "per_y", "name": "B"}], actor=rita)
    assert [p.name for p in crm.people()] == ["Ada", "Grace"]
    assert len(crm.store.events()) == events
