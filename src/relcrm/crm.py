"""The CRM facade: the object users work with.

Every command runs in one storage transaction: the aggregates it changes, the events it appends
and one outbox row per notification are written together or not at all. After the commit, the
``relcrm_event_committed`` hook is called for every event and the outbox rows are delivered.
"""

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from json.encoder import encode_basestring as _quote
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import attrs
import pluggy

from ._talent_index import SEGMENTS, Rediscovery, TalentIndex
from .events import Event, describe_event, project_event
from .exceptions import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidTransition,
    NotFound,
    PluginError,
    RelcrmError,
    StorageError,
    TransitionVetoed,
    ValidationError,
)
from .ids import new_id, new_ids
from .lifecycle import (
    Pipeline,
    TransitionContext,
    apply_transition,
    candidacy_data,
    candidacy_subjects,
    check_action,
    make_event,
)
from .model import (
    CANDIDATE_EDITABLE_FIELDS,
    Actor,
    ActorRole,
    ArchiveReason,
    ArchiveReasonType,
    Availability,
    Candidacy,
    Channel,
    ConsentAction,
    ConsentRecord,
    Direction,
    EmploymentEpisode,
    FollowUp,
    LawfulBasis,
    Milestone,
    Note,
    Opening,
    OpeningStatus,
    Person,
    Referral,
    ReferralStatus,
    Relationship,
    RelationshipStage,
    SelfIdentification,
    StageChange,
    TalentPool,
    Touchpoint,
)
from .notify.base import Notification, Notifier, Recipient
from .plugins import call_each, collect_registrations, make_plugin_manager
from .routing import RoutingContext, route
from .serialization import structure, unstructure
from .storage._checks import encode_json
from .storage.base import (
    EventRecord,
    JSONText,
    OutboxRecord,
    Record,
    Store,
    Transaction,
    add_outbox_many,
    append_events,
    insert_many,
)
from .views import CandidacyView, CandidateView, ConsentView

if TYPE_CHECKING:
    from .matching import MatchResults, RoleProfile

__all__ = ["CRM", "DispatchReport", "Versioned", "open"]

#: The consent purpose that lets relcrm tell a person about new openings that match them.
JOB_ALERTS = "job_alerts"

log = logging.getLogger("relcrm")
T = TypeVar("T")
R = TypeVar("R")

#: Storage kind of every aggregate type.
KINDS: dict[type, str] = {
    Person: "person",
    Opening: "opening",
    Candidacy: "candidacy",
    Relationship: "relationship",
    Touchpoint: "touchpoint",
    Note: "note",
    Referral: "referral",
    EmploymentEpisode: "employment",
    ConsentRecord: "consent",
    TalentPool: "pool",
    SelfIdentification: "self_identification",
}
_ID_PREFIX = {
    Person: "per",
    Opening: "opn",
    Candidacy: "cnd",
    Touchpoint: "tch",
    Note: "not",
    Referral: "ref",
    EmploymentEpisode: "emp",
    ConsentRecord: "cns",
    TalentPool: "pol",
}

#: Default wait before a check-back when a person says "not now" without a date.
DEFAULT_CHECK_BACK = timedelta(days=182)


@attrs.frozen
class Versioned(Generic[T]):
    """An aggregate with the version it was read at (pass it as ``expected_version``)."""

    value: T
    version: int


