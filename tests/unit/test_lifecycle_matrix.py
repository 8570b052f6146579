"""The participatory lifecycle: every transition of the default pipeline taken by every actor role,
the guards, the person-level action matrix, and the same rules enforced through the CRM and its
plugin hooks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

import relcrm
from relcrm import (
    CRM,
    DEFAULT_PIPELINE,
    Actor,
    ActorRole,
    ArchiveReason,
    ArchiveReasonType,
    Candidacy,
    InvalidTransition,
    Milestone,
    Opening,
    OpeningStatus,
    PermissionDenied,
    Pipeline,
    PluginError,
    Stage,
    StageChange,
    Transition,
    TransitionVetoed,
    Visibility,
)
from relcrm.lifecycle import ACTION_ROLES, TransitionContext, apply_transition, check_action

C, R, F, S = ActorRole.CANDIDATE, ActorRole.RECRUITER, ActorRole.REFERRER, ActorRole.SYSTEM
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
PERSON = "per_ada"
OPENING = Opening(id="opn_data", title="Data Engineer")

# --------------------------------------------------------------------------------------------
# The expected default pipeline, written out by hand so that any change to it is noticed.
# --------------------------------------------------------------------------------------------


class Expected(NamedTuple):
    sources: frozenset[str]
    target: str
    roles: frozenset[ActorRole]
    event_type: str
    guards: tuple[str, ...] = ()
    requires_reason: bool = False
    archive_reason: ArchiveReasonType | None = None


ACTIVE = frozenset({"lead", "applied", "screening", "interview", "offer"})

EXPECTED_STAGES = {
    "lead": Milestone.LEAD,
    "applied": Milestone.APPLIED,
    "screening": Milestone.SCREENING,
    "interview": Milestone.INTERVIEW,
    "offer": Milestone.OFFER,
    "hired": Milestone.HIRED,
    "archived": Milestone.ARCHIVED,
}

EXPECTED_TRANSITIONS = {
    "confirm_interest": Expected(
        frozenset({"lead"}),
        "applied",
        frozenset({C}),
        "candidacy.interest_confirmed",
        guards=("own_candidacy", "opening_accepts"),
    ),
    "apply": Expected(
        frozenset({"lead"}),
        "applied",
        frozenset({R, S}),
        "candidacy.stage_changed",
        guards=("opening_accepts",),
    ),
    "screen": Expected(
        frozenset({"applied"}), "screening", frozenset({R, S}), "candidacy.stage_changed"
    ),
    "interview": Expected(
        frozenset({"screening"}), "interview", frozenset({R}), "candidacy.stage_changed"
    ),
    "offer": Expected(frozenset({"interview"}), "offer", frozenset({R}), "candidacy.stage_changed"),
    "hire": Expected(
        frozenset({"offer"}), "hired", frozenset({R}), "candidacy.hired", guards=("reached_offer",)
    ),
    "archive": Expected(
        ACTIVE, "archived", frozenset({R, S}), "candidacy.archived", requires_reason=True
    ),
    "withdraw": Expected(
        ACTIVE,
        "archived",
        frozenset({C}),
        "candidacy.withdrawn",
        guards=("own_candidacy",),
        archive_reason=ArchiveReasonType.WITHDREW,
    ),
    "reopen": Expected(
        frozenset({"archived"}),
        "applied",
        frozenset({R}),
        "candidacy.reopened",
        guards=("opening_accepts",),
    ),
}

#: Progress order of milestones, lowest first (archived says nothing of progress).
PROGRESS = [
    Milestone.ARCHIVED,
    Milestone.LEAD,
    Milestone.APPLIED,
    Milestone.SCREENING,
    Milestone.INTERVIEW,
    Milestone.OFFER,
    Milestone.HIRED,
]

#: How the helper below reaches each stage from a new lead, and the furthest milestone it has then.
PATHS: dict[str, tuple[tuple[str, ...], Milestone]] = {
    "lead": ((), Milestone.LEAD),
    "applied": (("apply",), Milestone.APPLIED),
    "screening": (("apply", "screen"), Milestone.SCREENING),
    "interview": (("apply", "screen", "interview"), Milestone.INTERVIEW),
    "offer": (("apply", "screen", "interview", "offer"), Milestone.OFFER),
    "hired": (("apply", "screen", "interview", "offer", "hire"), Milestone.HIRED),
    "archived": (("apply", "screen", "archive"), Milestone.SCREENING),
}

ROLE_IDS = {C: PERSON, R: "rec_alice", F: "emp_bob", S: "scheduler"}


def actor_for(role: ActorRole, candidacy: Candidacy) -> Actor:
    """The actor taking a transition in ``role``; a candidate is the candidacy's own person."""
    return Actor(role, candidacy.person_id if role is C else ROLE_IDS[role])


