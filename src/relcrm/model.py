"""The recruiting vocabulary: people, openings, candidacies, relationships and what surrounds them.

Every type is an immutable attrs class; a change is a new object made with :func:`attrs.evolve`
(the CRM does that for you). Validators guard only invariants (non-empty ids, timezone-aware times,
normalised skills); shape checks at the boundary are the converter's job
(:mod:`relcrm.serialization`).
"""

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import attrs

from ._validators import InvalidField, aware, non_empty

__all__ = [
    "Actor",
    "ActorRole",
    "ArchiveReason",
    "ArchiveReasonType",
    "Availability",
    "Candidacy",
    "Channel",
    "ConsentAction",
    "ConsentRecord",
    "ContactKind",
    "ContactPoint",
    "Direction",
    "Education",
    "EmploymentEpisode",
    "Experience",
    "FollowUp",
    "LawfulBasis",
    "Link",
    "Location",
    "Milestone",
    "Note",
    "Opening",
    "OpeningStatus",
    "Person",
    "Preferences",
    "Referral",
    "ReferralStatus",
    "Relationship",
    "RelationshipStage",
    "RemotePolicy",
    "SelfIdentification",
    "Seniority",
    "StageChange",
    "TalentPool",
    "TeamMember",
    "Touchpoint",
    "normalise_skill",
    "normalise_tag",
]


# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------


class ActorRole(enum.StrEnum):
    """Who takes an action. A referrer is usually an employee recommending someone."""

    CANDIDATE = "candidate"
    RECRUITER = "recruiter"
    REFERRER = "referrer"
    SYSTEM = "system"


class Availability(enum.StrEnum):
    """What a person says about being approached."""

    OPEN = "open"
    NOT_NOW = "not_now"  # "check back with me later": pair with a check-back date
    NOT_LOOKING = "not_looking"
    DO_NOT_CONTACT = "do_not_contact"


class Milestone(enum.StrEnum):
    """Canonical pipeline milestones that every custom stage maps onto."""

    LEAD = "lead"
    APPLIED = "applied"
    SCREENING = "screening"
    INTERVIEW = "interview"
    OFFER = "offer"
    HIRED = "hired"
    ARCHIVED = "archived"

    @property
    def rank(self) -> int:
        """Order of progress; ``archived`` ranks lowest because it says nothing of progress."""
        return _MILESTONE_RANK[self]


_MILESTONE_RANK = {
    Milestone.ARCHIVED: -1,
    Milestone.LEAD: 0,
    Milestone.APPLIED: 1,
    Milestone.SCREENING: 2,
    Milestone.INTERVIEW: 3,
    Milestone.OFFER: 4,
    Milestone.HIRED: 5,
}


class ArchiveReasonType(enum.StrEnum):
    """Why a candidacy ended without a hire. The type is shared knowledge; the note is internal."""

    WE_DECLINED = "we_declined"
    THEY_DECLINED = "they_declined"
    WITHDREW = "withdrew"
    HIRED_ELSEWHERE = "hired_elsewhere"
    NOT_ELIGIBLE = "not_eligible"
    POSITION_CLOSED = "position_closed"
    UNRESPONSIVE = "unresponsive"
    OTHER = "other"


class OpeningStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    ON_HOLD = "on_hold"
    FILLED = "filled"
    CLOSED = "closed"


class RemotePolicy(enum.StrEnum):
    ONSITE = "onsite"
    HYBRID = "hybrid"
    REMOTE = "remote"


class Seniority(enum.StrEnum):
    INTERN = "intern"
    JUNIOR = "junior"
    MID = "mid"
    SENIOR = "senior"
    LEAD = "lead"
    EXECUTIVE = "executive"


class RelationshipStage(enum.StrEnum):
    """Where the person stands with the organisation, across every opening."""

    PROSPECT = "prospect"  # known, never in a process
    CANDIDATE = "candidate"  # in at least one active process
    ENGAGED = "engaged"  # past processes, kept warm
    EMPLOYEE = "employee"
    ALUMNI = "alumni"


