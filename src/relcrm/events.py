"""Events: the immutable record of every change, and who may see what of it.

Every command appends one or more :class:`Event` to the event log in the same transaction as the
state change. An event's ``visibility`` says whether the candidate it concerns may see it at all;
the catalogue (:data:`EVENT_TYPES`) says *which fields* of ``data`` each audience sees, so that one
event can tell the recruiter why a candidacy was archived while telling the candidate only that it
was closed. Unknown event types (from plugins) show candidates nothing of their data unless
registered with :func:`register_event_type`.
"""

import enum
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ._validators import InvalidField, aware
from .model import Actor, ActorRole

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Event",
    "EventType",
    "Visibility",
    "describe_event",
    "project_event",
    "register_event_type",
]

#: Version of the event envelope written by this release.
SCHEMA_VERSION = 1

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class Visibility(enum.StrEnum):
    """Who may see an event. Internal viewers (recruiters, the system) always see everything."""

    CANDIDATE = "candidate"  # shared with the person it concerns
    INTERNAL = "internal"  # the organisation only


def _dotted(instance: object, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if not _TYPE_NAME.fullmatch(value):
        raise InvalidField(attribute.name, "must be a dotted name like 'candidacy.stage_changed'")


def _json_value(value: Any, field: str, subpath: str = "", depth: int = 0) -> None:
    def bad(message: str) -> InvalidField:
        return InvalidField(field, message, subpath)

    if depth > 64:
        raise bad("nested deeper than 64 levels")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise bad("must hold finite numbers")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _json_value(v, field, f"{subpath}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise bad("keys must be strings")
            _json_value(v, field, f"{subpath}.{k}", depth + 1)
        return
    raise bad(f"must hold JSON values, got {type(value).__name__}")


def _json_data(
    instance: object, attribute: "attrs.Attribute[Any]", value: Mapping[str, Any]
) -> None:
    _json_value(value, attribute.name)


@attrs.frozen
class Event:
    """The envelope of one change.

    ``subjects`` maps subject kinds to ids (``{"person": ..., "candidacy": ..., "opening": ...}``);
    ``data`` holds JSON values; ``correlation_id`` ties together the events of one command.
    """

    id: str
    type: str = attrs.field(validator=_dotted)
    occurred_at: datetime = attrs.field(validator=aware)
    actor: Actor
    visibility: Visibility
    subjects: Mapping[str, str] = attrs.field(factory=dict)
    data: Mapping[str, Any] = attrs.field(factory=dict, validator=_json_data)
    correlation_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def person_id(self) -> str | None:
        return self.subjects.get("person")


@attrs.frozen
class EventType:
    """Catalogue entry: the default visibility of an event type and which ``data`` fields
    candidates and referrers may see."""

    name: str = attrs.field(validator=_dotted)
    visibility: Visibility
    description: str
    candidate_fields: frozenset[str] = frozenset()
    referrer_fields: frozenset[str] = frozenset()


EVENT_TYPES: dict[str, EventType] = {}


def register_event_type(event_type: EventType) -> EventType:
    """Add (or replace) a catalogue entry; plugins call this for their own event types."""
    EVENT_TYPES[event_type.name] = event_type
    return event_type


_C = Visibility.CANDIDATE
_I = Visibility.INTERNAL
_CANDIDACY_FIELDS = frozenset({"opening_id", "opening_title", "candidate_stage"})
for _spec in (
    EventType("person.created", _C, "A person entered the talent pool.", frozenset({"name"})),
    EventType(
        "person.profile_updated",
        _C,
        "Profile fields changed (the person's own fields only).",
        frozenset({"changes"}),
    ),
    EventType("person.tagged", _I, "Internal tags changed."),
    EventType("person.owner_assigned", _I, "The recruiter who owns the person changed."),
    EventType(
        "relationship.availability_changed",
        _C,
        "The person's availability changed.",
        frozenset({"availability", "check_back_on"}),
    ),
    EventType("relationship.touchpoint_logged", _I, "A contact with the person was logged."),
    EventType("relationship.note_added", _I, "An internal note was added."),
    EventType("relationship.follow_up_scheduled", _I, "A follow-up was scheduled."),
    EventType("relationship.pool_joined", _I, "The person was added to a talent pool."),
    EventType("relationship.stage_changed", _I, "The relationship moved to another stage."),
    EventType(
        "consent.granted",
        _C,
        "Consent for a purpose was granted.",
        frozenset({"purpose", "lawful_basis", "expires_at"}),
    ),
    EventType(
        "consent.withdrawn", _C, "Consent for a purpose was withdrawn.", frozenset({"purpose"})
    ),
    EventType("opening.created", _I, "An opening was created."),
    EventType("opening.status_changed", _I, "An opening changed status."),
    EventType(
        "opening.rediscovered",
        _I,
        "People already in the pool were matched to an opening, by segment.",
    ),
    EventType(
        "person.opening_suggested",
        _C,
        "A new opening that matches the person was suggested to them.",
        frozenset({"opening_id", "opening_title"}),
    ),
    EventType(
        "candidacy.created",
        _C,
        "The person entered the process for an opening.",
        _CANDIDACY_FIELDS,
        _CANDIDACY_FIELDS,
    ),
    EventType(
        "candidacy.stage_changed",
        _C,
        "A candidacy moved to another stage.",
        _CANDIDACY_FIELDS,
        _CANDIDACY_FIELDS,
    ),
    EventType(
        "candidacy.interest_confirmed",
        _C,
        "The candidate confirmed interest.",
        _CANDIDACY_FIELDS,
        _CANDIDACY_FIELDS,
    ),
    EventType(
        "candidacy.withdrawn",
        _C,
        "The candidate withdrew.",
        _CANDIDACY_FIELDS,
        _CANDIDACY_FIELDS,
    ),
    EventType(
        "candidacy.archived",
        _C,
        "A candidacy was closed; the reason and note are internal.",
        _CANDIDACY_FIELDS,
        _CANDIDACY_FIELDS,
    ),
    EventType(
        "candidacy.reopened", _C, "A candidacy was reopened.", _CANDIDACY_FIELDS, _CANDIDACY_FIELDS
    ),
    EventType(
        "candidacy.hired", _C, "The candidate was hired.", _CANDIDACY_FIELDS, _CANDIDACY_FIELDS
    ),
    EventType("referral.submitted", _I, "Someone referred the person."),
    EventType(
        "employment.started",
        _C,
        "The person started as an employee.",
        frozenset({"title", "started_on"}),
    ),
    EventType(
        "employment.ended", _C, "The person left and became alumni.", frozenset({"ended_on"})
    ),
    EventType(
        "employment.internal_moves_changed",
        _C,
        "The employee's openness to internal moves changed.",
        frozenset({"open_to_internal_moves"}),
    ),
):
    register_event_type(_spec)


def project_event(event: Event, viewer: Actor, *, referred_by: str | None = None) -> Event | None:
    """What ``viewer`` may see of ``event``, or ``None`` if nothing.

    * recruiters and the system see every event whole;
    * a candidate sees candidate-visible events about themselves, with only the catalogued
      candidate fields of ``data``;
    * a referrer sees the candidacy events of people they referred (``referred_by`` names the
      referrer of the event's candidacy), with only the catalogued referrer fields.
    """
    if viewer.role in (ActorRole.RECRUITER, ActorRole.SYSTEM):
        return event
    spec = EVENT_TYPES.get(event.type)
    if viewer.role is ActorRole.CANDIDATE:
        if event.visibility is not Visibility.CANDIDATE or event.person_id != viewer.id:
            return None
        fields = spec.candidate_fields if spec else frozenset()
    else:  # referrer
        if spec is None or not spec.referrer_fields or referred_by != viewer.id:
            return None
        fields = spec.referrer_fields
    data = {k: v for k, v in event.data.items() if k in fields}
    subjects = {k: v for k, v in event.subjects.items() if k in ("person", "candidacy", "opening")}
    actor = event.actor if event.actor.role is viewer.role and event.actor.id == viewer.id else None
    shown_actor = actor or Actor(event.actor.role, event.actor.role.value)
    return attrs.evolve(event, data=data, subjects=subjects, actor=shown_actor)


_TEMPLATES: dict[str, str] = {
    "person.created": "{who} added {name} to the talent pool",
    "person.profile_updated": "{who} updated the profile ({fields})",
    "person.tagged": "{who} tagged the person: {tags}",
    "person.owner_assigned": "{who} made {owner_id} the owner",
    "relationship.availability_changed": "{who} set availability to {availability_words}"
    "{check_back}",
    "relationship.touchpoint_logged": "{who} logged an {direction} {channel_words}: {summary}",
    "relationship.note_added": "{who} added a note: {text}",
    "relationship.follow_up_scheduled": "{who} scheduled a follow-up for {due_date}",
    "relationship.pool_joined": "{who} added the person to the pool {pool_name}",
    "relationship.stage_changed": "Relationship moved from {from_stage} to {to_stage}",
    "consent.granted": "{who} granted consent for {purpose}",
    "consent.withdrawn": "{who} withdrew consent for {purpose}",
    "opening.created": "{who} opened {title}",
    "opening.status_changed": "{who} set {title} to {status}",
    "opening.rediscovered": "{who} found {total} people in the pool for {title}",
    "person.opening_suggested": "{who} suggested a new opening: {opening_title}",
    "candidacy.created": "{who} started a candidacy for {opening_title} ({candidate_stage})",
    "candidacy.stage_changed": "{who} moved the candidacy for {opening_title} to {candidate_stage}",
    "candidacy.interest_confirmed": "{who} confirmed interest in {opening_title}",
    "candidacy.withdrawn": "{who} withdrew from {opening_title}",
    "candidacy.archived": "{who} closed the candidacy for {opening_title}{reason}",
    "candidacy.reopened": "{who} reopened the candidacy for {opening_title}",
    "candidacy.hired": "{who} marked {opening_title} as hired",
    "referral.submitted": "{who} referred the person{for_opening}",
    "employment.started": "Started as {title} on {started_on}",
    "employment.ended": "Left on {ended_on}; now alumni",
    "employment.internal_moves_changed": "{who} set open to internal moves: "
    "{open_to_internal_moves}",
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def describe_event(event: Event, viewer: Actor | None = None) -> str:
    """One readable line for ``event`` as ``viewer`` reads it ("You ..." for their own actions),
    using only what its ``data`` holds, so a projected event never leaks what was filtered out."""
    d = event.data
    actor = event.actor
    if viewer is not None and viewer.role is actor.role and viewer.id == actor.id:
        who = "You"
    elif actor.role is ActorRole.CANDIDATE:
        who = "The candidate"
    elif actor.id == actor.role.value:
        who = actor.role.value.capitalize()
    else:
        who = f"{actor.role.value.capitalize()} {actor.id}"
    values = _Blank(d)
    values["who"] = who
    changes = d.get("changes")
    values["fields"] = ", ".join(sorted(changes)) if isinstance(changes, Mapping) else "?"
    tags = d.get("tags")
    values["tags"] = ", ".join(map(str, tags)) if isinstance(tags, list) else "?"
    cb = d.get("check_back_on")
    values["check_back"] = f" (check back on {cb})" if cb else ""
    reason = d.get("archive_reason")
    values["reason"] = f": {str(reason).replace('_', ' ')}" if reason else ""
    values["for_opening"] = f" for {d['opening_title']}" if d.get("opening_title") else ""
    values["availability_words"] = str(d.get("availability", "?")).replace("_", " ")
    values["channel_words"] = _CHANNEL_WORDS.get(str(d.get("channel")), "contact")
    values["due_date"] = str(d.get("due", "?"))[:10]
    line = _TEMPLATES.get(event.type, event.type).format_map(values)
    if viewer is not None and viewer.role is ActorRole.REFERRER:
        line = f"Your referral: {line[0].lower()}{line[1:]}"
    return line


_CHANNEL_WORDS = {
    "email": "email",
    "phone": "phone call",
    "sms": "text message",
    "meeting": "meeting",
    "social": "social media message",
    "event": "conversation at an event",
    "other": "contact",
}