_counter = itertools.count()


def fake_id(prefix: str) -> str:
    return f"{prefix}_{next(_counter):06d}"


def ctx(opening: Opening | None = OPENING, now: datetime = NOW) -> TransitionContext:
    return TransitionContext(now=now, new_id=fake_id, opening=opening, correlation_id="cor_test")


def new_lead(pipeline: Pipeline = DEFAULT_PIPELINE) -> Candidacy:
    return Candidacy(
        id="cnd_1",
        person_id=PERSON,
        opening_id=OPENING.id,
        stage=pipeline.initial,
        pipeline=pipeline.name,
        created_at=NOW,
    )


def take(
    c: Candidacy,
    names: tuple[str, ...],
    pipeline: Pipeline = DEFAULT_PIPELINE,
    role: ActorRole = R,
) -> Candidacy:
    for name in names:
        reason = ArchiveReason(ArchiveReasonType.WE_DECLINED) if name == "archive" else None
        c, _ = apply_transition(pipeline, c, name, actor_for(role, c), ctx(), reason=reason)
    return c


def candidacy_at(stage: str) -> Candidacy:
    """A default-pipeline candidacy standing at ``stage``, built with the pure function."""
    names, furthest = PATHS[stage]
    c = take(new_lead(), names)
    assert c.stage == stage
    assert c.furthest_milestone is furthest
    assert len(c.history) == len(names)
    return c


def furthest_of(*milestones: Milestone) -> Milestone:
    return max(milestones, key=PROGRESS.index)


# --------------------------------------------------------------------------------------------
# The pipeline is what we think it is
# --------------------------------------------------------------------------------------------


def test_default_pipeline_matches_the_expected_table() -> None:
    assert DEFAULT_PIPELINE.name == "default"
    assert DEFAULT_PIPELINE.initial == "lead"
    assert {s.id: s.milestone for s in DEFAULT_PIPELINE.stages} == EXPECTED_STAGES
    assert [t.name for t in DEFAULT_PIPELINE.transitions] == list(EXPECTED_TRANSITIONS)
    for t in DEFAULT_PIPELINE.transitions:
        exp = EXPECTED_TRANSITIONS[t.name]
        got = Expected(
            t.sources,
            t.target,
            t.roles,
            t.event_type,
            t.guards,
            t.requires_reason,
            t.archive_reason,
        )
        assert got == exp, t.name


def test_every_stage_is_reachable_by_the_helper() -> None:
    assert set(PATHS) == {s.id for s in DEFAULT_PIPELINE.stages}
    for stage in PATHS:
        candidacy_at(stage)


# --------------------------------------------------------------------------------------------
# Every transition x every role
# --------------------------------------------------------------------------------------------

MATRIX = [(t.name, role) for t in DEFAULT_PIPELINE.transitions for role in ActorRole]


