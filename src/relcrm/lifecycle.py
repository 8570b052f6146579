"""The participatory lifecycle: pipelines as data, and pure transition functions.

A :class:`Pipeline` maps its own stages onto canonical :class:`~relcrm.model.Milestone` s and lists
the :class:`Transition` s between them: which actor roles may take each one, which guards must
hold, and which event it emits. :func:`apply_transition` is a pure function
``(candidacy, transition, actor, context) -> (new candidacy, events)`` that raises
:class:`~relcrm.InvalidTransition` when the pipeline says no.

Person-level actions (availability, consent, profile, notes, touchpoints...) are checked against
:data:`ACTION_ROLES` by :func:`check_action`: candidates act only for themselves.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from .events import EVENT_TYPES, Event, Visibility
from .exceptions import InvalidTransition, PermissionDenied
from .model import (
    Actor,
    ActorRole,
    ArchiveReason,
    ArchiveReasonType,
    Candidacy,
    Milestone,
    Opening,
    StageChange,
)

__all__ = [
    "ACTION_ROLES",
    "DEFAULT_PIPELINE",
    "GUARDS",
    "Guard",
    "Pipeline",
    "Stage",
    "Transition",
    "TransitionContext",
    "apply_transition",
    "check_action",
]

_ROLES = ActorRole


@attrs.frozen
class Stage:
    """A pipeline stage. ``candidate_label`` is what the candidate sees instead of ``label``."""

    id: str
    label: str
    milestone: Milestone
    candidate_label: str = ""

    @property
    def shown_to_candidate(self) -> str:
        return self.candidate_label or _CANDIDATE_LABELS[self.milestone]


_CANDIDATE_LABELS = {
    Milestone.LEAD: "Invited",
    Milestone.APPLIED: "Application received",
    Milestone.SCREENING: "Under review",
    Milestone.INTERVIEW: "Interviewing",
    Milestone.OFFER: "Offer",
    Milestone.HIRED: "Hired",
    Milestone.ARCHIVED: "Closed",
}


@attrs.frozen
class Transition:
    """A move the pipeline allows.

    ``sources`` are the stage ids it starts from; ``roles`` the actor roles that may take it;
    ``guards`` names of checks in :data:`GUARDS`; ``event_type`` the event it emits.
    ``archive_reason`` fixes the reason type (withdrawing always means ``withdrew``);
    ``requires_reason`` makes the caller give one.
    """

    name: str
    sources: frozenset[str]
    target: str
    roles: frozenset[ActorRole]
    event_type: str = "candidacy.stage_changed"
    guards: tuple[str, ...] = ()
    requires_reason: bool = False
    archive_reason: ArchiveReasonType | None = None


@attrs.frozen
class TransitionContext:
    """What a transition may look at besides the candidacy: the opening, the time, and how to
    name new events."""

    now: datetime
    new_id: Callable[[str], str]
    opening: Opening | None = None
    correlation_id: str | None = None


Guard = Callable[[Candidacy, "Pipeline", Transition, Actor, TransitionContext], str | None]
"""A guard returns ``None`` when the transition may go ahead, else the reason it may not."""


def _own_candidacy(
    c: Candidacy, p: "Pipeline", t: Transition, actor: Actor, ctx: TransitionContext
) -> str | None:
    if actor.role is ActorRole.CANDIDATE and actor.id != c.person_id:
        return "a candidate can act only on their own candidacies"
    return None


def _reached_offer(
    c: Candidacy, p: "Pipeline", t: Transition, actor: Actor, ctx: TransitionContext
) -> str | None:
    if c.furthest_milestone.rank < Milestone.OFFER.rank:
        return "a hire needs an offer first"
    return None


def _opening_accepts(
    c: Candidacy, p: "Pipeline", t: Transition, actor: Actor, ctx: TransitionContext
) -> str | None:
    if ctx.opening is not None and ctx.opening.status.value in ("closed", "filled"):
        return f"the opening is {ctx.opening.status.value}"
    return None


#: Named guards that pipelines refer to.
GUARDS: dict[str, Guard] = {
    "own_candidacy": _own_candidacy,
    "reached_offer": _reached_offer,
    "opening_accepts": _opening_accepts,
}


@attrs.frozen
class Pipeline:
    """Stages and transitions, checked for consistency when built."""

    name: str
    stages: tuple[Stage, ...]
    transitions: tuple[Transition, ...]
    initial: str

    def __attrs_post_init__(self) -> None:
        ids = [s.id for s in self.stages]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pipeline {self.name!r}: stage ids must be unique")
        known = set(ids)
        if self.initial not in known:
            raise ValueError(f"pipeline {self.name!r}: unknown initial stage {self.initial!r}")
        if not any(s.milestone is Milestone.ARCHIVED for s in self.stages):
            raise ValueError(f"pipeline {self.name!r}: needs a stage mapped to 'archived'")
        names = [t.name for t in self.transitions]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name!r}: transition names must be unique")
        for t in self.transitions:
            unknown = (t.sources | {t.target}) - known
            if unknown:
                raise ValueError(
                    f"pipeline {self.name!r}: transition {t.name!r} names unknown stages "
                    f"{sorted(unknown)}"
                )
            for g in t.guards:
                if g not in GUARDS:
                    raise ValueError(f"pipeline {self.name!r}: unknown guard {g!r}")
            if t.event_type not in EVENT_TYPES:
                raise ValueError(f"pipeline {self.name!r}: unknown event type {t.event_type!r}")

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    def transition(self, name: str) -> Transition:
        for t in self.transitions:
            if t.name == name:
                return t
        raise KeyError(name)

    def transitions_from(self, stage_id: str, role: ActorRole | None = None) -> list[Transition]:
        """Transitions leaving ``stage_id``, optionally only those ``role`` may take."""
        return [
            t
            for t in self.transitions
            if stage_id in t.sources and (role is None or role in t.roles)
        ]

    def find_move(self, stage_id: str, target: str, role: ActorRole) -> Transition | None:
        """The transition from ``stage_id`` to ``target`` that ``role`` may take, if any."""
        for t in self.transitions_from(stage_id, role):
            if t.target == target:
                return t
        return None


_ACTIVE = frozenset({"lead", "applied", "screening", "interview", "offer"})
_R = frozenset({_ROLES.RECRUITER})
_RS = frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM})

#: The pipeline every CRM knows without configuration.
DEFAULT_PIPELINE = Pipeline(
    name="default",
    stages=(
        Stage("lead", "Lead", Milestone.LEAD),
        Stage("applied", "Applied", Milestone.APPLIED),
        Stage("screening", "Screening", Milestone.SCREENING),
        Stage("interview", "Interview", Milestone.INTERVIEW),
        Stage("offer", "Offer", Milestone.OFFER),
        Stage("hired", "Hired", Milestone.HIRED),
        Stage("archived", "Archived", Milestone.ARCHIVED),
    ),
    transitions=(
        Transition(
            "confirm_interest",
            frozenset({"lead"}),
            "applied",
            frozenset({_ROLES.CANDIDATE}),
            "candidacy.interest_confirmed",
            guards=("own_candidacy", "opening_accepts"),
        ),
        Transition("apply", frozenset({"lead"}), "applied", _RS, guards=("opening_accepts",)),
        Transition("screen", frozenset({"applied"}), "screening", _RS),
        Transition("interview", frozenset({"screening"}), "interview", _R),
        Transition("offer", frozenset({"interview"}), "offer", _R),
        Transition(
            "hire",
            frozenset({"offer"}),
            "hired",
            _R,
            "candidacy.hired",
            guards=("reached_offer",),
        ),
        Transition("archive", _ACTIVE, "archived", _RS, "candidacy.archived", requires_reason=True),
        Transition(
            "withdraw",
            _ACTIVE,
            "archived",
            frozenset({_ROLES.CANDIDATE}),
            "candidacy.withdrawn",
            guards=("own_candidacy",),
            archive_reason=ArchiveReasonType.WITHDREW,
        ),
        Transition(
            "reopen",
            frozenset({"archived"}),
            "applied",
            _R,
            "candidacy.reopened",
            guards=("opening_accepts",),
        ),
    ),
    initial="lead",
)


def apply_transition(
    pipeline: Pipeline,
    candidacy: Candidacy,
    transition_name: str,
    actor: Actor,
    context: TransitionContext,
    *,
    reason: ArchiveReason | None = None,
) -> tuple[Candidacy, list[Event]]:
    """Take ``transition_name`` on ``candidacy`` as ``actor``.

    Returns the new candidacy and the events to append, or raises
    :class:`~relcrm.InvalidTransition` naming the stage, the target and the actor.
    """
    stage = candidacy.stage
    try:
        t = pipeline.transition(transition_name)
    except KeyError:
        raise InvalidTransition(
            stage=stage,
            target=transition_name,
            actor=str(actor),
            reason=f"pipeline {pipeline.name!r} has no transition {transition_name!r}",
        ) from None

    def refuse(why: str) -> InvalidTransition:
        return InvalidTransition(stage=stage, target=t.target, actor=str(actor), reason=why)

    if actor.role not in t.roles:
        allowed = ", ".join(sorted(r.value for r in t.roles))
        raise refuse(f"{t.name!r} may be taken only by: {allowed}")
    if stage not in t.sources:
        raise refuse(f"{t.name!r} does not start from stage {stage!r}")
    for guard_name in t.guards:
        why = GUARDS[guard_name](candidacy, pipeline, t, actor, context)
        if why is not None:
            raise refuse(why)
    if t.archive_reason is not None:
        reason = ArchiveReason(t.archive_reason, reason.note if reason else "")
    elif t.requires_reason and reason is None:
        raise refuse(f"{t.name!r} needs an archive reason")

    target = pipeline.stage(t.target)
    milestone = target.milestone
    furthest = (
        milestone
        if milestone.rank > candidacy.furthest_milestone.rank
        else candidacy.furthest_milestone
    )
    change = StageChange(stage, t.target, t.name, actor, context.now)
    new = attrs.evolve(
        candidacy,
        stage=t.target,
        history=(*candidacy.history, change),
        furthest_milestone=furthest,
        archive_reason=reason if milestone is Milestone.ARCHIVED else None,
        # a candidate moving forward shows interest; a candidate withdrawing does not
        interest_confirmed=candidacy.interest_confirmed
        or (actor.role is ActorRole.CANDIDATE and milestone is not Milestone.ARCHIVED),
    )
    data: dict[str, Any] = {
        **candidacy_data(new, pipeline, context.opening),
        "transition": t.name,
        "from_stage": stage,
        "to_stage": t.target,
        "milestone": milestone.value,
    }
    if reason is not None and milestone is Milestone.ARCHIVED:
        data["archive_reason"] = reason.type.value
        data["archive_note"] = reason.note
    event = make_event(context, t.event_type, actor, candidacy_subjects(new), data)
    return new, [event]


def candidacy_subjects(c: Candidacy) -> dict[str, str]:
    return {"person": c.person_id, "candidacy": c.id, "opening": c.opening_id}


def candidacy_data(c: Candidacy, pipeline: Pipeline, opening: Opening | None) -> dict[str, Any]:
    """The fields every candidacy event carries (the candidate-facing ones among them)."""
    data: dict[str, Any] = {
        "opening_id": c.opening_id,
        "opening_title": opening.title if opening else "",
        "stage": c.stage,
        "candidate_stage": pipeline.stage(c.stage).shown_to_candidate,
    }
    if c.referrer_id is not None:
        data["referrer_id"] = c.referrer_id
    return data


def make_event(
    context: TransitionContext,
    type: str,
    actor: Actor,
    subjects: Mapping[str, str],
    data: Mapping[str, Any],
    visibility: Visibility | None = None,
) -> Event:
    """An event stamped from ``context``, with the catalogue's visibility unless given."""
    spec = EVENT_TYPES.get(type)
    vis = visibility or (spec.visibility if spec else Visibility.INTERNAL)
    return Event(
        id=context.new_id("evt"),
        type=type,
        occurred_at=context.now,
        actor=actor,
        visibility=vis,
        subjects=dict(subjects),
        data=dict(data),
        correlation_id=context.correlation_id,
    )


