"""Each side sees only what is meant for it.

A person is seeded with every kind of internal data (notes, archive reasons with notes, touchpoint
summaries, tags, owner, follow-ups, referral notes, a departure reason, a pool, internal stage names
of a custom pipeline) next to a second person with their own data. Everything the candidate can read
(their timeline, their view, the notifications sent to them, the outbox rows queued for them) is
dumped to text and scanned for every secret, so a leak through any field fails the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest

import relcrm
from relcrm import (
    CRM,
    Actor,
    ActorRole,
    ArchiveReason,
    ArchiveReasonType,
    Event,
    Milestone,
    Pipeline,
    Stage,
    Transition,
    Visibility,
    describe_event,
    unstructure,
)
from relcrm.events import EVENT_TYPES, project_event
from relcrm.notify.base import Notification

C, R, F = ActorRole.CANDIDATE, ActorRole.RECRUITER, ActorRole.REFERRER
WHEN = datetime(2024, 1, 1, tzinfo=UTC)

RECRUITER_ID = "rec_SECRET-RECRUITER-ID"
OWNER_ID = "rec_SECRET-OWNER-ID"
ADA_NAME = "Ada Lovelace"

#: Internal data about Ada that her own outputs must never show.
ADA_SECRETS = {
    "note": "SECRET-NOTE: ada interviews well but flakes",
    "archive_note": "SECRET-ARCHIVE-NOTE: failed the background check",
    "covert_archive_note": "SECRET-COVERT-NOTE: team did not like her",
    "touchpoint": "SECRET-TOUCH: asked for 200k",
    "tag": "secret-tag-flight-risk",
    "follow_up": "SECRET-FOLLOWUP: call after her bonus",
    "referral": "SECRET-REFERRAL: my old flatmate",
    "departure": "SECRET-DEPARTURE: performance plan",
    "pool": "SECRET-POOL silver medalists",
    "source": "secret-source-headhunter-list",
    "recruiter": RECRUITER_ID,
    "owner": OWNER_ID,
    "stage_id": "secret_gauntlet",
    "stage_label": "SECRET-STAGE-LABEL Gauntlet",
    "transition": "secret_throw_down",
}
#: Archive reason types used on Ada's candidacies (shared knowledge internally, never shown to her).
ARCHIVE_TYPES = ("not_eligible", "not eligible", "we_declined", "we declined")

INTERNAL_EVENT_TYPES = frozenset(
    n for n, spec in EVENT_TYPES.items() if spec.visibility is Visibility.INTERNAL
)
DEFAULT_STAGE_IDS = ("lead", "applied", "screening", "interview", "offer", "hired", "archived")
INTERNAL_DATA_KEYS = frozenset(
    {
        "stage",
        "from_stage",
        "to_stage",
        "transition",
        "milestone",
        "archive_reason",
        "archive_note",
        "referrer_id",
        "source",
        "sources",
        "owner_id",
        "departure_reason",
        "rehire_eligible",
        "previous",
        "text",
        "summary",
        "note",
        "tags",
    }
)

COVERT = Pipeline(
    name="covert",
    stages=(
        Stage("sourced", "Sourced", Milestone.LEAD),
        Stage(ADA_SECRETS["stage_id"], ADA_SECRETS["stage_label"], Milestone.INTERVIEW),
        Stage("binned", "Binned", Milestone.ARCHIVED),
    ),
    transitions=(
        Transition(
            ADA_SECRETS["transition"],
            frozenset({"sourced"}),
            ADA_SECRETS["stage_id"],
            frozenset({R}),
        ),
        Transition(
            "bin",
            frozenset({"sourced", ADA_SECRETS["stage_id"]}),
            "binned",
            frozenset({R}),
            "candidacy.archived",
            requires_reason=True,
        ),
    ),
    initial="sourced",
)


class CovertPipeline:
    @relcrm.hookimpl
    def relcrm_register_pipelines(self, register: Any) -> None:
        register(COVERT)


@attrs.frozen
class World:
    crm: CRM
    ada: str
    bob: str
    candidacies: tuple[str, ...]
    bob_secrets: tuple[str, ...]


def seed(crm: CRM) -> World:
    rec = Actor(R, RECRUITER_ID)
    ada = crm.add_person(
        {
            "name": ADA_NAME,
            "contacts": [{"value": "ada@example.org"}],
            "owner_id": OWNER_ID,
            "sources": [ADA_SECRETS["source"]],
        },
        actor=rec,
    ).id
    bob_name = "Bartholomew Zzyzx"
    bob_secrets = (
        "SECRET-BOB-NOTE: wants out",
        "SECRET-BOB-TOUCH: counter-offer talk",
        "secret-bob-tag",
        "bob@zzyzx.example",
        bob_name,
    )
    bob = crm.add_person(
        {"name": bob_name, "contacts": [{"value": "bob@zzyzx.example"}]}, actor=rec
    ).id
    me = Actor(C, ada)
    bob_as_referrer = Actor(F, bob)

    # Bob's own life in the pool
    crm.start_employment(bob, "Staff Engineer", actor=rec, open_to_internal_moves=True)
    crm.add_note(bob, bob_secrets[0], actor=rec)
    crm.log_touchpoint(bob, "meeting", "inbound", bob_secrets[1], actor=rec)
    crm.tag(bob, bob_secrets[2], actor=rec)

    o1 = crm.add_opening({"title": "Data Engineer", "owner_id": "rec_hm_1"}, actor=rec).id
    o2 = crm.add_opening({"title": "Analytics Lead"}, actor=rec).id
    o3 = crm.add_opening({"title": "Platform Engineer", "pipeline": "covert"}, actor=rec).id

    # internal relationship work on Ada
    crm.add_note(ada, ADA_SECRETS["note"], actor=rec)
    crm.log_touchpoint(ada, "phone", "outbound", ADA_SECRETS["touchpoint"], actor=rec)
    crm.tag(ada, ADA_SECRETS["tag"].upper(), actor=rec)
    crm.assign_owner(ada, OWNER_ID, actor=rec)
    crm.schedule_follow_up(
        ada, crm.now() + timedelta(days=30), actor=rec, note=ADA_SECRETS["follow_up"]
    )
    pool = crm.create_pool(ADA_SECRETS["pool"], actor=rec)
    crm.add_to_pool(ada, pool.id, actor=rec)

    # Bob (an employee) refers Ada for the first opening; it ends as not eligible
    referral = crm.refer(
        ada, referrer_id=bob, actor=bob_as_referrer, opening_id=o1, note=ADA_SECRETS["referral"]
    )
    c1 = referral.candidacy_id
    assert c1 is not None
    crm.move(c1, "applied", actor=rec)
    crm.move(c1, "screening", actor=rec)
    crm.archive(c1, "not_eligible", actor=rec, note=ADA_SECRETS["archive_note"])

    # a covert-pipeline candidacy, declined
    c3 = crm.add_candidacy(ada, o3, actor=rec, source="secret-source-headhunter-list").id
    crm.transition(c3, ADA_SECRETS["transition"], actor=rec)
    crm.transition(
        c3,
        "bin",
        actor=rec,
        reason=ArchiveReason(ArchiveReasonType.WE_DECLINED, ADA_SECRETS["covert_archive_note"]),
    )

    # Ada's own actions
    crm.update_profile(ada, {"headline": "Data person"}, actor=me)
    crm.grant_consent(ada, "talent_pool", actor=me)
    crm.set_availability(ada, "open", actor=me)

    # the second opening: she is hired, then leaves
    c2 = crm.add_candidacy(ada, o2, actor=rec).id
    crm.confirm_interest(c2, actor=me)
    for stage in ("screening", "interview", "offer", "hired"):
        crm.move(c2, stage, actor=rec)
    crm.end_employment(ada, actor=rec, reason=ADA_SECRETS["departure"], rehire_eligible=False)
    crm.set_availability(ada, "not_now", actor=rec)  # recorded by a recruiter: she is told
    crm.grant_consent(ada, "marketing", actor=rec, lawful_basis="legitimate_interest")
    return World(crm, ada, bob, (c1, c2, c3), bob_secrets)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, open_crm: Any) -> World:
    return seed(open_crm(request.param, plugins=[CovertPipeline()]))


def dump(*things: Any) -> str:
    """Everything about ``things`` as text: their repr and their JSON form, lower-cased."""
    parts = []
    for thing in things:
        parts.append(repr(thing))
        parts.append(json.dumps(unstructure(thing), default=str, sort_keys=True))
    return "\n".join(parts).casefold()


def assert_absent(text: str, needles: Iterable[str], where: str) -> None:
    leaked = [n for n in needles if n.casefold() in text]
    assert not leaked, f"{where} leaks {leaked}"


def candidate_notifications(crm: CRM, person_id: str) -> list[Notification]:
    sent = crm.notifier("memory").sent  # type: ignore[attr-defined]
    return [n for n in sent if n.recipient.role is C and n.recipient.id == person_id]


def candidate_outbox_payloads(crm: CRM, person_id: str) -> list[Any]:
    return [
        row.payload
        for row in crm.outbox(None)
        if row.recipient["role"] == "candidate" and row.recipient["id"] == person_id
    ]


def everything_ada_can_read(w: World) -> str:
    me = Actor(C, w.ada)
    timeline = w.crm.timeline(w.ada, "candidate")
    lines = [describe_event(e, me) for e in timeline]
    return "\n".join(
        [
            dump(timeline),
            dump(w.crm.candidate_view(w.ada)),
            dump(candidate_notifications(w.crm, w.ada)),
            json.dumps(candidate_outbox_payloads(w.crm, w.ada), sort_keys=True).casefold(),
            "\n".join(lines).casefold(),
        ]
    )


# --------------------------------------------------------------------------------------------
# The candidate's timeline
# --------------------------------------------------------------------------------------------


def test_candidate_timeline_shows_her_story(world: World) -> None:
    types = [e.type for e in world.crm.timeline(world.ada, "candidate")]
    # not vacuous: the candidate-visible story is all there
    for expected in (
        "person.created",
        "candidacy.created",
        "candidacy.stage_changed",
        "candidacy.archived",
        "candidacy.interest_confirmed",
        "candidacy.hired",
        "employment.started",
        "employment.ended",
        "person.profile_updated",
        "consent.granted",
        "relationship.availability_changed",
    ):
        assert expected in types, expected
    assert types.count("candidacy.archived") == 2


def test_candidate_timeline_hides_everything_internal(world: World) -> None:
    crm = world.crm
    timeline = crm.timeline(world.ada, "candidate")
    me = Actor(C, world.ada)
    assert timeline == crm.timeline(world.ada, me)
    text = dump(timeline)
    assert_absent(text, ADA_SECRETS.values(), "candidate timeline")
    assert_absent(text, ARCHIVE_TYPES, "candidate timeline")
    assert_absent(text, (world.bob, *world.bob_secrets), "candidate timeline")
    for event in timeline:
        assert event.type not in INTERNAL_EVENT_TYPES
        assert event.visibility is Visibility.CANDIDATE
        assert event.person_id == world.ada
        spec = EVENT_TYPES[event.type]
        assert set(event.data) <= spec.candidate_fields, event.type
        assert not set(event.data) & INTERNAL_DATA_KEYS, event.type
        assert set(event.subjects) <= {"person", "candidacy", "opening"}
        for value in event.data.values():
            assert value not in DEFAULT_STAGE_IDS, (event.type, value)
        # she sees herself, everyone else only by role
        if event.actor.role is C:
            assert event.actor == me
        else:
            assert event.actor.id == event.actor.role.value
        line = describe_event(event, me)
        assert "?" not in line, line
    assert_absent(
        "\n".join(describe_event(e, me) for e in timeline).casefold(), ADA_SECRETS.values(), "lines"
    )


def test_candidate_sees_closed_not_why(world: World) -> None:
    timeline = world.crm.timeline(world.ada, "candidate")
    closed = [e for e in timeline if e.type == "candidacy.archived"]
    assert [e.data["candidate_stage"] for e in closed] == ["Closed", "Closed"]
    for e in closed:
        line = describe_event(e, Actor(C, world.ada))
        assert line.startswith("Recruiter closed the candidacy for ")
        assert ":" not in line  # no ": not eligible" suffix
    covert = [e for e in timeline if e.subjects.get("candidacy") == world.candidacies[2]]
    assert [e.data["candidate_stage"] for e in covert] == ["Invited", "Interviewing", "Closed"]


def test_recruiter_timeline_has_everything(world: World) -> None:
    timeline = world.crm.timeline(world.ada, "recruiter")
    text = dump(timeline)
    for key, secret in ADA_SECRETS.items():
        if key in ("recruiter", "stage_label"):
            continue  # an actor id (checked below); a label no event carries
        assert secret.casefold() in text, key
    assert any(e.actor.id == RECRUITER_ID for e in timeline)
    for archive_type in ("not_eligible", "we_declined"):
        assert archive_type in text
    types = {e.type for e in timeline}
    assert {
        "relationship.note_added",
        "relationship.touchpoint_logged",
        "person.tagged",
        "person.owner_assigned",
        "relationship.follow_up_scheduled",
        "relationship.pool_joined",
        "referral.submitted",
        "relationship.stage_changed",
    } <= types
    # a recruiter sees Ada's timeline, not Bob's private notes
    assert_absent(text, world.bob_secrets[:3], "Ada's recruiter timeline")
    archived = [e for e in timeline if e.type == "candidacy.archived"]
    assert [e.data["archive_note"] for e in archived] == [
        ADA_SECRETS["archive_note"],
        ADA_SECRETS["covert_archive_note"],
    ]


# --------------------------------------------------------------------------------------------
# The candidate view
# --------------------------------------------------------------------------------------------


def test_candidate_view_every_field(world: World) -> None:
    view = world.crm.candidate_view(world.ada)
    text = dump(view)
    assert_absent(text, ADA_SECRETS.values(), "candidate view")
    assert_absent(text, ARCHIVE_TYPES, "candidate view")
    assert_absent(text, (world.bob, *world.bob_secrets), "candidate view")
    assert view.person_id == world.ada
    assert view.name == ADA_NAME
    assert view.availability is relcrm.Availability.NOT_NOW
    assert isinstance(view.check_back_on, date)
    assert view.hear_about_openings is False
    assert set(view.actions) == {
        "update_profile",
        "set_availability",
        "grant_consent",
        "withdraw_consent",
    }
    by_id = {c.candidacy_id: c for c in view.candidacies}
    assert set(by_id) == set(world.candidacies)
    c1, c2, c3 = (by_id[c] for c in world.candidacies)
    assert (c1.opening_title, c1.stage, c1.active, c1.actions) == (
        "Data Engineer",
        "Closed",
        False,
        (),
    )
    assert (c2.opening_title, c2.stage, c2.active, c2.actions) == (
        "Analytics Lead",
        "Hired",
        False,
        (),
    )
    assert (c3.opening_title, c3.stage, c3.active) == ("Platform Engineer", "Closed", False)
    for c in view.candidacies:
        assert c.stage not in DEFAULT_STAGE_IDS
        # every field, one by one, is free of internal data
        for field in attrs.fields(type(c)):
            assert_absent(str(getattr(c, field.name)).casefold(), ADA_SECRETS.values(), field.name)
    for field in attrs.fields(type(view)):
        value = str(getattr(view, field.name)).casefold()
        assert_absent(value, ADA_SECRETS.values(), field.name)
        assert_absent(value, ARCHIVE_TYPES, field.name)
    assert {(c.purpose, c.granted) for c in view.consents} == {
        ("talent_pool", True),
        ("marketing", True),
    }


def test_candidate_view_offers_only_her_own_moves(open_crm: Any, recruiter: Actor) -> None:
    crm = open_crm()
    pid = crm.add_person({"name": "Ada"}, actor=recruiter).id
    oid = crm.add_opening({"title": "Data Engineer"}, actor=recruiter).id
    cid = crm.add_candidacy(pid, oid, actor=recruiter).id
    (c,) = crm.candidate_view(pid).candidacies
    assert (c.stage, c.active, c.actions) == ("Invited", True, ("confirm_interest", "withdraw"))
    crm.move(cid, "applied", actor=recruiter)
    (c,) = crm.candidate_view(pid).candidacies
    assert (c.stage, c.actions) == ("Application received", ("withdraw",))


# --------------------------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------------------------


def test_candidate_notifications_hide_everything_internal(world: World) -> None:
    crm = world.crm
    sent = candidate_notifications(crm, world.ada)
    assert sent, "the candidate was told nothing at all"
    text = dump(sent)
    assert_absent(text, ADA_SECRETS.values(), "candidate notifications")
    assert_absent(text, ARCHIVE_TYPES, "candidate notifications")
    assert_absent(text, (world.bob, *world.bob_secrets), "candidate notifications")
    payloads = json.dumps(candidate_outbox_payloads(crm, world.ada), sort_keys=True).casefold()
    assert payloads
    assert_absent(payloads, ADA_SECRETS.values(), "candidate outbox rows")
    assert_absent(payloads, ARCHIVE_TYPES, "candidate outbox rows")
    for n in sent:
        assert n.event_type not in INTERNAL_EVENT_TYPES
        assert n.recipient.address == "ada@example.org"
        assert set(n.data) <= EVENT_TYPES[n.event_type].candidate_fields
        for value in n.data.values():
            assert value not in DEFAULT_STAGE_IDS
    types = {n.event_type for n in sent}
    assert {"candidacy.archived", "candidacy.hired", "employment.ended", "consent.granted"} <= types
    # her own actions are not echoed back to her
    assert "person.profile_updated" not in types
    assert "candidacy.interest_confirmed" not in types


def test_everything_ada_reads_is_free_of_secrets(world: World) -> None:
    text = everything_ada_can_read(world)
    assert_absent(text, ADA_SECRETS.values(), "Ada's outputs")
    assert_absent(text, ARCHIVE_TYPES, "Ada's outputs")
    assert_absent(text, (world.bob, *world.bob_secrets), "Ada's outputs")
    for internal in INTERNAL_EVENT_TYPES:
        assert f'"{internal}"' not in text, internal


def test_bob_as_a_candidate_sees_nothing_of_ada(world: World) -> None:
    crm = world.crm
    timeline = crm.timeline(world.bob, "candidate")
    assert {e.type for e in timeline} >= {"person.created", "employment.started"}
    text = "\n".join(
        [
            dump(timeline),
            dump(crm.candidate_view(world.bob)),
            dump(candidate_notifications(crm, world.bob)),
        ]
    )
    assert_absent(text, (world.ada, ADA_NAME, *ADA_SECRETS.values()), "Bob's candidate outputs")
    assert_absent(text, world.bob_secrets[:3], "Bob's candidate outputs")


# --------------------------------------------------------------------------------------------
# The referrer
# --------------------------------------------------------------------------------------------


def test_referrer_sees_only_referral_progress(world: World) -> None:
    crm = world.crm
    bob = Actor(F, world.bob)
    timeline = crm.timeline(world.ada, bob)
    assert timeline, "the referrer sees nothing of the referral"
    referred = world.candidacies[0]
    for event in timeline:
        assert event.type.startswith("candidacy.")
        assert event.subjects.get("candidacy") == referred
        assert set(event.data) <= {"opening_id", "opening_title", "candidate_stage"}
    assert [e.data["candidate_stage"] for e in timeline] == [
        "Invited",
        "Application received",
        "Under review",
        "Closed",
    ]
    text = dump(timeline)
    secrets = [v for k, v in ADA_SECRETS.items() if k != "referral"]
    assert_absent(text, secrets, "referrer timeline")
    assert_absent(text, ARCHIVE_TYPES, "referrer timeline")
    assert_absent(
        text, ("Analytics Lead", "Platform Engineer", "ada@example.org"), "referrer timeline"
    )
    # another referrer sees nothing
    assert crm.timeline(world.ada, Actor(F, "emp_someone_else")) == []


def test_referrer_notifications(world: World) -> None:
    crm = world.crm
    sent = [n for n in crm.notifier("memory").sent if n.recipient.role is F]  # type: ignore[attr-defined]
    assert sent
    assert {n.recipient.id for n in sent} == {world.bob}
    # Bob submitted the referral himself, so he is told about the progress after that
    assert [n.event_type for n in sent] == [
        "candidacy.stage_changed",
        "candidacy.stage_changed",
        "candidacy.archived",
    ]
    for n in sent:
        assert set(n.data) <= {"opening_id", "opening_title", "candidate_stage"}
        assert n.recipient.address is None
    text = dump(sent)
    assert_absent(text, ADA_SECRETS.values(), "referrer notifications")
    assert_absent(text, ARCHIVE_TYPES, "referrer notifications")


def test_referrer_viewer_needs_an_id(crm: CRM, recruiter: Actor) -> None:
    pid = crm.add_person({"name": "Ada"}, actor=recruiter).id
    with pytest.raises(relcrm.ValidationError):
        crm.timeline(pid, "referrer")
    with pytest.raises(relcrm.ValidationError):
        crm.timeline(pid, "hiring_manager")


def _event(**changes: Any) -> Event:
    base: dict[str, Any] = {
        "id": "evt_1",
        "type": "candidacy.archived",
        "occurred_at": WHEN,
        "actor": Actor(R, "rec_x"),
        "visibility": Visibility.CANDIDATE,
        "subjects": {"person": "per_a", "candidacy": "cnd_1", "opening": "opn_1", "extra": "x"},
        "data": {
            "opening_id": "opn_1",
            "opening_title": "T",
            "candidate_stage": "Closed",
            "archive_reason": "we_declined",
            "archive_note": "SECRET",
            "referrer_id": "per_ref",
        },
    }
    return Event(**{**base, **changes})


def test_project_event_rules() -> None:
    event = _event()
    assert project_event(event, Actor(R, "rec_y")) is event
    assert project_event(event, Actor(ActorRole.SYSTEM, "sys")) is event
    mine = project_event(event, Actor(C, "per_a"))
    assert mine is not None
    assert dict(mine.data) == {
        "opening_id": "opn_1",
        "opening_title": "T",
        "candidate_stage": "Closed",
    }
    assert set(mine.subjects) == {"person", "candidacy", "opening"}
    assert mine.actor == Actor(R, "recruiter")
    assert project_event(event, Actor(C, "per_other")) is None
    assert (
        project_event(attrs.evolve(event, visibility=Visibility.INTERNAL), Actor(C, "per_a"))
        is None
    )
    assert project_event(event, Actor(F, "per_ref")) is None  # not told who referred
    ref = project_event(event, Actor(F, "per_ref"), referred_by="per_ref")
    assert ref is not None
    assert set(ref.data) == {"opening_id", "opening_title", "candidate_stage"}
    assert project_event(event, Actor(F, "per_other"), referred_by="per_ref") is None
    unknown = _event(type="plugin.something_happened")
    shown = project_event(unknown, Actor(C, "per_a"))
    assert shown is not None
    assert dict(shown.data) == {}
    assert project_event(unknown, Actor(F, "per_ref"), referred_by="per_ref") is None