@pytest.mark.parametrize(("name", "role"), MATRIX, ids=[f"{n}-{r.value}" for n, r in MATRIX])
def test_transition_matrix(name: str, role: ActorRole) -> None:
    assert name in EXPECTED_TRANSITIONS, f"transition {name!r} is not in the expected table"
    exp = EXPECTED_TRANSITIONS[name]
    allowed = role in exp.roles
    for source in sorted(exp.sources):
        before = candidacy_at(source)
        actor = actor_for(role, before)
        reason = (
            ArchiveReason(ArchiveReasonType.NOT_ELIGIBLE, "internal: visa")
            if exp.requires_reason
            else None
        )
        context = ctx()
        if not allowed:
            with pytest.raises(InvalidTransition) as info:
                apply_transition(DEFAULT_PIPELINE, before, name, actor, context, reason=reason)
            err = info.value
            assert not isinstance(err, TransitionVetoed)
            assert err.stage == source
            assert err.target == exp.target
            assert err.actor == str(actor)
            assert err.actor == f"{role.value}:{actor.id}"
            assert name in err.reason
            continue

        new, events = apply_transition(
            DEFAULT_PIPELINE, before, name, actor, context, reason=reason
        )
        target_milestone = EXPECTED_STAGES[exp.target]
        # the new state
        assert new.stage == exp.target
        assert new.id == before.id
        assert new.person_id == before.person_id
        assert new.history[:-1] == before.history
        assert new.history[-1] == StageChange(source, exp.target, name, actor, NOW)
        assert new.furthest_milestone is furthest_of(before.furthest_milestone, target_milestone)
        if name == "archive":
            assert new.archive_reason == reason
        elif name == "withdraw":
            assert new.archive_reason == ArchiveReason(ArchiveReasonType.WITHDREW, "")
        else:
            assert new.archive_reason is None
        if name == "confirm_interest":
            assert new.interest_confirmed is True
        # the input is untouched (pure function)
        assert before == candidacy_at(source)
        # the event
        assert len(events) == 1
        (event,) = events
        assert event.type == exp.event_type
        assert event.actor == actor
        assert event.occurred_at == NOW
        assert event.correlation_id == "cor_test"
        assert event.visibility is Visibility.CANDIDATE
        assert event.id.startswith("evt_")
        assert dict(event.subjects) == {
            "person": PERSON,
            "candidacy": before.id,
            "opening": OPENING.id,
        }
        assert event.data["transition"] == name
        assert event.data["from_stage"] == source
        assert event.data["to_stage"] == exp.target
        assert event.data["milestone"] == target_milestone.value
        assert event.data["opening_title"] == OPENING.title
        assert (
            event.data["candidate_stage"] == DEFAULT_PIPELINE.stage(exp.target).shown_to_candidate
        )
        if target_milestone is Milestone.ARCHIVED:
            assert new.archive_reason is not None
            assert event.data["archive_reason"] == new.archive_reason.type.value
            assert event.data["archive_note"] == new.archive_reason.note
        else:
            assert "archive_reason" not in event.data
            assert "archive_note" not in event.data


WRONG_SOURCES = [
    (t.name, s.id)
    for t in DEFAULT_PIPELINE.transitions
    for s in DEFAULT_PIPELINE.stages
    if s.id not in t.sources
]


@pytest.mark.parametrize(
    ("name", "stage"), WRONG_SOURCES, ids=[f"{n}-from-{s}" for n, s in WRONG_SOURCES]
)
def test_transition_from_a_wrong_stage_is_refused(name: str, stage: str) -> None:
    exp = EXPECTED_TRANSITIONS[name]
    assert stage not in exp.sources
    before = candidacy_at(stage)
    for role in sorted(exp.roles):
        actor = actor_for(role, before)
        reason = ArchiveReason(ArchiveReasonType.OTHER) if exp.requires_reason else None
        with pytest.raises(InvalidTransition) as info:
            apply_transition(DEFAULT_PIPELINE, before, name, actor, ctx(), reason=reason)
        assert info.value.stage == stage
        assert info.value.target == exp.target
        assert info.value.actor == str(actor)
        assert repr(stage) in info.value.reason


def test_unknown_transition_is_refused() -> None:
    c = candidacy_at("applied")
    actor = actor_for(R, c)
    with pytest.raises(InvalidTransition) as info:
        apply_transition(DEFAULT_PIPELINE, c, "teleport", actor, ctx())
    assert (info.value.stage, info.value.target, info.value.actor) == (
        "applied",
        "teleport",
        str(actor),
    )


# --------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stage"), [("confirm_interest", "lead"), ("withdraw", "interview")]
)
def test_candidate_cannot_act_on_someone_elses_candidacy(name: str, stage: str) -> None:
    c = candidacy_at(stage)
    intruder = Actor(C, "per_mallory")
    with pytest.raises(InvalidTransition) as info:
        apply_transition(DEFAULT_PIPELINE, c, name, intruder, ctx())
    assert info.value.stage == stage
    assert info.value.actor == "candidate:per_mallory"
    assert "own" in info.value.reason
    # the owner may
    new, _ = apply_transition(DEFAULT_PIPELINE, c, name, actor_for(C, c), ctx())
    assert new.stage == EXPECTED_TRANSITIONS[name].target