#: Person-level actions and the actor roles that may take them. Candidates act only for
#: themselves (checked by :func:`check_action`).
ACTION_ROLES: dict[str, frozenset[ActorRole]] = {
    "create_person": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER, _ROLES.SYSTEM}),
    "update_profile": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER, _ROLES.SYSTEM}),
    "set_availability": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER}),
    "grant_consent": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER}),
    "withdraw_consent": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER, _ROLES.SYSTEM}),
    "add_note": frozenset({_ROLES.RECRUITER}),
    "log_touchpoint": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "schedule_follow_up": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "assign_owner": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "tag": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "add_to_pool": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "create_opening": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "set_opening_status": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "create_candidacy": frozenset(
        {_ROLES.CANDIDATE, _ROLES.RECRUITER, _ROLES.REFERRER, _ROLES.SYSTEM}
    ),
    "refer": frozenset({_ROLES.REFERRER, _ROLES.RECRUITER}),
    "start_employment": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "end_employment": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
    "set_internal_moves": frozenset({_ROLES.CANDIDATE, _ROLES.RECRUITER}),
    "record_self_identification": frozenset({_ROLES.CANDIDATE}),
    "rediscover": frozenset({_ROLES.RECRUITER, _ROLES.SYSTEM}),
}


def check_action(action: str, actor: Actor, person_id: str | None) -> None:
    """Raise :class:`~relcrm.PermissionDenied` unless ``actor`` may take ``action`` on the
    person ``person_id``."""
    roles = ACTION_ROLES[action]
    if actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise PermissionDenied(
            action=action, actor=str(actor), reason=f"only {allowed} may do this"
        )
    if actor.role is ActorRole.CANDIDATE and person_id is not None and actor.id != person_id:
        raise PermissionDenied(
            action=action, actor=str(actor), reason="a candidate can act only for themselves"
        )