class Channel(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    MEETING = "meeting"
    SOCIAL = "social"
    EVENT = "event"
    OTHER = "other"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ReferralStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    IN_PROCESS = "in_process"
    HIRED = "hired"
    CLOSED = "closed"


class ConsentAction(enum.StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class LawfulBasis(enum.StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"


class ContactKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    OTHER = "other"


# --------------------------------------------------------------------------------------------
# Validators and normalisers
# --------------------------------------------------------------------------------------------


_SPACES = re.compile(r"\s+")


def normalise_skill(skill: str) -> str:
    """Lower-case, trim and collapse whitespace: ``" Big  Data"`` -> ``"big data"``."""
    return _SPACES.sub(" ", skill.strip().casefold())


def normalise_tag(tag: str) -> str:
    """Tags are compared case-insensitively: ``" Silver Medalist "`` -> ``"silver medalist"``."""
    return normalise_skill(tag)


def _normalised(values: Iterable[str], normalise: Any, field: str) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for i, v in enumerate(values):
        if not isinstance(v, str):  # the converter checks documents; this guards direct use
            raise InvalidField(field, f"expected a string, got {type(v).__name__}", f"[{i}]")
        n = normalise(v)
        if n:
            out[n] = None
    return tuple(out)


def _skills(values: Iterable[str]) -> tuple[str, ...]:
    return _normalised(values, normalise_skill, "skills")


def _tags(values: Iterable[str]) -> tuple[str, ...]:
    return _normalised(values, normalise_tag, "tags")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------


@attrs.frozen
class Actor:
    """Who did something: a role and the id of the person or user in that role."""

    role: ActorRole
    id: str = attrs.field(validator=non_empty)

    def __str__(self) -> str:
        return f"{self.role.value}:{self.id}"


@attrs.frozen
class ContactPoint:
    value: str = attrs.field(validator=non_empty)
    kind: ContactKind = ContactKind.EMAIL


@attrs.frozen
class Location:
    city: str = ""
    region: str = ""
    country_code: str = ""  # ISO 3166-1 alpha-2 where known


@attrs.frozen
class Link:
    url: str = attrs.field(validator=non_empty)
    label: str = ""


@attrs.frozen
class Experience:
    title: str
    organisation: str = ""
    start: date | None = None
    end: date | None = None  # None: ongoing
    summary: str = ""
    highlights: tuple[str, ...] = ()


@attrs.frozen
class Education:
    institution: str
    area: str = ""
    study_type: str = ""
    start: date | None = None
    end: date | None = None


@attrs.frozen
class Preferences:
    """What the person wants. ``availability`` and ``check_back_on`` change through
    :meth:`relcrm.CRM.set_availability` so the change is an event both sides see."""

    roles: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    locations: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    remote: RemotePolicy | None = None
    availability: Availability = Availability.OPEN
    check_back_on: date | None = None
    hear_about_openings: bool = False


@attrs.frozen
class Person:
    """A candidate profile. It stays in the pool after every process it takes part in.

    ``owner_id``, ``tags`` and ``sources`` are internal; the rest is the person's own profile.
    """

    id: str = attrs.field(validator=non_empty)
    name: str = attrs.field(validator=non_empty)
    contacts: tuple[ContactPoint, ...] = ()
    location: Location | None = None
    headline: str = ""
    summary: str = ""
    skills: tuple[str, ...] = attrs.field(default=(), converter=_skills)
    experience: tuple[Experience, ...] = ()
    education: tuple[Education, ...] = ()
    links: tuple[Link, ...] = ()
    preferences: Preferences = Preferences()
    sources: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tags)
    owner_id: str | None = None
    created_at: datetime | None = attrs.field(default=None, validator=aware)

    @property
    def email(self) -> str | None:
        """The first email contact point, if any."""
        for c in self.contacts:
            if c.kind is ContactKind.EMAIL:
                return c.value
        return None


#: Profile fields a candidate may change about themselves.
CANDIDATE_EDITABLE_FIELDS = frozenset(
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

#: Profile fields only the organisation sees and changes.
INTERNAL_PERSON_FIELDS = frozenset({"sources", "tags", "owner_id"})


@attrs.frozen
class SelfIdentification:
    """Voluntary demographic self-identification, stored apart from the profile.

    It is never read by matching, never shown in timelines and never sent in notifications.
    """

    person_id: str = attrs.field(validator=non_empty)
    answers: Mapping[str, str] = attrs.field(factory=dict)
    recorded_at: datetime | None = attrs.field(default=None, validator=aware)


# --------------------------------------------------------------------------------------------
# Openings and candidacies
# --------------------------------------------------------------------------------------------


@attrs.frozen
class TeamMember:
    user_id: str = attrs.field(validator=non_empty)
    role: str = "interviewer"  # e.g. hiring_manager, interviewer, coordinator


@attrs.frozen
class Opening:
    """A requisition: a role the organisation wants to fill."""

    id: str = attrs.field(validator=non_empty)
    title: str = attrs.field(validator=non_empty)
    description: str = ""
    required_skills: tuple[str, ...] = attrs.field(default=(), converter=_skills)
    nice_to_have_skills: tuple[str, ...] = attrs.field(default=(), converter=_skills)
    responsibilities: tuple[str, ...] = ()
    qualifications: tuple[str, ...] = ()
    seniority: Seniority | None = None
    location: Location | None = None
    remote: RemotePolicy = RemotePolicy.ONSITE
    status: OpeningStatus = OpeningStatus.OPEN
    owner_id: str | None = None  # the recruiter responsible
    hiring_team: tuple[TeamMember, ...] = ()
    pipeline: str = "default"
    created_at: datetime | None = attrs.field(default=None, validator=aware)


@attrs.frozen
class ArchiveReason:
    """Why a candidacy was archived. ``note`` is internal and never shown to the candidate."""

    type: ArchiveReasonType
    note: str = ""


@attrs.frozen
class StageChange:
    """One step in a candidacy's history."""

    from_stage: str | None
    to_stage: str
    transition: str
    actor: Actor
    at: datetime = attrs.field(validator=aware)


@attrs.frozen
class Candidacy:
    """A person in the process for one opening."""

    id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    opening_id: str = attrs.field(validator=non_empty)
    stage: str = attrs.field(validator=non_empty)
    pipeline: str = "default"
    history: tuple[StageChange, ...] = ()
    archive_reason: ArchiveReason | None = None
    source: str = ""
    referrer_id: str | None = None
    furthest_milestone: Milestone = Milestone.LEAD
    interest_confirmed: bool = False
    created_at: datetime | None = attrs.field(default=None, validator=aware)


# --------------------------------------------------------------------------------------------
# The relationship and what happens in it
# --------------------------------------------------------------------------------------------


@attrs.frozen
class FollowUp:
    due: datetime = attrs.field(validator=aware)
    owner_id: str = attrs.field(validator=non_empty)
    note: str = ""


#: Days after which the warmth contributed by a touchpoint has halved.
WARMTH_HALF_LIFE_DAYS = 60.0


@attrs.frozen
class Relationship:
    """The person's relationship with the organisation; it outlives any single opening.

    Warmth is not stored: it is computed from the touchpoint inputs and decays with silence
    (see :meth:`warmth`). Notes live in their own records and are internal.
    """

    person_id: str = attrs.field(validator=non_empty)
    organisation: str = "default"
    stage: RelationshipStage = RelationshipStage.PROSPECT
    owner_ids: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    pools: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    touchpoint_count: int = 0
    last_touch_at: datetime | None = attrs.field(default=None, validator=aware)
    last_inbound_at: datetime | None = attrs.field(default=None, validator=aware)
    next_follow_up: FollowUp | None = None

    def warmth(self, now: datetime) -> float:
        """A number in [0, 1]: 1 just after contact, halving every ``WARMTH_HALF_LIFE_DAYS`` of
        silence; contact the person started (inbound) counts for 40 %."""

        def decay(at: datetime | None) -> float:
            if at is None:
                return 0.0
            days = max(0.0, (now - at).total_seconds() / 86400.0)
            return float(0.5 ** (days / WARMTH_HALF_LIFE_DAYS))

        return 0.6 * decay(self.last_touch_at) + 0.4 * decay(self.last_inbound_at)


@attrs.frozen
class Touchpoint:
    """One contact between the organisation and the person (internal)."""

    id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    channel: Channel
    direction: Direction
    actor: Actor
    occurred_at: datetime = attrs.field(validator=aware)
    summary: str = ""


@attrs.frozen
class Note:
    """An internal note about a person. Never visible to the candidate."""

    id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    author: Actor
    text: str = attrs.field(validator=non_empty)
    created_at: datetime = attrs.field(validator=aware)


@attrs.frozen
class TalentPool:
    """A named group of people kept warm together (e.g. "silver medalists: data")."""

    id: str = attrs.field(validator=non_empty)
    name: str = attrs.field(validator=non_empty)
    description: str = ""
    owner_id: str | None = None


@attrs.frozen
class Referral:
    """An employee (or anyone) recommending a person, optionally for one opening."""

    id: str = attrs.field(validator=non_empty)
    referrer_id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    opening_id: str | None = None
    candidacy_id: str | None = None
    status: ReferralStatus = ReferralStatus.SUBMITTED
    note: str = ""
    created_at: datetime | None = attrs.field(default=None, validator=aware)


@attrs.frozen
class EmploymentEpisode:
    """A stretch of employment: a hire becomes an employee and, on leaving, an alumnus."""

    id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    title: str = attrs.field(validator=non_empty)
    started_on: date
    ended_on: date | None = None
    candidacy_id: str | None = None
    open_to_internal_moves: bool = False
    departure_reason: str = ""  # internal
    rehire_eligible: bool | None = None  # internal

    @property
    def current(self) -> bool:
        return self.ended_on is None


@attrs.frozen
class ConsentRecord:
    """One entry of a person's append-only consent ledger.

    The current state for a purpose is the newest entry for it; a grant past ``expires_at`` no
    longer counts.
    """

    id: str = attrs.field(validator=non_empty)
    person_id: str = attrs.field(validator=non_empty)
    purpose: str = attrs.field(validator=non_empty)
    action: ConsentAction
    lawful_basis: LawfulBasis
    recorded_at: datetime = attrs.field(validator=aware)
    actor: Actor
    expires_at: datetime | None = attrs.field(default=None, validator=aware)

    def in_force(self, now: datetime) -> bool:
        """True when this entry grants the purpose at ``now``."""
        if self.action is not ConsentAction.GRANTED:
            return False
        return self.expires_at is None or now < self.expires_at