def _fast_track() -> Pipeline:
    """Hire straight from interview, guarded by ``reached_offer``; an offer can be taken back."""
    return Pipeline(
        name="fast_track",
        stages=(
            Stage("lead", "Lead", Milestone.LEAD),
            Stage("interview", "Interview", Milestone.INTERVIEW),
            Stage("offer", "Offer", Milestone.OFFER),
            Stage("hired", "Hired", Milestone.HIRED),
            Stage("archived", "Archived", Milestone.ARCHIVED),
        ),
        transitions=(
            Transition("interview", frozenset({"lead"}), "interview", frozenset({R})),
            Transition("offer", frozenset({"interview"}), "offer", frozenset({R})),
            Transition("renegotiate", frozenset({"offer"}), "interview", frozenset({R})),
            Transition(
                "hire",
                frozenset({"interview", "offer"}),
                "hired",
                frozenset({R}),
                "candidacy.hired",
                guards=("reached_offer",),
            ),
        ),
        initial="lead",
    )


def test_hire_needs_an_offer_first_in_a_custom_pipeline() -> None:
    pipeline = _fast_track()
    c = take(new_lead(pipeline), ("interview",), pipeline)
    actor = actor_for(R, c)
    with pytest.raises(InvalidTransition) as info:
        apply_transition(pipeline, c, "hire", actor, ctx())
    assert (info.value.stage, info.value.target) == ("interview", "hired")
    assert "offer" in info.value.reason
    # once an offer was made, the hire may come from interview again
    c = take(c, ("offer", "renegotiate"), pipeline)
    assert c.stage == "interview"
    assert c.furthest_milestone is Milestone.OFFER
    hired, events = apply_transition(pipeline, c, "hire", actor, ctx())
    assert hired.stage == "hired"
    assert hired.furthest_milestone is Milestone.HIRED
    assert events[0].type == "candidacy.hired"


def test_no_offer_on_an_archived_candidacy() -> None:
    c = candidacy_at("archived")
    with pytest.raises(InvalidTransition) as info:
        apply_transition(DEFAULT_PIPELINE, c, "offer", actor_for(R, c), ctx())
    assert (info.value.stage, info.value.target) == ("archived", "offer")


def test_archive_needs_a_reason() -> None:
    c = candidacy_at("screening")
    actor = actor_for(R, c)
    with pytest.raises(InvalidTransition) as info:
        apply_transition(DEFAULT_PIPELINE, c, "archive", actor, ctx())
    assert (info.value.stage, info.value.target, info.value.actor) == (
        "screening",
        "archived",
        str(actor),
    )
    assert "reason" in info.value.reason


def test_withdraw_always_records_withdrew_and_keeps_the_note() -> None:
    c = candidacy_at("interview")
    me = actor_for(C, c)
    given = ArchiveReason(ArchiveReasonType.WE_DECLINED, "moving abroad")
    new, events = apply_transition(DEFAULT_PIPELINE, c, "withdraw", me, ctx(), reason=given)
    assert new.archive_reason == ArchiveReason(ArchiveReasonType.WITHDREW, "moving abroad")
    assert events[0].data["archive_reason"] == "withdrew"
    assert new.furthest_milestone is Milestone.INTERVIEW


def test_withdrawing_is_not_confirming_interest() -> None:
    c = candidacy_at("lead")
    assert c.interest_confirmed is False
    new, _ = apply_transition(DEFAULT_PIPELINE, c, "withdraw", actor_for(C, c), ctx())
    assert new.stage == "archived"
    assert new.interest_confirmed is False


def test_reopen_clears_the_reason_and_keeps_the_furthest_milestone() -> None:
    c = candidacy_at("archived")
    assert c.archive_reason is not None
    actor = actor_for(R, c)
    new, events = apply_transition(DEFAULT_PIPELINE, c, "reopen", actor, ctx())
    assert new.stage == "applied"
    assert new.archive_reason is None
    assert new.furthest_milestone is Milestone.SCREENING
    assert new.history[-1] == StageChange("archived", "applied", "reopen", actor, NOW)
    assert events[0].type == "candidacy.reopened"
    # and the candidacy can move on again
    assert take(new, ("screen",)).stage == "screening"


