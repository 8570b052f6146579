"""Keeps a CRM's match index in step with its store.

The index is built from the store the first time matching is used (so opening a CRM stays
cheap), then refreshed after every commit for the people and openings that the committed events
touch: a change is matchable as soon as the command returns.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

import attrs

from .model import (
    Candidacy,
    ConsentRecord,
    EmploymentEpisode,
    Milestone,
    Opening,
    OpeningStatus,
    Person,
    Relationship,
    RelationshipStage,
)
from .serialization import structure_stored

if TYPE_CHECKING:
    from .crm import CRM
    from .events import Event
    from .matching import CandidateContext, Match, MatchEngine
    from .matching._stored import StoredPerson
    from .storage.base import Record

__all__ = ["SEGMENTS", "Rediscovery", "TalentIndex", "segment_of"]

#: Rediscovery segments, in the order they are reported.
SEGMENTS = ("silver_medalist", "past_applicant", "prospect", "internal", "alumni")

_CLOSED = (Milestone.ARCHIVED, Milestone.HIRED)


@attrs.frozen
class Rediscovery:
    """The pool searched for one opening: ranked matches per segment, why others were held back,
    and who was told about the opening."""

    opening_id: str
    segments: "Mapping[str, tuple[Match, ...]]"
    filtered: Mapping[str, int]
    suggested_to: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(len(m) for m in self.segments.values())


def segment_of(
    relationship: Relationship | None,
    furthest: Milestone | None,
    archived: bool,
    current_job: EmploymentEpisode | None,
) -> str | None:
    """Which part of the pool a person belongs to, for rediscovery.

    Employees count only when they said they are open to internal moves; finalists who reached an
    interview or further and were archived are silver medalists.
    """
    if current_job is not None:
        return "internal" if current_job.open_to_internal_moves else None
    stage = relationship.stage if relationship else RelationshipStage.PROSPECT
    if stage is RelationshipStage.ALUMNI:
        return "alumni"
    if archived and furthest is not None:
        if furthest.rank >= Milestone.INTERVIEW.rank:
            return "silver_medalist"
        return "past_applicant"
    if furthest is None:
        return "prospect"
    return None  # in process right now


class _InStep:
    """Looks up records of one kind by id, for ids asked in increasing order, reading the
    records (in id order) alongside, so memory stays constant. Records passed over are kept
    aside (normally none: every relationship has its person); should either order turn out not
    to be increasing, the rest of the records is read into the same dictionary."""

    def __init__(self, records: Iterable["Record"]) -> None:
        self._records = iter(records)
        self._next: Record | None = next(self._records, None)
        self._asked: str | None = None
        self._aside: dict[str, Record] = {}
        self._in_order = True

    def _read_all(self) -> None:
        if self._next is not None:
            self._aside[self._next.id] = self._next
        self._aside.update((r.id, r) for r in self._records)
        self._next, self._in_order = None, False

    def __call__(self, key: str) -> "Record | None":
        if self._in_order and self._asked is not None and key <= self._asked:
            self._read_all()
        self._asked = key
        while self._in_order and self._next is not None and self._next.id < key:
            passed = self._next
            self._aside[passed.id] = passed
            self._next = next(self._records, None)
            if self._next is not None and self._next.id <= passed.id:
                self._read_all()
        if self._next is not None and self._next.id == key:
            found = self._next
            self._next = next(self._records, None)
            if self._next is not None and self._next.id <= found.id:
                self._read_all()
            return found
        return self._aside.pop(key, None)


#: Distinct contexts kept by a build for people who share one (see TalentIndex._build).
_SHARED_CONTEXTS = 10_000


def _context_key(data: Mapping[str, Any], created_at: datetime | None) -> tuple[Any, ...] | None:
    """What the context of someone with no candidacy, consent or job follows from: their
    relationship's stored ``data`` but its person id (``None`` when a value is not plain
    enough to compare: a list of lists, a mapping), and their creation time."""
    key: list[Any] = [created_at]
    for name, value in data.items():
        if name == "person_id":
            continue
        if type(value) is list:
            if any(type(v) in (list, dict) for v in value):
                return None
            key.append((name, tuple(value)))
        elif type(value) is dict:
            return None
        else:
            key.append((name, value))
    return tuple(key)


class TalentIndex:
    """The match engine of one CRM, with the context it needs about each person."""

    def __init__(self, crm: "CRM", engine: "MatchEngine") -> None:
        self.crm = crm
        self.engine = engine
        self._build()

    def _build(self) -> None:
        crm = self.crm
        by_person: dict[str, list[Candidacy]] = defaultdict(list)
        for c in crm.candidacies():
            by_person[c.person_id].append(c)
        # records read back from the store were checked when written: the faster converter
        decode = structure_stored
        consents: dict[str, list[ConsentRecord]] = defaultdict(list)
        for rec in crm.store.iter_records("consent"):
            record = decode(rec.data, ConsentRecord)
            consents[record.person_id].append(record)
        jobs: dict[str, list[EmploymentEpisode]] = defaultdict(list)
        for rec in crm.store.iter_records("employment"):
            job = decode(rec.data, EmploymentEpisode)
            jobs[job.person_id].append(job)
        # People and their relationships are streamed side by side (both come in id order, and
        # a relationship's id is its person's): a big pool is never all in memory at once.
        relationship_of = _InStep(crm.store.iter_records("relationship"))
        now = crm.now()

        # The index reads a few fields of each person: they are read from the stored data
        # without building the whole Person (see relcrm.matching._stored).
        from .matching._stored import stored_person

        # Someone with no candidacy, consent or job has a context that follows from their
        # relationship's data, bar its person id, and their creation time: people imported
        # together and not contacted yet share both, so their context is worked out once.
        shared: dict[tuple[Any, ...], CandidateContext] = {}

        def people() -> Iterable[tuple["Person | StoredPerson", "CandidateContext"]]:
            for rec in crm.store.iter_records("person"):
                person = stored_person(rec.data)
                pid = person.id
                found = relationship_of(rec.id)
                candidacies = by_person.get(pid, ())
                ledger = consents.get(pid, ())
                held = jobs.get(pid, ())
                key = None
                if found is not None and not (candidacies or ledger or held):
                    key = _context_key(found.data, person.created_at)
                    context = shared.get(key) if key is not None else None
                    if context is not None:
                        yield person, context
                        continue
                relationship = decode(found.data, Relationship) if found else None
                context = self._context(person, relationship, candidacies, ledger, held, now)
                if key is not None and len(shared) < _SHARED_CONTEXTS:
                    shared[key] = context
                yield person, context

        self.engine.index(people(), today=now.date())
        self.engine.index_roles(o for o in crm.openings() if o.status is OpeningStatus.OPEN)

    def _profile(
        self,
        person: Person,
        relationship: Relationship | None,
        candidacies: Sequence[Candidacy],
        consents: Iterable[ConsentRecord],
        jobs: Iterable[EmploymentEpisode],
        now: datetime,
    ) -> Any:
        from .matching import CandidateProfile

        return CandidateProfile.from_person(
            person,
            self._context(person, relationship, candidacies, consents, jobs, now),
            today=now.date(),
        )

    def _context(
        self,
        person: "Person | StoredPerson",
        relationship: Relationship | None,
        candidacies: Sequence[Candidacy],
        consents: Iterable[ConsentRecord],
        jobs: Iterable[EmploymentEpisode],
        now: datetime,
    ) -> "CandidateContext":
        from .matching import CandidateContext

        crm = self.crm
        milestones = [(c, crm.pipeline(c.pipeline).stage(c.stage).milestone) for c in candidacies]
        open_for = frozenset(c.opening_id for c, m in milestones if m not in _CLOSED)
        archived = [c for c, m in milestones if m is Milestone.ARCHIVED]
        furthest_c = max(archived, key=lambda c: c.furthest_milestone.rank, default=None)
        furthest = max(
            (c.furthest_milestone for c in candidacies), key=lambda m: m.rank, default=None
        )
        current: dict[str, ConsentRecord] = {}
        for record in sorted(consents, key=lambda r: (r.recorded_at, r.id)):
            current[record.purpose] = record
        job = next((j for j in jobs if j.current), None)
        hires = [j.started_on for j in jobs]
        last = relationship.last_touch_at if relationship else None
        return CandidateContext(
            warmth=relationship.warmth(now) if relationship else None,
            furthest_milestone=furthest,
            archive_reason=(
                furthest_c.archive_reason.type
                if furthest_c is not None and furthest_c.archive_reason is not None
                else None
            ),
            last_activity_at=last or person.created_at,
            segment=segment_of(relationship, furthest, bool(archived) and not open_for, job),
            consents=frozenset(p for p, r in current.items() if r.in_force(now)),
            in_process_for=open_for,
            hired_at=datetime.combine(max(hires), time(), UTC) if hires else None,
        )

    def refresh(self, events: Iterable["Event"]) -> None:
        """Re-index the people and openings that ``events`` touched."""
        crm = self.crm
        people: set[str] = set()
        openings: set[str] = set()
        for event in events:
            if event.person_id is not None:
                people.add(event.person_id)
            if event.type.startswith("opening."):
                openings.add(event.subjects.get("opening", ""))
        now = crm.now()
        for person_id in people:
            person = crm.store.get("person", person_id)
            if person is None:
                self.engine.remove(person_id)
                continue
            rel = crm.store.get("relationship", person_id)
            self.engine.add(
                self._profile(
                    crm._decode(person.data, Person),
                    crm._decode(rel.data, Relationship) if rel else None,
                    crm.candidacies(person_id=person_id),
                    crm.consent_ledger(person_id),
                    crm.employment(person_id),
                    now,
                )
            )
        for opening_id in openings:
            rec = crm.store.get("opening", opening_id)
            opening = crm._decode(rec.data, Opening) if rec else None
            if opening is not None and opening.status is OpeningStatus.OPEN:
                self.engine.add_role(opening)
            else:
                self.engine.remove_role(opening_id)