@attrs.frozen
class DispatchReport:
    """What one delivery round did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0


def _key(obj: Any) -> str:
    if isinstance(obj, Relationship | SelfIdentification):
        return obj.person_id
    return str(obj.id)


def _person_of(obj: Any) -> str | None:
    if isinstance(obj, Person):
        return obj.id
    return getattr(obj, "person_id", None)


def _opening_of(obj: Any) -> str | None:
    if isinstance(obj, Opening):
        return obj.id
    return getattr(obj, "opening_id", None)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _created_data(person: Person) -> dict[str, Any]:
    """The data of a ``person.created`` event."""
    return {"name": person.name, "sources": list(person.sources), "owner_id": person.owner_id}


def _make_stamper() -> Callable[[Person, datetime], Person]:
    """A function that gives ``attrs.evolve(person, created_at=moment)`` for a bulk add, without
    running the person's converters and validators again on fields that already passed them
    (``moment``, the command's time, is checked by the caller). It is written out field by field,
    as attrs writes ``__init__``, from the fields the class has."""
    lines = ["def stamp(person, moment):", "    new = make(Person)"]
    namespace: dict[str, Any] = {"make": object.__new__, "Person": Person}
    for n, name in enumerate(attrs.fields_dict(Person)):
        namespace[f"set_{n}"] = getattr(Person, name).__set__  # the slot, past frozen
        value = "moment" if name == "created_at" else f"person.{name}"
        lines.append(f"    set_{n}(new, {value})")
    lines.append("    return new")
    exec("\n".join(lines), namespace)  # code made from the class's own fields
    stamp: Callable[[Person, datetime], Person] = namespace["stamp"]
    return stamp


_with_created_at = _make_stamper()


#: People written per round of bulk writes in :meth:`CRM.add_people`.
_CHUNK = 1000
#: How many times a command runs when concurrent writers keep changing what it read.
_COMMAND_ATTEMPTS = 5


def _routed_alike(person: Person) -> bool:
    """Whether the ``person.created`` event of ``person`` is routed like that of any other new
    person who has no owner and may be contacted (see :class:`_CreatedOutbox`)."""
    return not person.owner_id and (
        person.preferences.availability is not Availability.DO_NOT_CONTACT
    )


#: Encoded people of :meth:`CRM.add_encoded_people`: id, name, email, sources and the compact
#: JSON of the person (as the stored record, with ``"created_at":null`` as its last member).
EncodedPerson = tuple[str, str, str | None, tuple[str, ...], str]
#: How the JSON of an :data:`EncodedPerson` ends (no owner); the command's time replaces the last
#: ``null``.
_NO_CREATED_AT = ',"owner_id":null,"created_at":null}'
_NOT_CONTACTED = '"availability":"do_not_contact"'


class _NewPerson(NamedTuple):
    """One person of a bulk add, as its writes need it: what the event and the notifications
    say about them, the stored record, and the :class:`Person` itself when at hand (else it is
    decoded from ``data`` when needed)."""

    id: str
    name: str
    email: str | None
    sources: tuple[str, ...]
    owner_id: str | None
    alike: bool  #: :func:`_routed_alike`
    data: Mapping[str, Any]
    person: Person | None

    def created_data(self) -> dict[str, Any]:
        """:func:`_created_data` of the person."""
        return {"name": self.name, "sources": list(self.sources), "owner_id": self.owner_id}

    def value(self, crm: "CRM") -> Person:
        return self.person if self.person is not None else crm._decode(self.data, Person)

    @classmethod
    def of(cls, person: Person) -> "_NewPerson":
        return cls(
            person.id,
            person.name,
            person.email,
            person.sources,
            person.owner_id,
            _routed_alike(person),
            unstructure(person),
            person,
        )


class _JSONTemplate:
    """The compact JSON text of a mapping with some members left open: ``fill(*texts)`` puts the
    JSON texts of their values in (in the order of ``holes``, each a path of keys). Used for the
    rows of bulk adds, which differ from one person to the next in a few members only.
    :meth:`make` checks the template against ``encode_json`` of a filled-in mapping and gives
    ``None`` if it does not give exactly the same text."""

    __slots__ = ("_format",)

    def __init__(self, pieces: list[str]) -> None:
        self._format = "%s".join(piece.replace("%", "%%") for piece in pieces)

    @classmethod
    def make(
        cls, value: Mapping[str, Any], holes: Sequence[tuple[str, ...]]
    ) -> "_JSONTemplate | None":
        markers = [f"\ue000{n}\ue001" for n in range(len(holes))]
        marked = _with_members(value, dict(zip(holes, markers, strict=True)))
        text = encode_json(marked)
        pieces = []
        for marker in markers:
            head, found, text = text.partition(encode_json(marker))
            if not found or encode_json(marker) in text or marker in head:
                return None
            pieces.append(head)
        pieces.append(text)
        template = cls(pieces)
        probe = ["x\u2028\"'", "é", 0, None, {"k": [1, "v"]}]
        values = {hole: probe[n % len(probe)] for n, hole in enumerate(holes)}
        filled = template.fill(*(encode_json(v) for v in values.values()))
        if filled != encode_json(_with_members(value, values)):
            return None
        return template

    def fill(self, *texts: str) -> str:
        return self._format % texts


def _with_members(value: Mapping[str, Any], members: Mapping[tuple[str, ...], Any]) -> Any:
    """A copy of ``value`` with the members at the given paths set (in place, keeping order)."""
    out = dict(value)
    for path, member in members.items():
        target = out
        for key in path[:-1]:
            target[key] = dict(target[key])
            target = target[key]
        target[path[-1]] = member
    return out


@attrs.frozen
class _CreatedNotice:
    """The candidate's notifications of one ``person.created`` event of a bulk add, as a
    template for the others routed alike: their line is ``head + name + tail``."""

    head: str
    tail: str
    body_tail: str
    payload: Mapping[str, Any]
    recipient: Mapping[str, Any]
    next_attempt_at: str
    notifiers: tuple[str, ...]
    #: Templates of the payload (holes: id, event id, recipient, subject, body, data) and of the
    #: recipient (holes: id, address), when they can be made.
    payload_text: _JSONTemplate | None = None
    recipient_text: _JSONTemplate | None = None

    def rows(self, event_id: str, person: _NewPerson, ids: Iterator[str]) -> list[OutboxRecord]:
        """The rows for ``person``'s event, one per notifier, with ids taken from ``ids``."""
        line = self.head + person.name + self.tail
        payload_text, recipient_text = self.payload_text, self.recipient_text
        if payload_text is not None and recipient_text is not None:
            quoted_event = _quote(event_id)
            quoted_line = _quote(line)
            quoted_body = _quote(line + self.body_tail)
            data = '{"name":' + _quote(person.name) + "}"
            email = person.email
            to_text = recipient_text.fill(
                _quote(person.id), _quote(email) if email is not None else "null"
            )
            to = JSONText(to_text)
            out = []
            for name in self.notifiers:
                nid = next(ids)
                text = payload_text.fill(
                    _quote(nid), quoted_event, to_text, quoted_line, quoted_body, data
                )
                out.append(
                    OutboxRecord(
                        nid,
                        event_id,
                        name,
                        to,
                        JSONText(text),
                        next_attempt_at=self.next_attempt_at,
                    )
                )
            return out
        to_map = {**self.recipient, "id": person.id, "address": person.email}
        out = []
        for name in self.notifiers:
            nid = next(ids)
            message = {
                **self.payload,
                "id": nid,
                "event_id": event_id,
                "recipient": dict(to_map),
                "subject": line,
                "body": line + self.body_tail,
                "data": {"name": person.name},
            }
            out.append(
                OutboxRecord(
                    nid, event_id, name, to_map, message, next_attempt_at=self.next_attempt_at
                )
            )
        return out


class _UnitOfWork:
    """The state one command works on: a transaction, the time, and the events it emits."""

    def __init__(self, crm: "CRM", tx: Transaction, now: datetime) -> None:
        self.crm = crm
        self.tx = tx
        self.now = now
        self.events: list[Event] = []
        #: Outbox rows a bulk command wrote itself (``events`` get theirs in :meth:`CRM._command`).
        self.outbox: list[OutboxRecord] = []
        #: Makes the events a bulk command wrote itself; called after the commit, and only if
        #: something reads them (the match index, ``relcrm_event_committed`` plugins).
        self.written_events: Callable[[], list[Event]] | None = None
        self.correlation_id = new_id("cor")
        self.context = TransitionContext(now=now, new_id=new_id, correlation_id=self.correlation_id)
        #: Set when an ``expected_version`` given by the caller was found out of date.
        self.stale = False

    def maybe(self, cls: type[T], id: str) -> Versioned[T] | None:
        rec = self.tx.get(KINDS[cls], id)
        if rec is None:
            return None
        return Versioned(self.crm._decode(rec.data, cls), rec.version)

    def load(self, cls: type[T], id: str, expected_version: int | None = None) -> Versioned[T]:
        found = self.maybe(cls, id)
        if found is None:
            raise NotFound(KINDS[cls], id)
        if expected_version is not None and found.version != expected_version:
            self.stale = True  # the caller's version is out of date: running again cannot help
            raise ConcurrencyConflict(KINDS[cls], id, expected_version, found.version)
        return found

    def find(
        self, cls: type[T], *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Versioned[T]]:
        recs = self.tx.find(KINDS[cls], person_id=person_id, opening_id=opening_id)
        return [Versioned(self.crm._decode(r.data, cls), r.version) for r in recs]

    def save(self, obj: Any, expected_version: int) -> int:
        rec = self.tx.put(
            KINDS[type(obj)],
            _key(obj),
            unstructure(obj),
            expected_version=expected_version,
            person_id=_person_of(obj),
            opening_id=_opening_of(obj),
        )
        return rec.version

    def insert(self, obj: Any) -> None:
        kind = KINDS[type(obj)]
        if self.tx.get(kind, _key(obj)) is not None:
            raise AlreadyExists(kind, _key(obj))
        self.save(obj, 0)

    def emit(
        self,
        type: str,
        actor: Actor,
        subjects: Mapping[str, str],
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        event = make_event(self.context, type, actor, subjects, data or {})
        self.events.append(event)
        return event

    def set_relationship_stage(
        self, person_id: str, stage: RelationshipStage, actor: Actor
    ) -> None:
        rel = self.load(Relationship, person_id)
        if rel.value.stage is stage:
            return
        self.save(attrs.evolve(rel.value, stage=stage), rel.version)
        self.emit(
            "relationship.stage_changed",
            actor,
            {"person": person_id},
            {"from_stage": rel.value.stage.value, "to_stage": stage.value},
        )


class _CreatedOutbox:
    """The outbox rows of the ``person.created`` events of one bulk add, made chunk by chunk in
    event order, as :meth:`CRM._outbox_rows` makes them event by event.

    People who are reachable and have no owner are all routed alike, so their rows follow from
    the first such person's, routed the usual way (:meth:`CRM._created_notice`); anyone else, or
    everyone when the rows cannot follow, is routed the usual way. Row ids are made in event
    order either way."""

    def __init__(
        self, crm: "CRM", uow: _UnitOfWork, event: Callable[[str, _NewPerson], Event]
    ) -> None:
        self.crm = crm
        self.uow = uow
        self.event = event
        self.notice: _CreatedNotice | None = None
        self.sampled = False

    def rows(self, made: Iterable[tuple[str, _NewPerson]]) -> list[OutboxRecord]:
        """The rows for ``made``: the event id and person of each event, in order."""
        rows: list[OutboxRecord] = []
        run: list[tuple[str, _NewPerson]] = []  # people whose rows follow from the notice
        for event_id, p in made:
            alike = p.alike
            if alike and self.notice is not None:
                run.append((event_id, p))
                continue
            self._follow(run, rows)
            person = p.value(self.crm)
            known = (person, self.crm._new_relationship(person))
            event = self.event(event_id, p)
            own = self.crm._outbox_rows(self.uow, event, known)
            rows.extend(own)
            if alike and not self.sampled:
                self.sampled = True
                self.notice = self.crm._created_notice(self.uow, event, known, own)
        self._follow(run, rows)
        return rows

    def _follow(self, run: list[tuple[str, _NewPerson]], rows: list[OutboxRecord]) -> None:
        """Add the rows of ``run`` (people routed like the sample) to ``rows``, and empty it."""
        if self.notice is not None and run:
            ids = iter(new_ids("ntf", len(run) * len(self.crm.notifiers)))
            for event_id, p in run:
                rows.extend(self.notice.rows(event_id, p, ids))
        run.clear()


class CRM:
    """A talent pool on one store. Make one with :func:`relcrm.open`.

    Commands take the acting :class:`~relcrm.Actor` as ``actor=`` and return the changed object.
    Pass ``expected_version=`` (from :meth:`load`) to make a command fail with
    :class:`~relcrm.ConcurrencyConflict` if someone changed the aggregate since you read it.
    """

    def __init__(
        self,
        store: Store,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        notifiers: Iterable[str | Notifier] = ("log",),
        organisation: str = "default",
        clock: Callable[[], datetime] | None = None,
        autodispatch: bool = True,
        max_attempts: int = 5,
        retry_backoff: timedelta = timedelta(seconds=30),
    ) -> None:
        self.store = store
        self.plugin_manager = plugin_manager or make_plugin_manager()
        self.organisation = organisation
        self.autodispatch = autodispatch
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self._clock = clock or (lambda: datetime.now(UTC))
        #: Signal weights for :meth:`match`, by signal name (set before the first match).
        self.match_weights: dict[str, float] = {}
        self._talent: TalentIndex | None = None
        pipelines = collect_registrations(
            self.plugin_manager, "relcrm_register_pipelines", "pipeline", key=lambda p: p.name
        )
        self.pipelines: dict[str, Pipeline] = {name: p for name, (_, p) in pipelines.items()}
        factories = collect_registrations(
            self.plugin_manager, "relcrm_register_notifiers", "notifier"
        )
        self.notifiers: dict[str, Notifier] = {}
        for n in notifiers:
            if isinstance(n, str):
                if n not in factories:
                    known = ", ".join(sorted(factories))
                    raise ValidationError(
                        "notifiers", [f"unknown notifier {n!r}; registered: {known} @ $"]
                    )
                instance: Notifier = factories[n][1]()
            else:
                instance = n
            if instance.name in self.notifiers:
                raise ValidationError("notifiers", [f"notifier {instance.name!r} given twice @ $"])
            self.notifiers[instance.name] = instance

    # ---------------------------------------------------------------- plumbing

    def __repr__(self) -> str:
        return f"<relcrm.CRM {self.store.url!r} notifiers={sorted(self.notifiers)}>"

    def __enter__(self) -> "CRM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def now(self) -> datetime:
        """The CRM's clock (UTC unless a clock was given)."""
        return self._clock()

    def notifier(self, name: str) -> Notifier:
        """The configured notifier called ``name`` (e.g. ``crm.notifier("memory").sent``)."""
        try:
            return self.notifiers[name]
        except KeyError:
            raise NotFound("notifier", name) from None

    def pipeline(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            raise NotFound("pipeline", name) from None

    def _decode(self, data: Mapping[str, Any], cls: type[T]) -> T:
        return structure(data, cls)

    def _command(self, fn: Callable[[_UnitOfWork], R]) -> R:
        """Run ``fn`` in one transaction with its events and outbox rows, then publish them.

        A concurrent writer that changed a record between this command's read and its write
        makes the backend refuse the write (:class:`~relcrm.ConcurrencyConflict`; a database
        that aborts a transaction raises :class:`~relcrm.TransactionAborted`, one too). Nothing
        was written, so the command runs again on fresh state, a few times; a conflict with a
        version the caller gave (``expected_version=``) is raised at once.
        """
        for attempt in range(1, _COMMAND_ATTEMPTS + 1):
            tried: list[_UnitOfWork] = []
            try:
                return self._command_once(fn, tried)
            except ConcurrencyConflict:
                if (tried and tried[-1].stale) or attempt == _COMMAND_ATTEMPTS:
                    raise
                time.sleep(random.random() * 0.002 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _command_once(self, fn: Callable[[_UnitOfWork], R], tried: list[_UnitOfWork]) -> R:
        now = self._clock()
        rows: list[OutboxRecord] = []
        with self.store.transaction() as tx:
            uow = _UnitOfWork(self, tx, now)
            tried.append(uow)
            result = fn(uow)
            for event in uow.events:
                tx.append_event(
                    EventRecord(
                        id=event.id,
                        type=event.type,
                        occurred_at=_utc_iso(event.occurred_at),
                        payload=unstructure(event),
                        person_id=event.person_id,
                    )
                )
                for row in self._outbox_rows(uow, event):
                    tx.add_outbox(row)
                    rows.append(row)
        self._after_commit(uow.events, [*uow.outbox, *rows], uow.written_events)
        return result

    def _routing_context(
        self, uow: _UnitOfWork, event: Event, known: tuple[Person, Relationship] | None = None
    ) -> RoutingContext | None:
        """What routing needs to know about ``event``, read in the transaction; ``known`` gives
        the event's person and relationship when the command has them at hand."""
        if event.person_id is None:
            opening_id = event.subjects.get("opening")
            opening = uow.maybe(Opening, opening_id) if opening_id else None
            if opening is None or not opening.value.owner_id:
                return None
            return RoutingContext(opening_owner_id=opening.value.owner_id)
        if known is not None:
            person_value: Person = known[0]
            rel_value: Relationship | None = known[1]
        else:
            person = uow.maybe(Person, event.person_id)
            if person is None:
                return None
            rel = uow.maybe(Relationship, event.person_id)
            person_value, rel_value = person.value, rel.value if rel else None
        owners = [person_value.owner_id or "", *(rel_value.owner_ids if rel_value else ())]
        opening_id = event.subjects.get("opening")
        if opening_id and event.actor.role is ActorRole.CANDIDATE:
            opening = uow.maybe(Opening, opening_id)
            if opening is not None and opening.value.owner_id:
                owners.append(opening.value.owner_id)
        referrer = event.data.get("referrer_id") if event.type.startswith("candidacy.") else None
        return RoutingContext(
            candidate_address=person_value.email,
            do_not_contact=person_value.preferences.availability is Availability.DO_NOT_CONTACT,
            owner_ids=tuple(owners),
            referrer_id=referrer if isinstance(referrer, str) else None,
        )

    def _outbox_rows(
        self, uow: _UnitOfWork, event: Event, known: tuple[Person, Relationship] | None = None
    ) -> list[OutboxRecord]:
        ctx = self._routing_context(uow, event, known) if self.notifiers else None
        if ctx is None:
            return []
        rows = []
        for viewer, shown in route(event, ctx):
            address = ctx.candidate_address if viewer.role is ActorRole.CANDIDATE else None
            line = describe_event(shown, viewer)
            for name in self.notifiers:
                nid = new_id("ntf")
                notification = Notification(
                    id=nid,
                    event_id=event.id,
                    event_type=event.type,
                    occurred_at=event.occurred_at,
                    recipient=Recipient(viewer.role, viewer.id, address),
                    subject=line,
                    body=f"{line} ({_utc_iso(event.occurred_at)})",
                    data=dict(shown.data),
                )
                rows.append(
                    OutboxRecord(
                        id=nid,
                        event_id=event.id,
                        notifier=name,
                        recipient=unstructure(notification.recipient),
                        payload=unstructure(notification),
                        next_attempt_at=_utc_iso(event.occurred_at),
                    )
                )
        return rows

    def _after_commit(
        self,
        events: Sequence[Event],
        rows: Sequence[OutboxRecord],
        written_events: Callable[[], list[Event]] | None = None,
    ) -> None:
        hook = self.plugin_manager.hook.relcrm_event_committed
        if written_events is not None and (self._talent is not None or hook.get_hookimpls()):
            events = [*written_events(), *events]
        if self._talent is not None and events:
            try:
                self._talent.refresh(events)  # matchable as soon as the command returns
            except Exception:
                # The change is committed: never report it as failed (a caller would retry and
                # write it twice). Drop the index; the next match rebuilds it from the store.
                log.exception("could not update the match index; it will be rebuilt on next use")
                self._talent = None
        for event in events:
            for plugin, call in call_each(hook, crm=self, event=event):
                try:
                    call()
                except Exception:
                    log.getChild("plugins").exception(
                        "plugin %r failed in relcrm_event_committed for %s (%s); "
                        "the change stays committed",
                        plugin,
                        event.id,
                        event.type,
                    )
        if self.autodispatch and rows:
            self._deliver(rows)

    def _deliver(self, rows: Iterable[OutboxRecord], now: datetime | None = None) -> DispatchReport:
        delivered = failed = dead = 0
        now = now or self._clock()  # back-off counts from the moment of this attempt
        for row in rows:
            notifier = self.notifiers.get(row.notifier)
            attempts = row.attempts + 1
            try:
                if notifier is None:
                    raise LookupError(f"notifier {row.notifier!r} is not configured")
                notifier.deliver(structure(row.payload, Notification))
            except Exception as exc:
                status: Any = "dead" if attempts >= self.max_attempts else "pending"
                wait = self.retry_backoff * (2 ** (attempts - 1))
                error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "notifier %r failed for %s (attempt %d, %s): %s",
                    row.notifier,
                    row.id,
                    attempts,
                    status,
                    error,
                )
                self._update_outbox(row, status, attempts, _utc_iso(now + wait), error)
                if status == "dead":
                    dead += 1
                else:
                    failed += 1
            else:
                self._update_outbox(row, "delivered", attempts, row.next_attempt_at, None)
                delivered += 1
        return DispatchReport(delivered, failed, dead)

    def _update_outbox(
        self, row: OutboxRecord, status: Any, attempts: int, next_at: str, error: str | None
    ) -> None:
        try:
            self.store.update_outbox(
                row.id, status=status, attempts=attempts, next_attempt_at=next_at, last_error=error
            )
        except StorageError:
            log.exception("could not record delivery of %s; it will be retried", row.id)

    def dispatch_pending(
        self, *, now: datetime | None = None, limit: int | None = None
    ) -> DispatchReport:
        """Deliver every pending outbox row that is due (retries, or rows written with
        ``autodispatch=False``). Returns counts; rows that fail ``max_attempts`` times go dead."""
        moment = now or self._clock()
        rows = self.store.outbox(status="pending", due_by=_utc_iso(moment), limit=limit)
        return self._deliver(rows, moment)

    def outbox(self, status: Any = "pending") -> list[OutboxRecord]:
        """Outbox rows with that status (``None`` for all)."""
        return self.store.outbox(status=status)

    def _input(self, data: Any, cls: type[T], **defaults: Any) -> T:
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValidationError(
                cls.__name__,
                [f"expected a {cls.__name__} or an object, got {type(data).__name__} @ $"],
            )
        merged = dict(data)
        if cls in _ID_PREFIX and "id" not in merged:
            merged["id"] = new_id(_ID_PREFIX[cls])
        for k, v in defaults.items():
            merged.setdefault(k, v)
        return structure(merged, cls)

    # ---------------------------------------------------------------- reading

    def load(self, cls: type[T], id: str) -> Versioned[T]:
        """An aggregate with its version; :class:`~relcrm.NotFound` if absent."""
        rec = self.store.get(KINDS[cls], id)
        if rec is None:
            raise NotFound(KINDS[cls], id)
        return Versioned(self._decode(rec.data, cls), rec.version)

    def get_person(self, person_id: str) -> Person:
        return self.load(Person, person_id).value

    def get_opening(self, opening_id: str) -> Opening:
        return self.load(Opening, opening_id).value

    def get_candidacy(self, candidacy_id: str) -> Candidacy:
        return self.load(Candidacy, candidacy_id).value

    def relationship(self, person_id: str) -> Relationship:
        return self.load(Relationship, person_id).value

    def warmth(self, person_id: str, *, at: datetime | None = None) -> float:
        """The relationship's warmth now (or ``at``), in [0, 1]."""
        return self.relationship(person_id).warmth(at or self._clock())

    def _all(self, cls: type[T], **keys: str | None) -> list[T]:
        return [self._decode(r.data, cls) for r in self.store.find(KINDS[cls], **keys)]

    def people(self) -> list[Person]:
        """Everyone in the talent pool, oldest first."""
        return [self._decode(r.data, Person) for r in self.store.iter_records("person")]

    def openings(self, status: OpeningStatus | None = None) -> list[Opening]:
        found = self._all(Opening)
        return [o for o in found if status is None or o.status is status]

    def candidacies(
        self, *, person_id: str | None = None, opening_id: str | None = None
    ) -> list[Candidacy]:
        return self._all(Candidacy, person_id=person_id, opening_id=opening_id)

    def notes(self, person_id: str) -> list[Note]:
        """Internal notes about a person."""
        return self._all(Note, person_id=person_id)

    def touchpoints(self, person_id: str) -> list[Touchpoint]:
        return self._all(Touchpoint, person_id=person_id)

    def referrals(self, *, person_id: str | None = None) -> list[Referral]:
        return self._all(Referral, person_id=person_id)

    def referrals_by(self, referrer_id: str) -> list[Referral]:
        return [r for r in self._all(Referral) if r.referrer_id == referrer_id]

    def employment(self, person_id: str) -> list[EmploymentEpisode]:
        return self._all(EmploymentEpisode, person_id=person_id)

    def pools(self) -> list[TalentPool]:
        return self._all(TalentPool)

    def consent_ledger(self, person_id: str) -> list[ConsentRecord]:
        """Every consent entry for the person, oldest first (the ledger is append-only)."""
        return sorted(
            self._all(ConsentRecord, person_id=person_id), key=lambda c: (c.recorded_at, c.id)
        )

    def consents(self, person_id: str) -> dict[str, ConsentRecord]:
        """The newest ledger entry per purpose."""
        current: dict[str, ConsentRecord] = {}
        for record in self.consent_ledger(person_id):
            current[record.purpose] = record
        return current

    def has_consent(self, person_id: str, purpose: str, *, at: datetime | None = None) -> bool:
        record = self.consents(person_id).get(purpose)
        return record is not None and record.in_force(at or self._clock())

    def due_follow_ups(self, *, by: datetime | None = None) -> list[Relationship]:
        """Relationships whose next follow-up is due by ``by`` (default: now), soonest first."""
        moment = by or self._clock()
        due = [
            r
            for r in (
                self._decode(x.data, Relationship) for x in self.store.iter_records("relationship")
            )
            if r.next_follow_up is not None and r.next_follow_up.due <= moment
        ]
        return sorted(due, key=lambda r: r.next_follow_up.due if r.next_follow_up else moment)

    def timeline(
        self, person_id: str, viewer: Actor | ActorRole | str = ActorRole.RECRUITER
    ) -> list[Event]:
        """The person's events, oldest first, as ``viewer`` may see them.

        ``viewer`` is an :class:`~relcrm.Actor`, or a role: ``"candidate"`` means the person
        themselves, ``"recruiter"`` any recruiter. A candidate sees only candidate-visible events
        about themselves, with internal fields removed; a referrer sees only the progress of the
        candidacies they referred.
        """
        who = self._viewer(person_id, viewer)
        self.load(Person, person_id)
        shown = []
        for rec in self.store.events(person_id=person_id):
            event = self._decode(rec.payload, Event)
            referrer = event.data.get("referrer_id")
            projected = project_event(
                event, who, referred_by=referrer if isinstance(referrer, str) else None
            )
            if projected is not None:
                shown.append(projected)
        return shown

    @staticmethod
    def _viewer(person_id: str, viewer: Actor | ActorRole | str) -> Actor:
        if isinstance(viewer, Actor):
            return viewer
        try:
            role = ActorRole(viewer)
        except ValueError:
            roles = ", ".join(r.value for r in ActorRole)
            raise ValidationError(
                "viewer", [f"expected one of {roles}, got {viewer!r} @ $"]
            ) from None
        if role is ActorRole.CANDIDATE:
            return Actor(role, person_id)
        if role is ActorRole.REFERRER:
            raise ValidationError("viewer", ["a referrer viewer needs an Actor with its id @ $"])
        return Actor(role, role.value)

    def candidate_view(self, person_id: str) -> CandidateView:
        """What the person sees of their own relationship, and what they can do next."""
        person = self.get_person(person_id)
        me = Actor(ActorRole.CANDIDATE, person_id)
        views = []
        for c in self.candidacies(person_id=person_id):
            pipeline = self.pipeline(c.pipeline)
            opening = self.get_opening(c.opening_id)
            ctx = TransitionContext(now=self._clock(), new_id=new_id, opening=opening)
            actions = []
            for t in pipeline.transitions_from(c.stage, ActorRole.CANDIDATE):
                try:
                    apply_transition(pipeline, c, t.name, me, ctx)
                except InvalidTransition:
                    continue
                actions.append(t.name)
            milestone = pipeline.stage(c.stage).milestone
            views.append(
                CandidacyView(
                    candidacy_id=c.id,
                    opening_id=c.opening_id,
                    opening_title=opening.title,
                    stage=pipeline.stage(c.stage).shown_to_candidate,
                    active=milestone not in (Milestone.ARCHIVED, Milestone.HIRED),
                    actions=tuple(actions),
                )
            )
        consents = tuple(
            ConsentView(
                purpose=r.purpose,
                granted=r.in_force(self._clock()),
                lawful_basis=r.lawful_basis,
                recorded_at=r.recorded_at,
                expires_at=r.expires_at,
            )
            for r in self.consents(person_id).values()
        )
        return CandidateView(
            person_id=person.id,
            name=person.name,
            availability=person.preferences.availability,
            check_back_on=person.preferences.check_back_on,
            hear_about_openings=person.preferences.hear_about_openings,
            candidacies=tuple(views),
            consents=consents,
            actions=("update_profile", "set_availability", "grant_consent", "withdraw_consent"),
        )

    # ---------------------------------------------------------------- people

    def add_person(self, person: Person | Mapping[str, Any], *, actor: Actor) -> Person:
        """Add someone to the talent pool (a relationship is opened with them)."""
        p = self._input(person, Person)
        check_action("create_person", actor, p.id)
        return self._command(lambda uow: self._insert_person(uow, p, actor))

    def add_people(
        self, people: Iterable[Person | Mapping[str, Any]], *, actor: Actor
    ) -> list[Person]:
        """Add many people in one transaction: every one of them, or (on any error) none.

        Every input is validated before anything is written; bulk importers call this once per
        batch. What is written is what :meth:`add_person` writes for each of them (the events
        share one correlation id), with the storage port's bulk writes
        (:func:`relcrm.storage.base.insert_many` and friends).
        """
        batch = [self._input(p, Person) for p in people]
        for p in batch:
            check_action("create_person", actor, p.id)
        counts = Counter(p.id for p in batch)
        if len(counts) != len(batch):
            dup = next(p.id for p in batch if counts[p.id] > 1)
            raise AlreadyExists("person", dup, "given twice in one batch")
        if len(batch) < 2:
            return self._command(lambda uow: [self._insert_person(uow, p, actor) for p in batch])

        def insert(uow: _UnitOfWork) -> list[Person]:
            now = uow.now
            people = [p if p.created_at is not None else _with_created_at(p, now) for p in batch]
            self._insert_people(uow, [_NewPerson.of(p) for p in people], actor)
            return people

        return self._command(insert)

    def add_encoded_people(self, people: Sequence[EncodedPerson], *, actor: Actor) -> int:
        """Add many people given as their encoded records, in one transaction; returns how many.

        For bulk importers that make people in other processes: each is ``(id, name, email,
        sources, text)``, where ``text`` is the compact JSON of a checked :class:`Person` (as
        ``relcrm.serialization.unstructure`` and the built-in stores encode it) without an owner
        or a creation time (``"owner_id":null,"created_at":null`` its last members). What is
        written is what :meth:`add_people` writes for those people: the same records
        (``created_at`` the command's time), events and outbox rows.
        """
        batch = list(people)
        for pid, _, _, _, text in batch:
            check_action("create_person", actor, pid)
            if not text.endswith(_NO_CREATED_AT):
                raise ValidationError(
                    "Person", [f"an encoded person must end with {_NO_CREATED_AT!r} @ $"]
                )
        counts = Counter(entry[0] for entry in batch)
        if len(counts) != len(batch):
            dup = next(entry[0] for entry in batch if counts[entry[0]] > 1)
            raise AlreadyExists("person", dup, "given twice in one batch")
        if not batch:
            return 0

        def insert(uow: _UnitOfWork) -> int:
            stamp = ',"owner_id":null,"created_at":' + _quote(uow.now.isoformat()) + "}"
            cut = -len(_NO_CREATED_AT)
            self._insert_people(
                uow,
                [
                    _NewPerson(
                        pid,
                        name,
                        email,
                        sources,
                        None,
                        _NOT_CONTACTED not in text,
                        JSONText(text[:cut] + stamp),
                        None,
                    )
                    for pid, name, email, sources, text in batch
                ],
                actor,
            )
            return len(batch)

        return self._command(insert)

    def _insert_person(self, uow: _UnitOfWork, p: Person, actor: Actor) -> Person:
        new = p if p.created_at is not None else attrs.evolve(p, created_at=uow.now)
        uow.insert(new)
        uow.insert(self._new_relationship(new))
        uow.emit("person.created", actor, {"person": new.id}, _created_data(new))
        return new

    def _new_relationship(self, person: Person) -> Relationship:
        owners = (person.owner_id,) if person.owner_id else ()
        return Relationship(person.id, self.organisation, owner_ids=owners)

    def _insert_people(self, uow: _UnitOfWork, people: Sequence[_NewPerson], actor: Actor) -> None:
        """What :meth:`_insert_person` does for each of ``people`` (checked, ids distinct, with
        their creation time), with bulk writes: the same records, events and outbox rows.

        The per-person work is kept small: the first person's event is made and encoded the
        usual way and serves as the template for the others' (same type, time, actor and
        correlation id); relationships of people without an owner differ only in the person id;
        the candidate's notification is derived from one routed the usual way
        (:meth:`_created_notice`), falling back to routing each person when it cannot be; and
        the JSON of what differs from one person to the next is put into the encoded templates
        (:class:`_JSONTemplate`) instead of encoding every mapping whole. The rows are written a
        chunk of people at a time, so that few of them are held at once.
        """
        now = uow.now
        # Made through make_event, so the time, actor and visibility are checked once for all.
        proto = make_event(uow.context, "person.created", actor, {"person": people[0].id}, {})
        event_ids = [proto.id, *new_ids("evt", len(people) - 1)]
        envelope = unstructure(proto)
        occurred_at = _utc_iso(now)
        ownerless = unstructure(Relationship("-", self.organisation))
        ownerless_text = _JSONTemplate.make(ownerless, [("person_id",)])
        event_text = _JSONTemplate.make(envelope, [("id",), ("subjects", "person"), ("data",)])
        event_type = proto.type

        def event(event_id: str, person: _NewPerson) -> Event:
            # What make_event gives for this person (only the id comes from the batch).
            return attrs.evolve(
                proto, id=event_id, subjects={"person": person.id}, data=person.created_data()
            )

        outbox = _CreatedOutbox(self, uow, event) if self.notifiers else None
        for start in range(0, len(people), _CHUNK):
            chunk = list(
                zip(event_ids[start : start + _CHUNK], people[start : start + _CHUNK], strict=True)
            )
            records: list[Record] = []
            log: list[EventRecord] = []
            for event_id, p in chunk:
                pid = p.id
                records.append(Record("person", pid, 1, p.data, pid))
                rel_data: Mapping[str, Any]
                if p.owner_id:
                    rel_data = unstructure(
                        Relationship(pid, self.organisation, owner_ids=(p.owner_id,))
                    )
                elif ownerless_text is not None:
                    rel_data = JSONText(ownerless_text.fill(_quote(pid)))
                else:
                    rel_data = {**ownerless, "person_id": pid}
                records.append(Record("relationship", pid, 1, rel_data, pid))
                payload: Mapping[str, Any]
                if event_text is not None:
                    payload = JSONText(
                        event_text.fill(
                            _quote(event_id), _quote(pid), encode_json(p.created_data())
                        )
                    )
                else:
                    payload = {
                        **envelope,
                        "id": event_id,
                        "subjects": {"person": pid},
                        "data": p.created_data(),
                    }
                log.append(EventRecord(event_id, event_type, occurred_at, payload, pid))
            insert_many(uow.tx, records)
            append_events(uow.tx, log)
            if outbox is not None:
                rows = outbox.rows(chunk)
                add_outbox_many(uow.tx, rows)
                if self.autodispatch:  # delivered after the commit
                    uow.outbox.extend(rows)
        uow.written_events = lambda: [
            event(event_id, p) for event_id, p in zip(event_ids, people, strict=True)
        ]

    def _created_notice(
        self,
        uow: _UnitOfWork,
        event: Event,
        known: tuple[Person, Relationship],
        rows: Sequence[OutboxRecord],
    ) -> "_CreatedNotice | None":
        """How the ``person.created`` rows of people routed like ``known[0]`` follow from
        ``rows``, its own; ``None`` when they may not: the actor is a candidate, the event does
        not go to exactly that candidate with only their name, or the line does not hold the name
        verbatim."""
        if event.actor.role is ActorRole.CANDIDATE or len(rows) != len(self.notifiers):
            return None
        ctx = self._routing_context(uow, event, known)
        routed = route(event, ctx) if ctx is not None else []
        if len(routed) != 1:
            return None
        viewer, shown = routed[0]
        if viewer != Actor(ActorRole.CANDIDATE, known[0].id) or list(shown.data) != ["name"]:
            return None
        mark = "\ue000"
        probe = describe_event(attrs.evolve(shown, data={"name": mark}), viewer)
        if probe.count(mark) != 1:
            return None
        head, tail = probe.split(mark)
        for name in (known[0].name, "", " {name} 'x' \"y\" %s " * 9):
            if (
                describe_event(attrs.evolve(shown, data={"name": name}), viewer)
                != head + name + tail
            ):
                return None
        first = rows[0]
        subject, body = first.payload["subject"], first.payload["body"]
        if subject != head + known[0].name + tail or not body.startswith(subject):
            return None
        payload_text = _JSONTemplate.make(
            first.payload,
            [("id",), ("event_id",), ("recipient",), ("subject",), ("body",), ("data",)],
        )
        recipient_text = _JSONTemplate.make(first.recipient, [("id",), ("address",)])
        if (
            list(first.payload.get("data", ())) != ["name"]
            or first.payload.get("recipient") != first.recipient
        ):
            payload_text = recipient_text = None
        return _CreatedNotice(
            head=head,
            tail=tail,
            body_tail=body[len(subject) :],
            payload=first.payload,
            recipient=first.recipient,
            next_attempt_at=first.next_attempt_at,
            notifiers=tuple(self.notifiers),
            payload_text=payload_text,
            recipient_text=recipient_text,
        )

    def update_profile(
        self,
        person_id: str,
        changes: Mapping[str, Any],
        *,
        actor: Actor,
        expected_version: int | None = None,
    ) -> Person:
        """Change the person's own profile fields (given as JSON-like values).

        Internal fields change through :meth:`tag` and :meth:`assign_owner`; availability through
        :meth:`set_availability`.
        """
        check_action("update_profile", actor, person_id)
        if not isinstance(changes, Mapping):
            raise ValidationError("profile changes", ["expected an object @ $"])
        bad = sorted(set(changes) - CANDIDATE_EDITABLE_FIELDS)
        if bad:
            allowed = ", ".join(sorted(CANDIDATE_EDITABLE_FIELDS))
            raise ValidationError(
                "profile changes",
                [
                    f"field {k!r} cannot be changed here (profile fields: {allowed}) @ $.{k}"
                    for k in bad
                ],
            )

        def run(uow: _UnitOfWork) -> Person:
            current = uow.load(Person, person_id, expected_version)
            merged = {**unstructure(current.value), **changes}
            prefs = changes.get("preferences")
            if isinstance(prefs, Mapping):  # merged field by field, like the profile itself
                merged["preferences"] = {**unstructure(current.value.preferences), **prefs}
            new = structure(merged, Person)
            before, after = current.value.preferences, new.preferences
            if (before.availability, before.check_back_on) != (
                after.availability,
                after.check_back_on,
            ):
                raise ValidationError(
                    "profile changes",
                    ["availability changes go through set_availability() @ $.preferences"],
                )
            changed = {
                k: unstructure(getattr(new, k))
                for k in changes
                if getattr(new, k) != getattr(current.value, k)
            }
            if not changed:
                return current.value
            uow.save(new, current.version)
            uow.emit("person.profile_updated", actor, {"person": person_id}, {"changes": changed})
            self._touch_inbound(uow, person_id, actor)
            return new

        return self._command(run)

    def _touch_inbound(self, uow: _UnitOfWork, person_id: str, actor: Actor) -> None:
        """A candidate acting for themselves is contact they started: it warms the relationship."""
        if actor.role is not ActorRole.CANDIDATE:
            return
        rel = uow.load(Relationship, person_id)
        uow.save(
            attrs.evolve(rel.value, last_inbound_at=uow.now, last_touch_at=uow.now), rel.version
        )

    def set_availability(
        self,
        person_id: str,
        availability: Availability | str,
        *,
        actor: Actor,
        check_back_on: date | None = None,
        expected_version: int | None = None,
    ) -> Person:
        """Record what the person says about being approached.

        ``not_now`` takes a check-back date (default: in six months); the other values take none.
        The owning recruiters are told when the candidate changes it; the candidate is told when
        a recruiter records it for them.
        """
        check_action("set_availability", actor, person_id)
        value = (
            availability
            if isinstance(availability, Availability)
            else structure(availability, Availability)
        )
        if value is not Availability.NOT_NOW and check_back_on is not None:
            raise ValidationError(
                "availability",
                [
                    "a check-back date only goes with 'not_now', "
                    f"not {value.value!r} @ $.check_back_on"
                ],
            )

        def run(uow: _UnitOfWork) -> Person:
            current = uow.load(Person, person_id, expected_version)
            back = check_back_on
            if value is Availability.NOT_NOW and back is None:
                back = (uow.now + DEFAULT_CHECK_BACK).date()
            prefs = attrs.evolve(current.value.preferences, availability=value, check_back_on=back)
            new = attrs.evolve(current.value, preferences=prefs)
            uow.save(new, current.version)
            uow.emit(
                "relationship.availability_changed",
                actor,
                {"person": person_id},
                {
                    "availability": value.value,
                    "check_back_on": back.isoformat() if back else None,
                    "previous": current.value.preferences.availability.value,
                },
            )
            self._touch_inbound(uow, person_id, actor)
            return new

        return self._command(run)

    def grant_consent(
        self,
        person_id: str,
        purpose: str,
        *,
        actor: Actor,
        lawful_basis: LawfulBasis | str = LawfulBasis.CONSENT,
        expires_at: datetime | None = None,
    ) -> ConsentRecord:
        """Append a grant to the consent ledger."""
        return self._consent(
            person_id, purpose, ConsentAction.GRANTED, actor, lawful_basis, expires_at
        )

    def withdraw_consent(self, person_id: str, purpose: str, *, actor: Actor) -> ConsentRecord:
        """Append a withdrawal to the consent ledger."""
        return self._consent(
            person_id, purpose, ConsentAction.WITHDRAWN, actor, LawfulBasis.CONSENT, None
        )

    def _consent(
        self,
        person_id: str,
        purpose: str,
        action: ConsentAction,
        actor: Actor,
        lawful_basis: LawfulBasis | str,
        expires_at: datetime | None,
    ) -> ConsentRecord:
        check_action(
            "grant_consent" if action is ConsentAction.GRANTED else "withdraw_consent",
            actor,
            person_id,
        )
        basis = (
            lawful_basis
            if isinstance(lawful_basis, LawfulBasis)
            else structure(lawful_basis, LawfulBasis)
        )

        def run(uow: _UnitOfWork) -> ConsentRecord:
            uow.load(Person, person_id)
            record = self._input(
                {
                    "id": new_id("cns"),
                    "person_id": person_id,
                    "purpose": purpose,
                    "action": action.value,
                    "lawful_basis": basis.value,
                    "recorded_at": uow.now.isoformat(),
                    "actor": unstructure(actor),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
                ConsentRecord,
            )
            uow.insert(record)
            data: dict[str, Any] = {"purpose": record.purpose, "lawful_basis": basis.value}
            if action is ConsentAction.GRANTED:
                data["expires_at"] = _utc_iso(expires_at) if expires_at else None
            uow.emit(f"consent.{action.value}", actor, {"person": person_id}, data)
            self._touch_inbound(uow, person_id, actor)
            return record

        return self._command(run)

    def record_self_identification(
        self, person_id: str, answers: Mapping[str, str], *, actor: Actor
    ) -> SelfIdentification:
        """Store voluntary demographic answers apart from the profile.

        Only the person may record them. They are never part of matching, timelines, events or
        notifications (so no event is logged for them).
        """
        check_action("record_self_identification", actor, person_id)
        record = self._input(
            {
                "person_id": person_id,
                "answers": dict(answers),
                "recorded_at": self._clock().isoformat(),
            },
            SelfIdentification,
        )

        def run(uow: _UnitOfWork) -> SelfIdentification:
            uow.load(Person, person_id)
            existing = uow.maybe(SelfIdentification, person_id)
            uow.save(record, existing.version if existing else 0)
            return record

        return self._command(run)

    def assign_owner(self, person_id: str, owner_id: str, *, actor: Actor) -> Person:
        """Make ``owner_id`` (a recruiter) the person's owner and a relationship owner."""
        check_action("assign_owner", actor, person_id)

        def run(uow: _UnitOfWork) -> Person:
            p = uow.load(Person, person_id)
            new = attrs.evolve(p.value, owner_id=owner_id)
            uow.save(new, p.version)
            rel = uow.load(Relationship, person_id)
            uow.save(
                attrs.evolve(rel.value, owner_ids=(owner_id, *rel.value.owner_ids)), rel.version
            )
            uow.emit("person.owner_assigned", actor, {"person": person_id}, {"owner_id": owner_id})
            return new

        return self._command(run)

    def tag(self, person_id: str, *tags: str, actor: Actor) -> Person:
        """Add internal tags (normalised, case-insensitive)."""
        check_action("tag", actor, person_id)

        def run(uow: _UnitOfWork) -> Person:
            p = uow.load(Person, person_id)
            new = attrs.evolve(p.value, tags=(*p.value.tags, *tags))
            uow.save(new, p.version)
            uow.emit("person.tagged", actor, {"person": person_id}, {"tags": list(new.tags)})
            return new

        return self._command(run)

    # ---------------------------------------------------------------- relationship

    def log_touchpoint(
        self,
        person_id: str,
        channel: Channel | str,
        direction: Direction | str,
        summary: str = "",
        *,
        actor: Actor,
        occurred_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> Touchpoint:
        """Record a contact with the person; it warms the relationship.

        ``expected_version`` is the relationship's version.
        """
        check_action("log_touchpoint", actor, person_id)

        def run(uow: _UnitOfWork) -> Touchpoint:
            rel = uow.load(Relationship, person_id, expected_version)
            tp = self._input(
                {
                    "person_id": person_id,
                    "channel": str(channel),
                    "direction": str(direction),
                    "actor": unstructure(actor),
                    "occurred_at": (occurred_at or uow.now).isoformat(),
                    "summary": summary,
                },
                Touchpoint,
            )
            uow.insert(tp)
            r = rel.value
            last = (
                tp.occurred_at if r.last_touch_at is None else max(r.last_touch_at, tp.occurred_at)
            )
            inbound = r.last_inbound_at
            if tp.direction is Direction.INBOUND:
                inbound = tp.occurred_at if inbound is None else max(inbound, tp.occurred_at)
            uow.save(
                attrs.evolve(
                    r,
                    touchpoint_count=r.touchpoint_count + 1,
                    last_touch_at=last,
                    last_inbound_at=inbound,
                ),
                rel.version,
            )
            uow.emit(
                "relationship.touchpoint_logged",
                actor,
                {"person": person_id, "touchpoint": tp.id},
                {"channel": tp.channel.value, "direction": tp.direction.value, "summary": summary},
            )
            return tp

        return self._command(run)

    def add_note(self, person_id: str, text: str, *, actor: Actor) -> Note:
        """Add an internal note (never shown to the candidate)."""
        check_action("add_note", actor, person_id)

        def run(uow: _UnitOfWork) -> Note:
            uow.load(Person, person_id)
            note = self._input(
                {
                    "person_id": person_id,
                    "author": unstructure(actor),
                    "text": text,
                    "created_at": uow.now.isoformat(),
                },
                Note,
            )
            uow.insert(note)
            uow.emit(
                "relationship.note_added",
                actor,
                {"person": person_id, "note": note.id},
                {"text": text},
            )
            return note

        return self._command(run)

    def schedule_follow_up(
        self,
        person_id: str,
        due: datetime,
        *,
        actor: Actor,
        note: str = "",
        owner_id: str | None = None,
    ) -> Relationship:
        """Set the relationship's next follow-up (replacing any earlier one)."""
        check_action("schedule_follow_up", actor, person_id)
        follow = self._input(
            {
                "due": due.isoformat() if isinstance(due, datetime) else due,
                "owner_id": owner_id or actor.id,
                "note": note,
            },
            FollowUp,
        )

        def run(uow: _UnitOfWork) -> Relationship:
            rel = uow.load(Relationship, person_id)
            new = attrs.evolve(rel.value, next_follow_up=follow)
            uow.save(new, rel.version)
            uow.emit(
                "relationship.follow_up_scheduled",
                actor,
                {"person": person_id},
                {"due": _utc_iso(follow.due), "owner_id": follow.owner_id, "note": note},
            )
            return new

        return self._command(run)

    def create_pool(self, name: str, *, actor: Actor, description: str = "") -> TalentPool:
        check_action("add_to_pool", actor, None)
        pool = self._input(
            {"name": name, "description": description, "owner_id": actor.id}, TalentPool
        )

        def run(uow: _UnitOfWork) -> TalentPool:
            uow.insert(pool)
            return pool

        return self._command(run)

    def add_to_pool(self, person_id: str, pool_id: str, *, actor: Actor) -> Relationship:
        check_action("add_to_pool", actor, person_id)

        def run(uow: _UnitOfWork) -> Relationship:
            pool = uow.load(TalentPool, pool_id).value
            rel = uow.load(Relationship, person_id)
            if pool_id in rel.value.pools:
                return rel.value
            new = attrs.evolve(rel.value, pools=(*rel.value.pools, pool_id))
            uow.save(new, rel.version)
            uow.emit(
                "relationship.pool_joined",
                actor,
                {"person": person_id},
                {"pool_id": pool_id, "pool_name": pool.name},
            )
            return new

        return self._command(run)

    # ---------------------------------------------------------------- openings and candidacies

    def add_opening(self, opening: Opening | Mapping[str, Any], *, actor: Actor) -> Opening:
        o = self._input(opening, Opening)
        check_action("create_opening", actor, None)
        if o.pipeline not in self.pipelines:
            known = ", ".join(sorted(self.pipelines))
            raise ValidationError(
                "Opening", [f"unknown pipeline {o.pipeline!r}; registered: {known} @ $.pipeline"]
            )

        def run(uow: _UnitOfWork) -> Opening:
            new = o if o.created_at is not None else attrs.evolve(o, created_at=uow.now)
            uow.insert(new)
            uow.emit(
                "opening.created",
                actor,
                {"opening": new.id},
                {"title": new.title, "status": new.status.value},
            )
            return new

        return self._command(run)

    def set_opening_status(
        self, opening_id: str, status: OpeningStatus | str, *, actor: Actor
    ) -> Opening:
        check_action("set_opening_status", actor, None)
        value = status if isinstance(status, OpeningStatus) else structure(status, OpeningStatus)

        def run(uow: _UnitOfWork) -> Opening:
            o = uow.load(Opening, opening_id)
            new = attrs.evolve(o.value, status=value)
            uow.save(new, o.version)
            uow.emit(
                "opening.status_changed",
                actor,
                {"opening": opening_id},
                {"title": new.title, "status": value.value, "previous": o.value.status.value},
            )
            return new

        return self._command(run)

    def add_candidacy(
        self,
        person_id: str,
        opening_id: str,
        *,
        actor: Actor,
        source: str = "",
        referrer_id: str | None = None,
        stage: str | None = None,
    ) -> Candidacy:
        """Put a person in the process for an opening.

        A candidate applying starts at the pipeline's *applied* stage; anyone else starts at the
        initial stage (a lead) unless ``stage`` says otherwise. One active candidacy per person and
        opening.
        """
        check_action("create_candidacy", actor, person_id)
        return self._command(
            lambda uow: self._create_candidacy(
                uow, person_id, opening_id, actor, source, referrer_id, stage
            )
        )

    def _create_candidacy(
        self,
        uow: _UnitOfWork,
        person_id: str,
        opening_id: str,
        actor: Actor,
        source: str,
        referrer_id: str | None,
        stage: str | None,
    ) -> Candidacy:
        uow.load(Person, person_id)
        opening = uow.load(Opening, opening_id).value
        pipeline = self.pipeline(opening.pipeline)
        if stage is None:
            stage = pipeline.initial
            if actor.role is ActorRole.CANDIDATE:
                stage = next(
                    (s.id for s in pipeline.stages if s.milestone is Milestone.APPLIED), stage
                )
        elif actor.role is not ActorRole.RECRUITER:
            raise InvalidTransition(
                stage="(none)",
                target=stage,
                actor=str(actor),
                reason="only recruiters choose the starting stage",
            )
        try:
            milestone = pipeline.stage(stage).milestone
        except KeyError:
            raise ValidationError(
                "Candidacy", [f"unknown stage {stage!r} in pipeline {pipeline.name!r} @ $.stage"]
            ) from None
        if milestone in (Milestone.ARCHIVED, Milestone.HIRED):
            raise InvalidTransition(
                stage="(none)",
                target=stage,
                actor=str(actor),
                reason="a candidacy cannot start closed",
            )
        if opening.status is not OpeningStatus.OPEN:
            raise InvalidTransition(
                stage="(none)",
                target=stage,
                actor=str(actor),
                reason=f"the opening is {opening.status.value}",
            )
        for other in uow.find(Candidacy, person_id=person_id, opening_id=opening_id):
            m = self.pipeline(other.value.pipeline).stage(other.value.stage).milestone
            if m is not Milestone.ARCHIVED:
                state = "was hired" if m is Milestone.HIRED else "is already in process"
                raise AlreadyExists(
                    "candidacy", other.value.id, f"{person_id} {state} for {opening_id}"
                )
        if referrer_id is None and actor.role is ActorRole.REFERRER:
            referrer_id = actor.id
        candidacy = Candidacy(
            id=new_id("cnd"),
            person_id=person_id,
            opening_id=opening_id,
            stage=stage,
            pipeline=pipeline.name,
            history=(StageChange(None, stage, "create", actor, uow.now),),
            source=source,
            referrer_id=referrer_id,
            furthest_milestone=milestone,
            interest_confirmed=actor.role is ActorRole.CANDIDATE,
            created_at=uow.now,
        )
        uow.insert(candidacy)
        data = {**candidacy_data(candidacy, pipeline, opening), "source": source}
        uow.emit("candidacy.created", actor, candidacy_subjects(candidacy), data)
        rel = uow.load(Relationship, person_id).value
        if rel.stage is not RelationshipStage.EMPLOYEE:
            uow.set_relationship_stage(person_id, RelationshipStage.CANDIDATE, actor)
        self._touch_inbound(uow, person_id, actor)  # applying is contact the person started
        return candidacy

    def transition(
        self,
        candidacy_id: str,
        name: str,
        *,
        actor: Actor,
        reason: ArchiveReason | None = None,
        expected_version: int | None = None,
    ) -> Candidacy:
        """Take the pipeline transition ``name``; refused moves raise
        :class:`~relcrm.InvalidTransition`; plugins may veto (:class:`~relcrm.TransitionVetoed`).
        """

        def run(uow: _UnitOfWork) -> Candidacy:
            current = uow.load(Candidacy, candidacy_id, expected_version)
            c = current.value
            opening = uow.load(Opening, c.opening_id).value
            pipeline = self.pipeline(c.pipeline)
            ctx = attrs.evolve(uow.context, opening=opening)
            new, events = apply_transition(pipeline, c, name, actor, ctx, reason=reason)
            self._ask_plugins(c, pipeline, name, actor)
            uow.save(new, current.version)
            uow.events.extend(events)
            self._after_transition(uow, new, pipeline, opening, actor)
            return new

        return self._command(run)

    def _ask_plugins(self, c: Candidacy, pipeline: Pipeline, name: str, actor: Actor) -> None:
        t = pipeline.transition(name)
        hook = self.plugin_manager.hook.relcrm_before_transition
        for plugin, call in call_each(hook, crm=self, candidacy=c, transition=t, actor=actor):
            try:
                refusal = call()
            except RelcrmError:
                raise
            except Exception as exc:
                raise PluginError(
                    plugin, f"relcrm_before_transition raised {type(exc).__name__}: {exc}"
                ) from exc
            if refusal is not None:
                raise TransitionVetoed(
                    stage=c.stage,
                    target=t.target,
                    actor=str(actor),
                    reason=str(refusal),
                    plugin=plugin,
                )

    def _after_transition(
        self, uow: _UnitOfWork, c: Candidacy, pipeline: Pipeline, opening: Opening, actor: Actor
    ) -> None:
        milestone = pipeline.stage(c.stage).milestone
        referral = next(
            (r for r in uow.find(Referral, person_id=c.person_id) if r.value.candidacy_id == c.id),
            None,
        )
        if milestone is Milestone.HIRED:
            episode = EmploymentEpisode(
                id=new_id("emp"),
                person_id=c.person_id,
                title=opening.title,
                started_on=uow.now.date(),
                candidacy_id=c.id,
            )
            uow.insert(episode)
            uow.emit(
                "employment.started",
                actor,
                {"person": c.person_id, "employment": episode.id},
                {"title": episode.title, "started_on": episode.started_on.isoformat()},
            )
            uow.set_relationship_stage(c.person_id, RelationshipStage.EMPLOYEE, actor)
            status = ReferralStatus.HIRED
        elif milestone is Milestone.ARCHIVED:
            active = [
                o
                for o in uow.find(Candidacy, person_id=c.person_id)
                if o.value.id != c.id
                and self.pipeline(o.value.pipeline).stage(o.value.stage).milestone
                not in (Milestone.ARCHIVED, Milestone.HIRED)
            ]
            rel = uow.load(Relationship, c.person_id).value
            if not active and rel.stage is RelationshipStage.CANDIDATE:
                uow.set_relationship_stage(c.person_id, RelationshipStage.ENGAGED, actor)
            status = ReferralStatus.CLOSED
        else:
            rel = uow.load(Relationship, c.person_id).value
            if rel.stage in (RelationshipStage.ENGAGED, RelationshipStage.PROSPECT):
                uow.set_relationship_stage(c.person_id, RelationshipStage.CANDIDATE, actor)
            status = ReferralStatus.IN_PROCESS
        if referral is not None and referral.value.status is not status:
            uow.save(attrs.evolve(referral.value, status=status), referral.version)
        if actor.role is ActorRole.CANDIDATE:
            self._touch_inbound(uow, c.person_id, actor)

    def move(
        self,
        candidacy_id: str,
        to_stage: str,
        *,
        actor: Actor,
        reason: ArchiveReason | None = None,
        expected_version: int | None = None,
    ) -> Candidacy:
        """Move to ``to_stage`` by whichever transition the actor's role may take to get there.

        The transition is chosen from the candidacy as read here; if it changes before the write,
        :class:`~relcrm.ConcurrencyConflict` is raised rather than taking a stale transition.
        """
        current = self.load(Candidacy, candidacy_id)
        if expected_version is not None and current.version != expected_version:
            raise ConcurrencyConflict("candidacy", candidacy_id, expected_version, current.version)
        c = current.value
        pipeline = self.pipeline(c.pipeline)
        t = pipeline.find_move(c.stage, to_stage, actor.role)
        if t is None:
            options = sorted({x.target for x in pipeline.transitions_from(c.stage, actor.role)})
            raise InvalidTransition(
                stage=c.stage,
                target=to_stage,
                actor=str(actor),
                reason=f"no transition for {actor.role.value} to {to_stage!r}; "
                f"possible: {options or 'none'}",
            )
        return self.transition(
            candidacy_id, t.name, actor=actor, reason=reason, expected_version=current.version
        )

    def archive(
        self,
        candidacy_id: str,
        reason: ArchiveReasonType | str,
        *,
        actor: Actor,
        note: str = "",
        expected_version: int | None = None,
    ) -> Candidacy:
        """Close a candidacy with a typed reason; the reason and note stay internal."""
        kind = (
            reason
            if isinstance(reason, ArchiveReasonType)
            else structure(reason, ArchiveReasonType)
        )
        return self.transition(
            candidacy_id,
            "archive",
            actor=actor,
            reason=ArchiveReason(kind, note),
            expected_version=expected_version,
        )

    def withdraw(
        self,
        candidacy_id: str,
        *,
        actor: Actor,
        note: str = "",
        expected_version: int | None = None,
    ) -> Candidacy:
        """The candidate withdraws from a process."""
        return self.transition(
            candidacy_id,
            "withdraw",
            actor=actor,
            reason=ArchiveReason(ArchiveReasonType.WITHDREW, note),
            expected_version=expected_version,
        )

    def confirm_interest(
        self, candidacy_id: str, *, actor: Actor, expected_version: int | None = None
    ) -> Candidacy:
        """The candidate confirms interest in an opening they were invited to."""
        return self.transition(
            candidacy_id, "confirm_interest", actor=actor, expected_version=expected_version
        )

    # ---------------------------------------------------------------- relevance

    def talent_index(self) -> TalentIndex:
        """The match index of this CRM, built from the store on first use and kept in step with
        every commit afterwards."""
        if self._talent is None:
            from .matching import MatchEngine

            found = collect_registrations(
                self.plugin_manager,
                "relcrm_register_match_signals",
                "match signal",
                key=lambda s: s.name,
            )
            engine = MatchEngine(weights=self.match_weights, signals=[s for _, s in found.values()])
            self._talent = TalentIndex(self, engine)
        return self._talent

    def match(
        self,
        role: "str | Opening | RoleProfile",
        *,
        limit: int = 20,
        purpose: str | None = None,
        now: datetime | None = None,
    ) -> "MatchResults":
        """The people in the pool who fit ``role`` best: an opening (or its id), or a
        :class:`~relcrm.matching.RoleProfile` for a role that has no opening yet.

        Hard filters come first (do not contact, not looking or before their check-back date,
        already in process for this opening, recently hired, and without consent for ``purpose``
        when one is given); every match explains its score signal by signal.
        """
        from .matching import RoleProfile

        given: object = role  # checked at run time: callers are not always typed
        if not isinstance(given, str | Opening | RoleProfile):
            got = type(given).__name__
            raise ValidationError(
                "role", [f"expected an opening id, an Opening or a RoleProfile, got {got} @ $"]
            )
        target = self.get_opening(role) if isinstance(role, str) else role
        return self.talent_index().engine.match(
            target, limit, now=now or self._clock(), purpose=purpose
        )

    def openings_for(self, person_id: str, *, limit: int = 10) -> "MatchResults":
        """The open openings that fit a person best, by the same signals."""
        index = self.talent_index()
        person = self.get_person(person_id)
        profile = index._profile(
            person,
            self.relationship(person_id),
            self.candidacies(person_id=person_id),
            self.consent_ledger(person_id),
            self.employment(person_id),
            self._clock(),
        )
        return index.engine.openings_for(profile, limit, now=self._clock())

    def rediscover(
        self,
        opening_id: str,
        *,
        actor: Actor,
        per_segment: int = 10,
        suggest: bool = True,
    ) -> Rediscovery:
        """Search the pool for an opening, segment by segment: silver medalists, past
        applicants, prospects, employees open to internal moves, and alumni.

        Logs an ``opening.rediscovered`` event (its owner is told). With ``suggest``, people who
        asked to hear about openings, are open to them and gave the ``job_alerts`` consent are
        told about this one (``person.opening_suggested``).
        """
        check_action("rediscover", actor, None)
        opening = self.get_opening(opening_id)
        results = self.match(opening, limit=max(200, per_segment * len(SEGMENTS) * 4))
        picked: dict[str, list[Any]] = {s: [] for s in SEGMENTS}
        for m in results.matches:
            seg = m.explanation.segment
            if seg in picked and len(picked[seg]) < per_segment:
                picked[seg].append(m)
        segments = {s: tuple(ms) for s, ms in picked.items()}

        def run(uow: _UnitOfWork) -> tuple[str, ...]:
            told: list[str] = []
            total = sum(len(ms) for ms in segments.values())
            uow.emit(
                "opening.rediscovered",
                actor,
                {"opening": opening.id},
                {
                    "title": opening.title,
                    "total": total,
                    "segments": {
                        s: [{"person_id": m.person_id, "score": round(m.score, 4)} for m in ms]
                        for s, ms in segments.items()
                    },
                    "filtered": dict(results.filtered),
                },
            )
            if not suggest:
                return ()
            for ms in segments.values():
                for m in ms:
                    person = uow.load(Person, m.person_id).value
                    prefs = person.preferences
                    if not (prefs.hear_about_openings and prefs.availability is Availability.OPEN):
                        continue
                    if not self.has_consent(person.id, JOB_ALERTS, at=uow.now):
                        continue
                    uow.emit(
                        "person.opening_suggested",
                        actor,
                        {"person": person.id, "opening": opening.id},
                        {"opening_id": opening.id, "opening_title": opening.title},
                    )
                    told.append(person.id)
            return tuple(told)

        told = self._command(run)
        return Rediscovery(opening.id, segments, dict(results.filtered), told)

    # ---------------------------------------------------------------- beyond one opening

    def refer(
        self,
        person: str | Person | Mapping[str, Any],
        *,
        referrer_id: str,
        actor: Actor,
        opening_id: str | None = None,
        note: str = "",
    ) -> Referral:
        """Record a referral: an existing person's id, or a new person to add to the pool.

        With ``opening_id`` a candidacy is started too, and the referrer hears about its progress.
        """
        check_action("refer", actor, None)
        new_person = (
            None if isinstance(person, str) else self._input(person, Person, sources=["referral"])
        )

        def run(uow: _UnitOfWork) -> Referral:
            if new_person is not None:
                person_id = self._insert_person(uow, new_person, actor).id
            else:
                person_id = str(person)
                uow.load(Person, person_id)
            candidacy_id = None
            title = ""
            if opening_id is not None:
                c = self._create_candidacy(
                    uow, person_id, opening_id, actor, "referral", referrer_id, None
                )
                candidacy_id = c.id
                title = uow.load(Opening, opening_id).value.title
            referral = Referral(
                id=new_id("ref"),
                referrer_id=referrer_id,
                person_id=person_id,
                opening_id=opening_id,
                candidacy_id=candidacy_id,
                note=note,
                created_at=uow.now,
            )
            uow.insert(referral)
            uow.emit(
                "referral.submitted",
                actor,
                {"person": person_id, "referral": referral.id},
                {
                    "referrer_id": referrer_id,
                    "opening_id": opening_id,
                    "opening_title": title,
                    "note": note,
                },
            )
            return referral

        return self._command(run)

    def start_employment(
        self,
        person_id: str,
        title: str,
        *,
        actor: Actor,
        started_on: date | None = None,
        open_to_internal_moves: bool = False,
    ) -> EmploymentEpisode:
        """Record someone as an employee (hires through a candidacy get this automatically)."""
        check_action("start_employment", actor, person_id)

        def run(uow: _UnitOfWork) -> EmploymentEpisode:
            uow.load(Person, person_id)
            if any(e.value.current for e in uow.find(EmploymentEpisode, person_id=person_id)):
                raise AlreadyExists("employment", person_id, "the person is already employed")
            episode = EmploymentEpisode(
                id=new_id("emp"),
                person_id=person_id,
                title=title,
                started_on=started_on or uow.now.date(),
                open_to_internal_moves=open_to_internal_moves,
            )
            uow.insert(episode)
            uow.emit(
                "employment.started",
                actor,
                {"person": person_id, "employment": episode.id},
                {"title": title, "started_on": episode.started_on.isoformat()},
            )
            uow.set_relationship_stage(person_id, RelationshipStage.EMPLOYEE, actor)
            return episode

        return self._command(run)

    def _current_episode(self, uow: _UnitOfWork, person_id: str) -> Versioned[EmploymentEpisode]:
        for e in uow.find(EmploymentEpisode, person_id=person_id):
            if e.value.current:
                return e
        raise NotFound("employment", person_id)

    def set_internal_moves(
        self, person_id: str, open_to_moves: bool, *, actor: Actor
    ) -> EmploymentEpisode:
        """An employee says whether they are open to internal moves (redeployment)."""
        check_action("set_internal_moves", actor, person_id)

        def run(uow: _UnitOfWork) -> EmploymentEpisode:
            e = self._current_episode(uow, person_id)
            new = attrs.evolve(e.value, open_to_internal_moves=bool(open_to_moves))
            uow.save(new, e.version)
            uow.emit(
                "employment.internal_moves_changed",
                actor,
                {"person": person_id, "employment": new.id},
                {"open_to_internal_moves": new.open_to_internal_moves},
            )
            return new

        return self._command(run)

    def end_employment(
        self,
        person_id: str,
        *,
        actor: Actor,
        ended_on: date | None = None,
        reason: str = "",
        rehire_eligible: bool | None = None,
    ) -> EmploymentEpisode:
        """The employee leaves and becomes alumni.

        ``reason`` and ``rehire_eligible`` are internal."""
        check_action("end_employment", actor, person_id)

        def run(uow: _UnitOfWork) -> EmploymentEpisode:
            e = self._current_episode(uow, person_id)
            new = attrs.evolve(
                e.value,
                ended_on=ended_on or uow.now.date(),
                departure_reason=reason,
                rehire_eligible=rehire_eligible,
            )
            uow.save(new, e.version)
            uow.emit(
                "employment.ended",
                actor,
                {"person": person_id, "employment": new.id},
                {
                    "ended_on": new.ended_on.isoformat() if new.ended_on else None,
                    "departure_reason": reason,
                    "rehire_eligible": rehire_eligible,
                },
            )
            uow.set_relationship_stage(person_id, RelationshipStage.ALUMNI, actor)
            return new

        return self._command(run)


def open(
    url: str,
    *,
    plugins: Iterable[object] = (),
    notifiers: Iterable[str | Notifier] = ("log",),
    load_entrypoints: bool | None = None,
    organisation: str = "default",
    clock: Callable[[], datetime] | None = None,
    autodispatch: bool = True,
    max_attempts: int = 5,
    retry_backoff: timedelta = timedelta(seconds=30),
) -> CRM:
    """Open a talent pool at ``url``: ``memory://``, ``sqlite:///path.db``, or any scheme a plugin
    registers.

    ``plugins`` are registered in addition to the built-ins and the ``relcrm`` entry points (which
    load unless ``load_entrypoints=False`` or ``RELCRM_DISABLE_PLUGIN_AUTOLOAD`` is set).
    ``notifiers`` names registered notifiers (``"memory"``, ``"log"``...) or gives instances.
    Notifications are delivered right after each commit unless ``autodispatch=False``; a failed
    delivery is retried by :meth:`CRM.dispatch_pending` after ``retry_backoff`` (doubling each
    time) and marked dead after ``max_attempts``.
    """
    if not isinstance(url, str) or ":" not in url:
        raise ValidationError(
            "url", [f"expected a storage URL like 'sqlite:///talent.db', got {url!r} @ $"]
        )
    pm = make_plugin_manager(plugins, load_entrypoints=load_entrypoints)
    scheme = url.split(":", 1)[0].lower()
    backends = collect_registrations(pm, "relcrm_register_storage_backends", "storage backend")
    if scheme not in backends:
        from .exceptions import UnknownBackend

        raise UnknownBackend(scheme, list(backends))
    store = backends[scheme][1](url)
    try:
        return CRM(
            store,
            plugin_manager=pm,
            notifiers=notifiers,
            organisation=organisation,
            clock=clock,
            autodispatch=autodispatch,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
        )
    except BaseException:
        store.close()
        raise