@pytest.mark.parametrize("status", [OpeningStatus.CLOSED, OpeningStatus.FILLED])
@pytest.mark.parametrize(
    ("name", "stage", "role"),
    [
        ("confirm_interest", "lead", C),
        ("apply", "lead", R),
        ("reopen", "archived", R),
    ],
)
def test_closed_or_filled_openings_accept_nobody(
    status: OpeningStatus, name: str, stage: str, role: ActorRole
) -> None:
    c = candidacy_at(stage)
    shut = Opening(id=OPENING.id, title=OPENING.title, status=status)
    with pytest.raises(InvalidTransition) as info:
        apply_transition(DEFAULT_PIPELINE, c, name, actor_for(role, c), ctx(opening=shut))
    assert status.value in info.value.reason
    # the same move is fine on an open (or on-hold) opening
    for ok in (OpeningStatus.OPEN, OpeningStatus.ON_HOLD):
        fine = Opening(id=OPENING.id, title=OPENING.title, status=ok)
        new, _ = apply_transition(DEFAULT_PIPELINE, c, name, actor_for(role, c), ctx(opening=fine))
        assert new.stage == "applied"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"stages": (Stage("a", "A", Milestone.LEAD), Stage("a", "A", Milestone.ARCHIVED))},
            "unique",
        ),
        ({"initial": "nowhere"}, "initial"),
        ({"stages": (Stage("lead", "Lead", Milestone.LEAD),), "transitions": ()}, "archived"),
        (
            {"transitions": (Transition("x", frozenset({"lead"}), "mars", frozenset({R})),)},
            "unknown stages",
        ),
        (
            {
                "transitions": (
                    Transition(
                        "x", frozenset({"lead"}), "archived", frozenset({R}), guards=("nope",)
                    ),
                )
            },
            "unknown guard",
        ),
        (
            {
                "transitions": (
                    Transition("x", frozenset({"lead"}), "archived", frozenset({R}), "made.up"),
                )
            },
            "unknown event type",
        ),
        (
            {
                "transitions": (
                    Transition("x", frozenset({"lead"}), "archived", frozenset({R})),
                    Transition("x", frozenset({"lead"}), "archived", frozenset({S})),
                )
            },
            "unique",
        ),
    ],
)
def test_inconsistent_pipelines_are_refused(changes: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "name": "broken",
        "stages": (
            Stage("lead", "Lead", Milestone.LEAD),
            Stage("archived", "A", Milestone.ARCHIVED),
        ),
        "transitions": (),
        "initial": "lead",
    }
    with pytest.raises(ValueError, match=message):
        Pipeline(**{**base, **changes})


# --------------------------------------------------------------------------------------------
# Person-level actions
# --------------------------------------------------------------------------------------------

EXPECTED_ACTIONS: dict[str, frozenset[ActorRole]] = {
    "create_person": frozenset({C, R, S}),
    "update_profile": frozenset({C, R, S}),
    "set_availability": frozenset({C, R}),
    "grant_consent": frozenset({C, R}),
    "withdraw_consent": frozenset({C, R, S}),
    "add_note": frozenset({R}),
    "log_touchpoint": frozenset({R, S}),
    "schedule_follow_up": frozenset({R, S}),
    "assign_owner": frozenset({R, S}),
    "tag": frozenset({R, S}),
    "add_to_pool": frozenset({R, S}),
    "create_opening": frozenset({R, S}),
    "set_opening_status": frozenset({R, S}),
    "create_candidacy": frozenset({C, R, F, S}),
    "refer": frozenset({F, R}),
    "start_employment": frozenset({R, S}),
    "end_employment": frozenset({R, S}),
    "set_internal_moves": frozenset({C, R}),
    "record_self_identification": frozenset({C}),
    "rediscover": frozenset({R, S}),
}


def test_action_roles_match_the_expected_table() -> None:
    assert dict(ACTION_ROLES) == EXPECTED_ACTIONS


ACTION_MATRIX = [(a, role) for a in ACTION_ROLES for role in ActorRole]


@pytest.mark.parametrize(
    ("action", "role"), ACTION_MATRIX, ids=[f"{a}-{r.value}" for a, r in ACTION_MATRIX]
)
def test_action_matrix(action: str, role: ActorRole) -> None:
    actor = Actor(role, PERSON if role is C else ROLE_IDS[role])
    if role in EXPECTED_ACTIONS[action]:
        check_action(action, actor, PERSON)  # no error
        if role is C:
            with pytest.raises(PermissionDenied) as info:
                check_action(action, actor, "per_someone_else")
            assert info.value.action == action
            assert info.value.actor == str(actor)
            assert "themselves" in info.value.reason
        else:
            check_action(action, actor, "per_someone_else")
    else:
        for person in (PERSON, "per_someone_else", None):
            with pytest.raises(PermissionDenied) as info:
                check_action(action, actor, person)
            assert info.value.action == action
            assert info.value.actor == str(actor)


# --------------------------------------------------------------------------------------------
# Through the CRM
# --------------------------------------------------------------------------------------------


def _seed(crm: CRM, recruiter: Actor, pipeline: str = "default") -> tuple[str, str]:
    person = crm.add_person({"name": "Ada Lovelace"}, actor=recruiter)
    opening = crm.add_opening({"title": "Data Engineer", "pipeline": pipeline}, actor=recruiter)
    return person.id, opening.id


def test_crm_moves_a_candidacy_through_the_default_pipeline(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    assert c.stage == "lead"
    steps = [
        ("applied", "apply"),
        ("screening", "screen"),
        ("interview", "interview"),
        ("offer", "offer"),
    ]
    for stage, transition in steps:
        moved = crm.move(c.id, stage, actor=recruiter)
        assert moved.stage == stage
        assert moved.history[-1].transition == transition
        assert crm.get_candidacy(c.id) == moved
        assert moved.furthest_milestone is EXPECTED_STAGES[stage]
    hired = crm.move(c.id, "hired", actor=recruiter)
    assert hired.stage == "hired"
    assert [h.transition for h in hired.history] == [
        "create",
        "apply",
        "screen",
        "interview",
        "offer",
        "hire",
    ]
    types = [e.type for e in crm.timeline(pid) if e.subjects.get("candidacy") == c.id]
    assert types == ["candidacy.created"] + ["candidacy.stage_changed"] * 4 + ["candidacy.hired"]
    assert crm.load(Candidacy, c.id).version == 6


def test_crm_move_without_a_route_is_refused_and_writes_nothing(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    events_before = len(crm.store.events())
    with pytest.raises(InvalidTransition) as info:
        crm.move(c.id, "offer", actor=recruiter)
    assert (info.value.stage, info.value.target, info.value.actor) == (
        "lead",
        "offer",
        str(recruiter),
    )
    assert "applied" in info.value.reason  # says what is possible
    # a referrer has no route anywhere
    referrer = Actor(F, "emp_bob")
    with pytest.raises(InvalidTransition):
        crm.move(c.id, "applied", actor=referrer)
    assert crm.load(Candidacy, c.id).version == 1
    assert len(crm.store.events()) == events_before


def test_crm_no_offer_on_an_archived_candidacy(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter, stage="interview")
    crm.archive(c.id, "we_declined", actor=recruiter)
    with pytest.raises(InvalidTransition) as info:
        crm.move(c.id, "offer", actor=recruiter)
    assert info.value.stage == "archived"
    with pytest.raises(InvalidTransition):
        crm.transition(c.id, "offer", actor=recruiter)
    assert crm.get_candidacy(c.id).stage == "archived"


def test_crm_archive_withdraw_and_reopen(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    me = Actor(C, pid)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    archived = crm.archive(
        c.id, ArchiveReasonType.HIRED_ELSEWHERE, actor=recruiter, note="went to Acme"
    )
    assert archived.stage == "archived"
    assert archived.archive_reason == ArchiveReason(
        ArchiveReasonType.HIRED_ELSEWHERE, "went to Acme"
    )
    reopened = crm.move(c.id, "applied", actor=recruiter)
    assert reopened.history[-1].transition == "reopen"
    assert reopened.archive_reason is None
    # a candidate cannot archive, a recruiter cannot withdraw
    with pytest.raises(InvalidTransition) as info:
        crm.archive(c.id, "other", actor=me)
    assert info.value.actor == str(me)
    with pytest.raises(InvalidTransition):
        crm.withdraw(c.id, actor=recruiter)
    withdrawn = crm.withdraw(c.id, actor=me, note="found something else")
    assert withdrawn.archive_reason == ArchiveReason(
        ArchiveReasonType.WITHDREW, "found something else"
    )
    last = [e for e in crm.timeline(pid) if e.type.startswith("candidacy.")][-1]
    assert last.type == "candidacy.withdrawn"
    assert last.actor == me
    assert last.data["archive_reason"] == "withdrew"
    assert last.data["archive_note"] == "found something else"


def test_crm_bad_archive_reason_type_is_a_validation_error(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    with pytest.raises(relcrm.ValidationError):
        crm.archive(c.id, "because", actor=recruiter)
    assert crm.get_candidacy(c.id).stage == "lead"


def test_crm_confirm_interest(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    other = crm.add_person({"name": "Grace Hopper"}, actor=recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    assert c.interest_confirmed is False
    with pytest.raises(InvalidTransition):
        crm.confirm_interest(c.id, actor=Actor(C, other.id))
    with pytest.raises(InvalidTransition):
        crm.confirm_interest(c.id, actor=recruiter)
    confirmed = crm.confirm_interest(c.id, actor=Actor(C, pid))
    assert confirmed.stage == "applied"
    assert confirmed.interest_confirmed is True
    assert confirmed.history[-1].actor == Actor(C, pid)
    assert crm.timeline(pid)[-1].type == "candidacy.interest_confirmed"
    with pytest.raises(InvalidTransition) as info:  # only from lead
        crm.confirm_interest(c.id, actor=Actor(C, pid))
    assert info.value.stage == "applied"


def test_crm_expected_version_on_transitions(crm: CRM, recruiter: Actor) -> None:
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    v = crm.load(Candidacy, c.id).version
    crm.transition(c.id, "apply", actor=recruiter, expected_version=v)
    with pytest.raises(relcrm.ConcurrencyConflict) as info:
        crm.transition(c.id, "screen", actor=recruiter, expected_version=v)
    assert (info.value.expected, info.value.actual) == (v, v + 1)
    assert crm.get_candidacy(c.id).stage == "applied"


# ---- plugins


PANEL_PIPELINE = Pipeline(
    name="custom",
    stages=(
        Stage("sourced", "Sourced", Milestone.LEAD),
        Stage(
            "phone_screen",
            "Phone screen",
            Milestone.SCREENING,
            candidate_label="Getting to know you",
        ),
        Stage("panel", "Panel", Milestone.INTERVIEW),
        Stage("offer", "Offer", Milestone.OFFER),
        Stage("hired", "Hired", Milestone.HIRED),
        Stage("rejected", "Rejected", Milestone.ARCHIVED),
    ),
    transitions=(
        Transition("call", frozenset({"sourced"}), "phone_screen", frozenset({R, S})),
        Transition("panel", frozenset({"phone_screen"}), "panel", frozenset({R})),
        Transition("offer", frozenset({"panel"}), "offer", frozenset({R})),
        Transition(
            "hire",
            frozenset({"offer"}),
            "hired",
            frozenset({R}),
            "candidacy.hired",
            guards=("reached_offer",),
        ),
        Transition(
            "reject",
            frozenset({"sourced", "phone_screen", "panel", "offer"}),
            "rejected",
            frozenset({R}),
            "candidacy.archived",
            requires_reason=True,
        ),
        Transition(
            "withdraw",
            frozenset({"sourced", "phone_screen", "panel", "offer"}),
            "rejected",
            frozenset({C}),
            "candidacy.withdrawn",
            guards=("own_candidacy",),
            archive_reason=ArchiveReasonType.WITHDREW,
        ),
    ),
    initial="sourced",
)


class PanelPipelinePlugin:
    @relcrm.hookimpl
    def relcrm_register_pipelines(self, register: Any) -> None:
        register(PANEL_PIPELINE)


def test_custom_pipeline_registered_through_the_hook(open_crm: Any, recruiter: Actor) -> None:
    crm = open_crm(plugins=[PanelPipelinePlugin()])
    assert crm.pipeline("custom") is PANEL_PIPELINE
    assert crm.pipeline("default") is DEFAULT_PIPELINE
    pid, oid = _seed(crm, recruiter, pipeline="custom")
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    assert (c.pipeline, c.stage) == ("custom", "sourced")
    # default-pipeline stage names mean nothing here
    with pytest.raises(InvalidTransition):
        crm.move(c.id, "screening", actor=recruiter)
    c = crm.move(c.id, "phone_screen", actor=recruiter)
    assert c.history[-1].transition == "call"
    assert c.furthest_milestone is Milestone.SCREENING
    (view,) = crm.candidate_view(pid).candidacies
    assert view.stage == "Getting to know you"
    assert view.actions == ("withdraw",)
    c = crm.move(c.id, "panel", actor=recruiter)
    c = crm.move(
        c.id, "rejected", actor=recruiter, reason=ArchiveReason(ArchiveReasonType.WE_DECLINED)
    )
    assert c.archive_reason == ArchiveReason(ArchiveReasonType.WE_DECLINED)
    last = [e for e in crm.timeline(pid) if e.type.startswith("candidacy.")][-1]
    assert (last.type, last.data["to_stage"]) == ("candidacy.archived", "rejected")
    assert crm.relationship(pid).stage is relcrm.RelationshipStage.ENGAGED


def test_custom_pipeline_missing_without_the_plugin(crm: CRM, recruiter: Actor) -> None:
    with pytest.raises(relcrm.ValidationError) as info:
        crm.add_opening({"title": "X", "pipeline": "custom"}, actor=recruiter)
    assert any("$.pipeline" in e for e in info.value.errors)
    assert crm.openings() == []


def test_registering_a_second_default_pipeline_is_a_plugin_error(open_crm: Any) -> None:
    class Clash:
        @relcrm.hookimpl
        def relcrm_register_pipelines(self, register: Any) -> None:
            register(DEFAULT_PIPELINE)

    with pytest.raises(PluginError, match="default"):
        open_crm(plugins=[Clash()])


class BudgetFreeze:
    """Vetoes every offer."""

    __name__ = "budget_freeze"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    @relcrm.hookimpl
    def relcrm_before_transition(
        self, candidacy: Candidacy, transition: Transition, actor: Actor
    ) -> str | None:
        self.asked.append((candidacy.stage, transition.name, str(actor)))
        return "budget freeze until Q3" if transition.name == "offer" else None


def _snapshot(crm: CRM, cid: str) -> tuple[Any, ...]:
    return (
        crm.load(Candidacy, cid),
        len(crm.store.events()),
        len(crm.outbox(None)),
        len(crm.notifier("memory").sent),
    )


def test_before_transition_plugin_vetoes_and_nothing_is_written(
    open_crm: Any, recruiter: Actor
) -> None:
    plugin = BudgetFreeze()
    crm = open_crm(plugins=[plugin])
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter, stage="interview")
    before = _snapshot(crm, c.id)
    with pytest.raises(TransitionVetoed) as info:
        crm.move(c.id, "offer", actor=recruiter)
    err = info.value
    assert isinstance(err, InvalidTransition)
    assert err.plugin == "budget_freeze"
    assert crm.plugin_manager.get_plugin("budget_freeze") is plugin
    assert (err.stage, err.target, err.actor) == ("interview", "offer", str(recruiter))
    assert "budget freeze until Q3" in str(err)
    assert "budget_freeze" in str(err)
    assert _snapshot(crm, c.id) == before
    assert plugin.asked == [("interview", "offer", str(recruiter))]
    # other transitions are allowed by the same plugin
    archived = crm.archive(c.id, "position_closed", actor=recruiter)
    assert archived.stage == "archived"
    assert plugin.asked[-1] == ("interview", "archive", str(recruiter))


def test_before_transition_is_not_asked_about_invalid_moves(
    open_crm: Any, recruiter: Actor
) -> None:
    plugin = BudgetFreeze()
    crm = open_crm(plugins=[plugin])
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    with pytest.raises(InvalidTransition) as info:
        crm.transition(c.id, "offer", actor=recruiter)
    assert not isinstance(info.value, TransitionVetoed)
    assert plugin.asked == []


class Crashes:
    __name__ = "crashy"

    @relcrm.hookimpl
    def relcrm_before_transition(self, transition: Transition) -> str | None:
        raise KeyError("oops")


class RefusesTyped:
    __name__ = "typed_refusal"

    @relcrm.hookimpl
    def relcrm_before_transition(self, actor: Actor) -> str | None:
        raise PermissionDenied(action="transition", actor=str(actor), reason="not today")


def test_before_transition_plugin_crash_is_a_plugin_error(open_crm: Any, recruiter: Actor) -> None:
    crm = open_crm(plugins=[Crashes()])
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    before = _snapshot(crm, c.id)
    with pytest.raises(PluginError) as info:
        crm.move(c.id, "applied", actor=recruiter)
    assert info.value.plugin == "crashy"
    assert "KeyError" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)
    assert _snapshot(crm, c.id) == before


def test_before_transition_relcrm_error_refuses_as_is(open_crm: Any, recruiter: Actor) -> None:
    crm = open_crm(plugins=[RefusesTyped()])
    pid, oid = _seed(crm, recruiter)
    c = crm.add_candidacy(pid, oid, actor=recruiter)
    before = _snapshot(crm, c.id)
    with pytest.raises(PermissionDenied, match="not today"):
        crm.move(c.id, "applied", actor=recruiter)
    assert _snapshot(crm, c.id) == before
