"""The default matching engine: hard filters, BM25 retrieval, signals, explanations.

Pure and in process: it reads profiles handed to it and never touches storage. The CRM builds it
from the store and keeps it current from committed events (:meth:`MatchEngine.add`,
:meth:`MatchEngine.remove`).
"""

from __future__ import annotations

import gc
import math
import sys
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import attrs
import numpy as np

from ..model import (
    ArchiveReasonType,
    Availability,
    Location,
    Milestone,
    Opening,
    Person,
    RemotePolicy,
    Seniority,
)
from ._chunks import ChunkTable
from ._index import FloatArray as Float32Array
from ._index import IntArray, PostingSpans, Query, TextIndex
from ._profiles import (
    NO_STRINGS,
    CandidateContext,
    CandidateProfile,
    RoleProfile,
    _seniority_of,
    profile_fields,
)
from ._signals import (
    AVAILABILITY_VALUE,
    BUILTIN_SIGNALS,
    DEFAULT_WEIGHTS,
    REMOTE_CODE,
    SENIORITY_ORDER,
    MatchBatch,
    MatchSignal,
    stage_value,
    title_similarity,
)
from ._skills import canonical_skills, display, related, skill_scanner
from ._stored import StoredPerson, as_person

__all__ = [
    "FILTER_REASONS",
    "Contribution",
    "Explanation",
    "Match",
    "MatchEngine",
    "MatchResults",
    "SkillMatch",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Hard filter reasons, in the order they are checked (a person is counted under the first).
FILTER_REASONS = (
    "do_not_contact",
    "no_consent",
    "not_looking",
    "check_back_later",
    "in_process",
    "recently_hired",
)

_AVAIL_CODE = {a: i for i, a in enumerate(Availability)}
_NAN = float("nan")


@attrs.frozen
class Contribution:
    """One signal's part of a score: ``contribution = weight * value``."""

    signal: str
    value: float
    weight: float
    contribution: float


@attrs.frozen
class SkillMatch:
    """A required (or nice-to-have) skill and how the person covers it."""

    skill: str
    matched_as: str
    partial: bool = False  # matched through a related skill of the taxonomy


@attrs.frozen
class Explanation:
    """Why a person matched: the score is the sum of ``contributions``, in order."""

    contributions: tuple[Contribution, ...]
    matched_skills: tuple[SkillMatch, ...] = ()
    missing_skills: tuple[str, ...] = ()
    matched_terms: tuple[str, ...] = ()
    segment: str | None = None

    @property
    def score(self) -> float:
        return sum((c.contribution for c in self.contributions), 0.0)


@attrs.frozen
class Match:
    """One ranked match: a person for a role (or a role for a person, in reverse)."""

    person_id: str
    role_id: str
    score: float
    explanation: Explanation


@attrs.frozen
class MatchResults:
    """Ranked matches and how many were held back by each hard filter."""

    matches: tuple[Match, ...]
    filtered: Mapping[str, int] = attrs.field(factory=dict)
    considered: int = 0


def _epoch_days(moment: datetime | date | None) -> float:
    if moment is None:
        return _NAN
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return moment.timestamp() / 86400.0


class MatchEngine:
    """Ranks candidates for a role and roles for a candidate.

    ``weights`` overrides the default weight of any signal by name; ``signals`` adds signals (a
    :class:`MatchSignal` each, weighted by ``weights[name]`` or its ``weight`` attribute, else
    0.1). ``feedback_docs`` > 0 turns on pseudo-relevance feedback (off by default: it did not pay
    off on the evaluation set, see docs/matching.md).
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        signals: Iterable[MatchSignal] = (),
        *,
        k1: float = 1.2,
        b: float = 0.75,
        shortlist: int = 500,
        budget: int | None = 200_000,
        recently_hired_days: int = 180,
        feedback_docs: int = 0,
        feedback_terms: int = 30,
        feedback_weight: float = 0.3,
    ) -> None:
        self.signals: tuple[MatchSignal, ...] = (*BUILTIN_SIGNALS(), *signals)
        self.weights: dict[str, float] = {}
        for s in self.signals:
            default = DEFAULT_WEIGHTS.get(s.name, float(getattr(s, "weight", 0.1)))
            self.weights[s.name] = float((weights or {}).get(s.name, default))
        self.shortlist = shortlist
        self.budget = budget
        self._scratch = np.zeros(0, dtype=np.float32)
        self._stamp = np.zeros(0, dtype=np.int32)
        self.recently_hired_days = recently_hired_days
        self.feedback_docs = feedback_docs
        self.feedback_terms = feedback_terms
        self.feedback_weight = feedback_weight
        self._k1, self._b = k1, b
        self._reset()
        self._roles: dict[str, RoleProfile] = {}
        self._role_index = TextIndex(k1=k1, b=b)
        self._role_rows: dict[str, int] = {}
        self._role_ids: list[str | None] = []

    def _reset(self) -> None:
        self._text = TextIndex(k1=self._k1, b=self._b)
        self._titles = TextIndex()
        self._skills = TextIndex()
        self._row_of: dict[str, int] = {}
        # Per row, what the indexes and columns do not hold (interned: titles and locations
        # repeat); None for a removed row. Profiles are rebuilt from these on demand (_Rows).
        self._pids: list[str | None] = []
        self._title_of: list[str] = []
        self._location_of: list[Location | None] = []
        self._interned: dict[Any, Any] = {}
        # Sparse, by row: skill aliases other than the taxonomy labels, skill lists with
        # repeats, and the openings a person is in process for.
        self._aliases: dict[int, tuple[tuple[str, str], ...]] = {}
        self._skill_lists: dict[int, tuple[str, ...]] = {}
        self._busy_of: dict[int, frozenset[str]] = {}
        self._segments: list[str | None] = [None]
        self._codes: dict[str, int] = {}
        self._cols: dict[str, np.ndarray[Any, Any]] = {}
        self._consents: dict[str, np.ndarray[Any, np.dtype[np.bool_]]] = {}
        self._in_process: dict[str, set[int]] = {}
        self._dead = 0
        self._live = np.zeros(0, dtype=bool)
        # bumped on every change; keys the per-purpose filter cache and the skill queries
        self._version = 0
        self._static: dict[str | None, tuple[int, Any]] = {}
        self._skill_queries: dict[tuple[str, ...], tuple[int, dict[str, float]]] = {}
        # memos of the batch build (see _add_people), tied to this generation of the indexes
        self._chunks: ChunkTable | None = None
        self._title_ids: dict[frozenset[str], tuple[int, ...]] = {}
        self._labels: dict[str, str] = {}

    # ------------------------------------------------------------------------------- candidates

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._row_of

    def index(
        self,
        candidates: Iterable[
            CandidateProfile | Person | tuple[Person | StoredPerson, CandidateContext | None]
        ],
        *,
        today: date | None = None,
    ) -> None:
        """Replace the index with ``candidates``: profiles, people, or ``(person, context)``
        pairs (the person may be a :class:`~relcrm.matching._stored.StoredPerson`, what the index
        reads of a stored person). People are profiled in batches (the same profiles as
        :meth:`CandidateProfile.from_person` with ``today``, built with array operations), which
        is much faster than building each profile first."""
        self._reset()
        today = today or date.today()
        # Bulk loading allocates millions of small objects that all survive: the cyclic
        # collector would rescan them over and over for nothing.
        was_enabled = gc.isenabled()
        gc.disable()
        big = False
        try:
            batch: list[tuple[Person | StoredPerson, CandidateContext]] = []
            seen: set[str] = set()
            for c in candidates:
                if isinstance(c, CandidateProfile):
                    self._add_people(batch, today, seen)
                    self.add(c)
                    continue
                person, context = (c, None) if isinstance(c, Person) else c
                if person.id in seen or person.id in self._row_of:
                    self._add_people(batch, today, seen)  # the later version wins
                    self.add(CandidateProfile.from_person(as_person(person), context, today=today))
                    continue
                batch.append((person, context or _NO_CONTEXT))
                seen.add(person.id)
                if len(batch) >= _BATCH:
                    self._add_people(batch, today, seen)
            self._add_people(batch, today, seen)
            self._chunks = None  # only batch builds read it
            big = len(self._pids) >= _TRIM_AFTER
            if big:  # the segments are the build's biggest arrays: make room for them first
                _return_freed_memory()
            for ix in (self._text, self._titles, self._skills):
                ix.flush()  # one segment per field
        finally:
            self._chunks = None  # (also when the build failed)
            if was_enabled:
                gc.enable()
        if big:
            _return_freed_memory()

    def _add_people(
        self,
        batch: list[tuple[Person | StoredPerson, CandidateContext]],
        today: date,
        seen: set[str],
    ) -> None:
        """Index a batch of new people (none indexed yet, no id twice) and empty ``batch``."""
        if not batch:
            return
        people = batch[:]
        batch.clear()
        seen.clear()
        scanner = skill_scanner()
        if scanner is None:  # a taxonomy without batch extraction: one profile at a time
            for person, context in people:
                self.add(CandidateProfile.from_person(as_person(person), context, today=today))
            return
        row0 = len(self._pids)
        n = len(people)
        # 1. Per person, in Python: the weighted fields, titles and structured values.
        chunks: list[str] = []
        field_weight: list[float] = []
        field_doc: list[int] = []
        field_size: list[int] = []
        title_sets: list[frozenset[str]] = []
        columns: list[tuple[float, ...]] = []
        for d, (person, context) in enumerate(people):
            fields, titles, title = profile_fields(person, today)
            for text, weight in fields:
                if text:
                    mine = text.split()
                    chunks += mine
                    field_weight.append(weight)
                    field_doc.append(d)
                    field_size.append(len(mine))
            chunks.append("")  # ends the person's text: no skill mention runs across it
            field_weight.append(0.0)
            field_doc.append(d)
            field_size.append(1)
            title_sets.append(titles)
            self._pids.append(person.id)
            self._row_of[person.id] = row0 + d
            self._title_of.append(self._intern(title))
            location = person.location
            self._location_of.append(self._intern(location) if location is not None else None)
            prefs = person.preferences
            columns.append(
                self._column_values(
                    _seniority_of(title),
                    prefs.remote,
                    location,
                    context.availability or prefs.availability,
                    context.check_back_on or prefs.check_back_on,
                    context,
                )
            )
        rows = np.arange(row0, row0 + n, dtype=np.int32)
        table = self._chunks
        if table is None or table.scanner is not scanner:
            table = self._chunks = ChunkTable(self._text, scanner)
        term_ids, counts, token_ids = table.gather(chunks)
        self._index_texts(rows, term_ids, counts, field_weight, field_doc, field_size)
        skill_lists = _batch_skills(scanner, token_ids, [person.skills for person, _ in people])
        self._add_skills_and_titles(rows, skill_lists, title_sets)
        # 4. Columns, consents, openings in process.
        self._set_columns_many(row0, columns)
        self._version += n
        self._grow_live(row0 + n)
        self._live[row0 : row0 + n] = True
        for d, (_, context) in enumerate(people):
            if context.consents or context.in_process_for:
                self._add_context_sets(row0 + d, context)

    def _index_texts(
        self,
        rows: IntArray,
        term_ids: np.ndarray[Any, Any],
        counts: np.ndarray[Any, Any],
        field_weight: list[float],
        field_doc: list[int],
        field_size: list[int],
    ) -> None:
        """Index the texts of new ``rows``: chunk ``j`` yields the next ``counts[j]`` of
        ``term_ids``; field ``i`` is the next ``field_size[i]`` chunks, of row
        ``rows[field_doc[i]]``, weighing ``field_weight[i]``. One weighted count per (row, term),
        in order of first appearance, as a profile's bag of terms has them."""
        text = self._text
        term_ids = term_ids.astype(np.int64)
        weight = np.repeat(np.repeat(np.asarray(field_weight), field_size), counts)
        doc = np.repeat(np.repeat(np.asarray(field_doc, dtype=np.int64), field_size), counts)
        keep = weight > 0
        if not keep.all():
            weight, doc, term_ids = weight[keep], doc[keep], term_ids[keep]
        width = max(len(text.terms), 1)
        keys, first, inverse = np.unique(
            doc * width + term_ids, return_index=True, return_inverse=True
        )
        tf = np.bincount(inverse.ravel(), weights=weight, minlength=len(keys))
        order = np.argsort(first, kind="stable")
        keys, tf = keys[order], tf[order]
        sizes = np.bincount(keys // width, minlength=len(rows)).astype(np.int32)
        text.add_many(rows, sizes, (keys % width).astype(np.int32), tf.astype(np.float32))

    def _code(self, key: str) -> int:
        return self._codes.setdefault(key, len(self._codes) + 1)

    def _columns(self, p: CandidateProfile) -> tuple[float, ...]:
        return self._column_values(
            p.seniority, p.remote, p.location, p.availability, p.check_back_on, p.context
        )

    def _column_values(
        self,
        seniority: Seniority | None,
        remote: RemotePolicy | None,
        loc: Location | None,
        availability: Availability,
        check_back_on: date | None,
        ctx: CandidateContext,
    ) -> tuple[float, ...]:
        """A row's values of the columns in :data:`_COLUMNS` order."""
        segment = ctx.segment
        if segment is not None and segment not in self._segments:
            self._segments.append(segment)
        warmth = ctx.warmth
        return (
            SENIORITY_ORDER[seniority] if seniority is not None else -1,
            REMOTE_CODE[remote],
            self._code("country:" + loc.country_code.casefold()) if loc and loc.country_code else 0,
            self._code("city:" + loc.city.casefold()) if loc and loc.city else 0,
            AVAILABILITY_VALUE[availability],
            _AVAIL_CODE[availability],
            _epoch_days(check_back_on),
            min(max(warmth or 0.0, 0.0), 1.0),
            stage_value(ctx.furthest_milestone, ctx.archive_reason),
            _epoch_days(ctx.last_activity_at),
            _epoch_days(ctx.hired_at),
            # kept only to give plugin signals the whole profile back (see _Rows)
            _NAN if warmth is None else warmth,
            _code_of(_MILESTONES, ctx.furthest_milestone),
            _code_of(_REASONS, ctx.archive_reason),
            _code_of(_AVAILABILITIES, ctx.availability),
            _epoch_days(ctx.check_back_on),
            self._segments.index(segment),
        )

    def _column(self, name: str, size: int) -> np.ndarray[Any, Any]:
        """Column ``name``, grown to hold at least ``size`` rows (new rows NaN)."""
        col = self._cols.get(name)
        if col is None or len(col) < size:
            dtype = np.float64 if name in _WIDE_COLUMNS else np.float32
            grown = np.full(max(size, 2 * (0 if col is None else len(col)), 64), _NAN, dtype)
            if col is not None:
                grown[: len(col)] = col
            self._cols[name] = col = grown
        return col

    def _set_columns(self, row: int, values: tuple[float, ...]) -> None:
        for name, value in zip(_COLUMNS, values, strict=True):
            self._column(name, row + 1)[row] = value

    def _set_columns_many(self, row0: int, rows: list[tuple[float, ...]]) -> None:
        end = row0 + len(rows)
        for name, values in zip(_COLUMNS, zip(*rows, strict=True), strict=True):
            self._column(name, end)[row0:end] = values

    def _intern(self, value: Any) -> Any:
        found = self._interned.get(value)
        if found is None:
            if len(self._interned) >= 1_000_000:
                return value
            found = self._interned[value] = value
        return found

    def add(self, candidate: CandidateProfile | Person) -> None:
        """Index a candidate, replacing any earlier version of the same person."""
        p = (
            candidate
            if isinstance(candidate, CandidateProfile)
            else CandidateProfile.from_person(candidate)
        )
        self.remove(p.person_id)
        row = len(self._pids)
        self._pids.append(p.person_id)
        self._title_of.append(self._intern(p.title))
        self._location_of.append(self._intern(p.location) if p.location is not None else None)
        skills = p.skills
        if len(set(skills)) != len(skills):
            self._skill_lists[row] = skills
        if p.skill_aliases != tuple((k, display(k)) for k in skills):
            self._aliases[row] = p.skill_aliases
        self._row_of[p.person_id] = row
        self._version += 1
        self._grow_live(row + 1)
        self._live[row] = True
        self._text.add(row, dict(p.terms))
        self._titles.add(row, dict.fromkeys(sorted(p.titles), 1.0))
        self._skills.add(row, dict.fromkeys(skills, 1.0))
        self._set_columns(row, self._columns(p))
        self._add_context_sets(row, p.context)

    def _grow_live(self, size: int) -> None:
        if len(self._live) < size:
            grown = np.zeros(max(size, 2 * len(self._live), 64), dtype=bool)
            grown[: len(self._live)] = self._live
            self._live = grown

    def _add_context_sets(self, row: int, context: CandidateContext) -> None:
        """Record a row's consents and the openings it is in process for."""
        for purpose in context.consents:
            arr = self._consents.get(purpose)
            if arr is None or len(arr) <= row:
                grown = np.zeros(max(row + 1, 2 * (0 if arr is None else len(arr)), 64), bool)
                if arr is not None:
                    grown[: len(arr)] = arr
                self._consents[purpose] = arr = grown
            arr[row] = True
        if context.in_process_for:
            self._busy_of[row] = context.in_process_for
            for opening_id in context.in_process_for:
                self._in_process.setdefault(opening_id, set()).add(row)

    def _add_skills_and_titles(
        self,
        rows: IntArray,
        skill_lists: Sequence[tuple[tuple[str, str], ...]],
        title_sets: Sequence[frozenset[str]],
    ) -> None:
        """Index the skills (``(key, alias)`` pairs, distinct keys) and title tokens of new
        ``rows``."""
        skills_ix, titles_ix = self._skills, self._titles
        skill_id, title_id = skills_ix.term_id, titles_ix.term_id
        labels = self._labels
        skill_ids: list[int] = []
        skill_sizes: list[int] = []
        for row, pairs in zip(rows.tolist(), skill_lists, strict=True):
            for key, alias in pairs:
                label = labels.get(key)
                if label is None:
                    label = labels[key] = display(key)
                if alias != label:
                    self._aliases[row] = pairs
                    break
            skill_ids += [skill_id(k, create=True) for k, _ in pairs]
            skill_sizes.append(len(pairs))
        skills_ix.add_many(
            rows,
            np.asarray(skill_sizes, dtype=np.int32),
            np.asarray(skill_ids, dtype=np.int32),
            np.ones(len(skill_ids), dtype=np.float32),
        )
        memo = self._title_ids
        title_ids: list[int] = []
        title_sizes: list[int] = []
        for titles in title_sets:
            found = memo.get(titles)
            if found is None:
                # sorted: a set's order changes from process to process, term ids must not
                found = memo[titles] = tuple(title_id(t, create=True) for t in sorted(titles))
            title_ids += found
            title_sizes.append(len(found))
        titles_ix.add_many(
            rows,
            np.asarray(title_sizes, dtype=np.int32),
            np.asarray(title_ids, dtype=np.int32),
            np.ones(len(title_ids), dtype=np.float32),
        )

    def remove(self, person_id: str) -> bool:
        """Drop a person from the index; False when they were not in it."""
        row = self._row_of.pop(person_id, None)
        if row is None:
            return False
        self._pids[row] = None
        self._aliases.pop(row, None)
        self._skill_lists.pop(row, None)
        busy = self._busy_of.pop(row, NO_STRINGS)
        self._live[row] = False
        self._version += 1
        self._text.remove(row)
        self._titles.remove(row)
        self._skills.remove(row)
        for arr in self._consents.values():
            if len(arr) > row:
                arr[row] = False
        for opening_id in busy:
            self._in_process.get(opening_id, set()).discard(row)
        self._dead += 1
        if self._dead > 1024 and self._dead > len(self._row_of):
            self._compact()
        return True

    def _compact(self) -> None:
        """Renumber rows densely, dropping the dead ones."""
        old = len(self._pids)
        row_map = np.full(old, -1, dtype=np.int32)
        alive = [r for r, pid in enumerate(self._pids) if pid is not None]
        row_map[alive] = np.arange(len(alive), dtype=np.int32)
        for ix in (self._text, self._titles, self._skills):
            ix.compact(row_map)
        self._pids = [self._pids[r] for r in alive]
        self._title_of = [self._title_of[r] for r in alive]
        self._location_of = [self._location_of[r] for r in alive]
        new_row = row_map.tolist()
        self._aliases = {new_row[r]: v for r, v in self._aliases.items()}
        self._skill_lists = {new_row[r]: v for r, v in self._skill_lists.items()}
        self._busy_of = {new_row[r]: v for r, v in self._busy_of.items()}
        self._live = np.ones(len(alive), dtype=bool)
        self._version += 1
        self._row_of = {pid: i for i, pid in enumerate(self._pids) if pid is not None}
        src = np.array(alive, dtype=np.int64)
        self._cols = {k: v[src] for k, v in self._cols.items()}
        self._consents = {
            k: v[src] if len(v) >= old else v[src[src < len(v)]] for k, v in self._consents.items()
        }
        self._in_process = {
            k: {int(row_map[r]) for r in rows if row_map[r] >= 0}
            for k, rows in self._in_process.items()
        }
        self._dead = 0

    # ------------------------------------------------------------------------------- filtering

    def _filter_masks(
        self, role_id: str | None, now: datetime, purpose: str | None, rows: int
    ) -> dict[str, np.ndarray[Any, np.dtype[np.bool_]]]:
        cols = {k: v[:rows] for k, v in self._cols.items()}
        avail = cols["avail_code"]
        today = _epoch_days(now)
        masks = {
            "do_not_contact": avail == _AVAIL_CODE[Availability.DO_NOT_CONTACT],
            "not_looking": avail == _AVAIL_CODE[Availability.NOT_LOOKING],
            "check_back_later": (avail == _AVAIL_CODE[Availability.NOT_NOW])
            & ~(cols["check_back"] <= today),
            "recently_hired": (today - cols["hired_at"]) < self.recently_hired_days,
        }
        if purpose is not None:
            granted = np.zeros(rows, dtype=bool)
            arr = self._consents.get(purpose)
            if arr is not None:
                granted[: min(rows, len(arr))] = arr[:rows]
            masks["no_consent"] = ~granted
        busy = np.zeros(rows, dtype=bool)
        if role_id is not None and self._in_process.get(role_id):
            busy[list(self._in_process[role_id])] = True
        masks["in_process"] = busy
        return masks

    def _static_filters(self, purpose: str | None, rows: int) -> Any:
        """What does not depend on the time or the role, cached per purpose until a change: the
        rows passing ``do_not_contact``, ``no_consent`` and ``not_looking``, the counts held back
        by each, and the rows the time-dependent filters may still hold back."""
        cached = self._static.get(purpose)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        avail = self._cols["avail_code"][:rows]
        eligible = self._live[:rows].copy()
        counts: dict[str, int] = {}
        static = [
            ("do_not_contact", avail == _AVAIL_CODE[Availability.DO_NOT_CONTACT]),
            ("not_looking", avail == _AVAIL_CODE[Availability.NOT_LOOKING]),
        ]
        if purpose is not None:
            granted = np.zeros(rows, dtype=bool)
            arr = self._consents.get(purpose)
            if arr is not None:
                granted[: min(rows, len(arr))] = arr[:rows]
            static.insert(1, ("no_consent", ~granted))
        for reason, m in static:
            hit = eligible & m
            n = int(np.count_nonzero(hit))
            if n:
                counts[reason] = n
            eligible &= ~m
        # the rows the time-dependent filters may hold back, sorted by the instant that decides
        # (NaN last), so that those held back at a given time are a slice
        not_now = np.flatnonzero(eligible & (avail == _AVAIL_CODE[Availability.NOT_NOW]))
        back = self._cols["check_back"][not_now]
        order = np.argsort(back, kind="stable")
        not_now, back = not_now[order], back[order]
        hired = np.flatnonzero(eligible & ~np.isnan(self._cols["hired_at"][:rows]))
        hired_at = self._cols["hired_at"][hired]
        order = np.argsort(hired_at, kind="stable")
        hired, hired_at = hired[order], hired_at[order]
        value = (eligible, counts, (not_now, back), (hired, hired_at))
        self._static[purpose] = (self._version, value)
        return value

    def _eligible(
        self, role_id: str | None, now: datetime, purpose: str | None, rows: int
    ) -> tuple[np.ndarray[Any, np.dtype[np.bool_]], dict[str, int]]:
        """Rows passing every hard filter, and how many each filter held back (a row counts
        under the first reason of :data:`FILTER_REASONS` that holds it back)."""
        static, counts, (not_now, back), (hired, hired_at) = self._static_filters(purpose, rows)
        eligible = static.copy()
        filtered = dict(counts)
        today = _epoch_days(now)
        # not now, and not past the check-back date (or none given): NaN sorts last
        waiting = not_now[int(np.searchsorted(back, today, side="right")) :]
        busy_rows = self._in_process.get(role_id, set()) if role_id is not None else set()
        busy = np.fromiter(busy_rows, dtype=np.int64, count=len(busy_rows))
        busy = busy[busy < rows]
        # hired less than recently_hired_days ago: today - hired_at < days
        recent = hired[
            int(np.searchsorted(hired_at, today - self.recently_hired_days, side="right")) :
        ]
        for reason, held in (
            ("check_back_later", waiting),
            ("in_process", busy),
            ("recently_hired", recent),
        ):
            if len(held) == 0:
                continue
            still = held[eligible[held]]
            if len(still):
                filtered[reason] = len(still)
                eligible[still] = False
        ordered = {r: filtered[r] for r in FILTER_REASONS if r in filtered}
        return eligible, ordered

    # ---------------------------------------------------------------------------------- ranking

    def _feedback(self, query: dict[str, float], scores: FloatArray) -> dict[str, float]:
        """RM3-style expansion with the best terms of the top-ranked candidates."""
        k = min(self.feedback_docs, int((scores > 0).sum()))
        if k == 0:
            return query
        top = np.argpartition(-scores, k - 1)[:k]
        bag: Counter[str] = Counter()
        top_score = float(scores[top].max())
        for r in top.tolist():
            ids, tf = self._text.vector(r)
            total = float(tf.sum()) or 1.0
            idf = self._text.idf(ids)
            w = float(scores[r]) / top_score
            for t, x, i in zip(ids.tolist(), tf.tolist(), idf.tolist(), strict=True):
                bag[self._text.terms[t]] += w * x / total * i
        expansion = dict(bag.most_common(self.feedback_terms))
        qsum = sum(query.values()) or 1.0
        esum = sum(expansion.values()) or 1.0
        lam = self.feedback_weight
        out = {t: (1 - lam) * w / qsum for t, w in query.items()}
        for t, w in expansion.items():
            out[t] = out.get(t, 0.0) + lam * w / esum
        return out

    def _skill_query(self, skills: Sequence[str]) -> dict[str, float]:
        """Required skill keys weighted by idf, related skills at half weight."""
        from ._skills import skill_key

        keys = [skill_key(s) for s in skills]
        idf = self._skills.term_idf(keys)
        q: dict[str, float] = {k: idf.get(k, 1.0) for k in keys}
        for k in keys:
            for r in related(k):
                q.setdefault(r, 0.5 * q[k])
        return q

    def _skill_coverage(self, skills: Sequence[str], rows: int) -> FloatArray:
        if not skills:
            return np.zeros(rows)
        q = self._skill_query(skills)
        from ._skills import skill_key

        total = sum(q[skill_key(s)] for s in skills) or 1.0
        return np.minimum(self._skills.coverage(q, rows).astype(np.float64) / total, 1.0)

    def _skill_query_cached(self, skills: Sequence[str]) -> tuple[dict[str, float], float]:
        """The weighted skill query of :meth:`_skill_query` and the total weight of the skills
        asked for (cached until the index changes)."""
        if not skills:
            return {}, 1.0
        key = tuple(skills)
        cached = self._skill_queries.get(key)
        if cached is None or cached[0] != self._version:
            if len(self._skill_queries) > 1024:
                self._skill_queries.clear()
            cached = self._skill_queries[key] = (self._version, Query(self._skill_query(skills)))
        q = cached[1]
        from ._skills import skill_key

        return q, sum(q[skill_key(s)] for s in skills) or 1.0

    def _scratch_buffer(self, rows: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A zeroed float buffer of ``rows`` scores, kept between queries (callers zero back what
        they touch)."""
        buf = self._scratch
        if len(buf) < rows:
            buf = self._scratch = np.zeros(max(rows, 2 * len(buf)), dtype=np.float32)
        return buf

    def _first_stage(
        self,
        role: RoleProfile,
        now: datetime,
        query: Mapping[str, float],
        title_query: Mapping[str, float],
        req: tuple[dict[str, float], float],
        nice: tuple[dict[str, float], float],
        eligible: np.ndarray[Any, np.dtype[np.bool_]],
        rows: int,
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """The shortlist: eligible rows with the best estimate of text, title and skill scores.

        The estimate reads the posting lists rarest first, up to :attr:`budget` postings in all;
        the commonest terms (those worth least per posting) are left to the exact second stage.
        Every list is read when the budget allows, as it does in small pools.
        """
        # each field weighted as its signal is, relative to text (whose estimate is scaled to
        # its best value afterwards)
        w = self.weights
        per_text = 1.0 / w["text"] if w.get("text", 0.0) > 0 else 1.0
        fields: list[tuple[TextIndex, Mapping[str, float], str, float]] = [
            (self._text, query if w.get("text", 0.0) > 0 else {}, "bm25", 1.0),
            (
                self._titles,
                title_query,
                "cosine",
                w.get("title", 0.0) * per_text / math.sqrt(max(len(title_query), 1)),
            ),
            (self._skills, req[0], "flat", w.get("required_skills", 0.0) * per_text / req[1]),
            (
                self._skills,
                nice[0],
                "flat",
                w.get("nice_to_have_skills", 0.0) * per_text / nice[1],
            ),
        ]
        groups = [
            (f, sp)
            for f, (ix, q, kind, scale) in enumerate(fields)
            if q and scale > 0
            for sp in ix.spans(q, kind)
        ]
        if not groups:
            return np.zeros(0, dtype=np.int64)
        sizes = np.concatenate([sp.sizes for _, sp in groups])
        chosen = np.ones(len(sizes), dtype=bool)
        if self.budget is not None and int(sizes.sum()) > self.budget:
            chosen = self._within_budget(groups, fields, sizes, query)
        parts: list[list[tuple[IntArray, Float32Array]]] = [[], []]  # text, the rest
        at = 0
        for f, sp in groups:
            take = chosen[at : at + len(sp.sizes)]
            at += len(sp.sizes)
            if take.any():
                ix, _, kind, scale = fields[f]
                hit, value = ix.posting_values(sp, take, kind)
                if scale != 1.0:
                    value = value * np.float32(scale)
                parts[f != 0].append((hit, value))
        buf = self._scratch_buffer(rows)
        hits_parts: list[IntArray] = []
        top = 1.0
        for k, part in enumerate(parts):
            if not part:
                continue
            hit = np.concatenate([h for h, _ in part])
            value = np.concatenate([v for _, v in part])
            if k == 1:
                value *= np.float32(top)  # on the text estimate's scale: text counts up to 1
            np.add.at(buf, hit, value)
            if k == 0:
                top = float(buf[hit].max()) or 1.0
            hits_parts.append(hit)
        hits, estimate = self._collect(
            np.concatenate(hits_parts) if len(hits_parts) > 1 else hits_parts[0], eligible, rows
        )
        if len(hits) > self.shortlist:
            # The best by retrieval estimate, then by that plus the structured signals (cheap
            # columns): among many similar texts, those decide who makes the top.
            wide = min(len(hits), 8 * self.shortlist)
            if wide < len(hits):
                best = np.argpartition(-estimate, wide - 1)[:wide]
                hits, estimate = hits[best], estimate[best]
            w_text = self.weights.get("text", 0.0)
            total = estimate.astype(np.float64) * (w_text / top if w_text > 0 else 1.0)
            total += self._column_estimate(role, hits, now)
            best = np.argpartition(-total, self.shortlist - 1)[: self.shortlist]
            hits = hits[best]
        return np.sort(hits).astype(np.int64)

    def _column_estimate(
        self, role: RoleProfile, rows: np.ndarray[Any, Any], now: datetime
    ) -> FloatArray:
        """The weighted sum of the structured signals (seniority, location, availability,
        warmth, stage, recency) of ``rows``: what the shortlist adds to its retrieval estimate."""
        out = np.zeros(len(rows))
        signals = [
            s for s in self.signals if s.name in _COLUMN_SIGNALS and self.weights.get(s.name, 0) > 0
        ]
        if not signals:
            return out
        batch = MatchBatch(
            role=role,
            profiles=_Rows(self, rows),
            now=now,
            features={},
            columns={k: v[rows] for k, v in self._cols.items() if k in _SIGNAL_COLUMNS},
            codes=self._codes,
        )
        for s in signals:
            value = s.score(batch)
            if value is not None:
                arr = np.clip(np.nan_to_num(np.asarray(value, dtype=np.float64)), 0.0, 1.0)
                out += self.weights[s.name] * arr
        return out

    def _within_budget(
        self,
        groups: list[tuple[int, PostingSpans]],
        fields: list[tuple[TextIndex, Mapping[str, float], str, float]],
        sizes: np.ndarray[Any, Any],
        query: Mapping[str, float],
    ) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which posting lists the first stage reads: those whose postings can be worth most
        (MaxScore's order), while they fit in :attr:`budget`; a list too long for what is left
        is skipped and shorter ones still read."""
        # what one posting of each list is worth at most, relative to the best text score
        top = max(self._text.self_score(query), 1e-9) if query else 1.0
        bound = np.concatenate(
            [sp.scales * ((self._k1 + 1.0) / top if f == 0 else fields[f][3]) for f, sp in groups]
        )
        chosen = np.zeros(len(sizes), dtype=bool)
        left = self.budget or 0
        size_of = sizes.tolist()
        taken: list[int] = []
        for i in np.argsort(-bound, kind="stable").tolist():
            size = size_of[i]
            if size <= left or not taken:
                taken.append(i)
                left -= size
        chosen[taken] = True
        return chosen

    def _collect(
        self, hits: IntArray, eligible: np.ndarray[Any, np.dtype[np.bool_]], rows: int
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], Float32Array]:
        """The eligible rows the scratch buffer holds a positive estimate for, once each, and
        their estimates; leaves the buffer zeroed. ``hits``: every row written, repeats and all."""
        buf = self._scratch
        if len(hits) * 8 > rows:
            # many postings: one pass over the buffer beats de-duplicating them
            dense = buf[:rows]
            found = np.flatnonzero((dense > 0) & eligible[:rows])
            estimate = dense[found]
            dense[:] = 0.0
            return found, estimate
        estimate = buf[hits]
        buf[hits] = 0.0
        # one entry per row: the last write of a row's position wins the stamp
        stamp = self._scratch_stamp(rows)
        positions = np.arange(len(hits), dtype=np.int32)
        stamp[hits] = positions
        first = (stamp[hits] == positions) & eligible[hits] & (estimate > 0)
        return hits[first].astype(np.int64), estimate[first]

    def _scratch_stamp(self, rows: int) -> np.ndarray[Any, np.dtype[np.int32]]:
        stamp = self._stamp
        if len(stamp) < rows:
            stamp = self._stamp = np.zeros(max(rows, 2 * len(stamp)), dtype=np.int32)
        return stamp

    def match(
        self,
        role: RoleProfile | Opening,
        limit: int = 20,
        *,
        now: datetime | None = None,
        purpose: str | None = None,
        consent: Callable[[str], bool] | None = None,
    ) -> MatchResults:
        """The best ``limit`` candidates for ``role``, after the hard filters.

        ``purpose``: only people with that consent purpose in their context pass; ``consent``: a
        predicate on the person id, for consent the context does not carry.
        """
        role = role if isinstance(role, RoleProfile) else RoleProfile.from_opening(role)
        now = now or datetime.now(UTC)
        rows = len(self._pids)
        if rows == 0 or not self._row_of:
            return MatchResults(matches=(), filtered={})
        eligible, filtered = self._eligible(role.id, now, purpose, rows)

        query: dict[str, float] = Query(role.terms())
        title_query = Query(dict.fromkeys(sorted(role.titles), 1.0))
        req_query = self._skill_query_cached(role.required_skills)
        nice_query = self._skill_query_cached(role.nice_to_have_skills)
        pool = self._first_stage(
            role, now, query, title_query, req_query, nice_query, eligible, rows
        )
        if self.feedback_docs > 0 and len(pool):
            text = np.zeros(rows)
            text[pool] = self._text.scores_at(query, pool)
            query = Query(self._feedback(query, text))
            pool = self._first_stage(
                role, now, query, title_query, req_query, nice_query, eligible, rows
            )
        if consent is not None and len(pool):
            keep = np.array([consent(self._pid(r)) for r in pool.tolist()], dtype=bool)
            if (~keep).any():
                filtered["no_consent"] = filtered.get("no_consent", 0) + int((~keep).sum())
            pool = pool[keep]
        if len(pool) == 0:
            return MatchResults(matches=(), filtered=filtered, considered=0)
        # Second stage: every retrieval feature computed exactly for the shortlist.
        t = self._text.scores_at(query, pool)
        overlap = self._titles.coverage_at(title_query, pool)
        tlen = np.maximum(self._titles.lengths(pool).astype(np.float64), 1.0)
        features = {
            "text": t / (t.max() or 1.0),
            "title": np.clip(overlap / np.sqrt(tlen * max(len(title_query), 1)), 0.0, 1.0),
        }
        req_cov, nice_cov = self._skills.coverages_at([req_query[0], nice_query[0]], pool)
        features["required_skills"] = np.minimum(req_cov / req_query[1], 1.0)
        features["nice_to_have_skills"] = np.minimum(nice_cov / nice_query[1], 1.0)
        profiles = _Rows(self, pool)
        batch = MatchBatch(
            role=role,
            profiles=profiles,
            now=now,
            features=features,
            columns={k: v[pool] for k, v in self._cols.items() if k not in _PROFILE_ONLY},
            codes=self._codes,
        )
        matches = self._rank(
            batch, limit, lambda i: self._pid(int(pool[i])), lambda i: role.id, pool, query
        )
        return MatchResults(matches=matches, filtered=filtered, considered=len(pool))

    def _pid(self, row: int) -> str:
        pid = self._pids[row]
        assert pid is not None
        return pid

    def _row_skills(self, row: int) -> tuple[tuple[str, ...], dict[str, str]]:
        """A row's skill keys, in order, and the alias of each that is not its label."""
        skills = self._skill_lists.get(row)
        if skills is None:
            ids, _ = self._skills.vector(row)
            words = self._skills.terms
            skills = tuple([words[t] for t in ids.tolist()])
        return skills, dict(self._aliases.get(row, ()))

    def _row_terms(self, row: int, among: Container[int]) -> list[str]:
        """The terms of ``row`` whose ids are ``among`` those given, in the row's order."""
        ids, _ = self._text.vector(row)
        words = self._text.terms
        return [words[t] for t in ids.tolist() if t in among]

    def profile(self, row: int) -> CandidateProfile:
        """The whole profile indexed at ``row``, rebuilt from the indexes and columns."""
        ids, tf = self._text.vector(row)
        words = self._text.terms
        skills, aliases = self._row_skills(row)
        title_ids, _ = self._titles.vector(row)
        col = {k: v[row] for k, v in self._cols.items()}
        context = CandidateContext(
            warmth=_or_none(col["ctx_warmth"]),
            furthest_milestone=_value_of(_MILESTONES, col["ctx_milestone"]),
            archive_reason=_value_of(_REASONS, col["ctx_reason"]),
            availability=_value_of(_AVAILABILITIES, col["ctx_availability"]),
            check_back_on=_date_of(col["ctx_check_back"]),
            last_activity_at=_moment_of(col["last_activity"]),
            segment=self._segments[int(col["segment"])],
            consents=frozenset(k for k, v in self._consents.items() if len(v) > row and v[row]),
            in_process_for=self._busy_of.get(row, NO_STRINGS),
            hired_at=_moment_of(col["hired_at"]),
        )
        seniority = int(col["seniority"])
        return CandidateProfile(
            person_id=self._pid(row),
            title=self._title_of[row],
            titles=frozenset(self._titles.terms[t] for t in title_ids.tolist()),
            terms=tuple(zip([words[t] for t in ids.tolist()], tf.tolist(), strict=True)),
            skills=skills,
            skill_aliases=tuple((k, aliases.get(k, display(k))) for k in skills)
            if row not in self._aliases
            else self._aliases[row],
            seniority=_SENIORITIES[seniority] if seniority >= 0 else None,
            location=self._location_of[row],
            remote=_REMOTES[int(col["remote"])],
            availability=_AVAILABILITIES[int(col["avail_code"])],
            check_back_on=_date_of(col["check_back"]),
            context=context,
        )

    def _rank(
        self,
        batch: MatchBatch,
        limit: int,
        person_of: Callable[[int], str],
        role_of: Callable[[int], str],
        pool: np.ndarray[Any, Any] | None = None,
        query: Mapping[str, float] | None = None,
    ) -> tuple[Match, ...]:
        n = len(batch.profiles)
        values: list[tuple[MatchSignal, FloatArray]] = []
        for s in self.signals:
            if self.weights.get(s.name, 0.0) <= 0:
                continue
            v = s.score(batch)
            if v is None:
                continue
            arr = np.clip(np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0), 0.0, 1.0)
            values.append((s, np.broadcast_to(arr, (n,))))
        total = sum(self.weights[s.name] for s, _ in values) or 1.0
        eff = {s.name: self.weights[s.name] / total for s, _ in values}
        score = np.zeros(n)
        for s, v in values:
            score += eff[s.name] * v
        k = min(limit, n)
        if k <= 0:
            return ()
        top = np.argpartition(-score, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.lexsort((top, -score[top]))]
        out = []
        query = batch.role.terms() if query is None else query
        # the explanations read only the query's terms of each row
        wanted = set(self._text.query_vector(query)[0].tolist()) if pool is not None else ()
        shares = [(s.name, eff[s.name], v[top].tolist()) for s, v in values]
        for j, i in enumerate(top.tolist()):
            contributions = tuple(
                Contribution(signal=name, value=got[j], weight=w, contribution=w * got[j])
                for name, w, got in shares
            )
            if pool is None:
                p = batch.profiles[i]
                skills, aliases = p.skills, dict(p.skill_aliases)
                terms = [t for t, _ in p.terms]
                segment = p.context.segment
            else:
                row = int(pool[i])
                skills, aliases = self._row_skills(row)
                terms = self._row_terms(row, wanted)
                segment = self._segments[int(self._cols["segment"][row])]
            explanation = _explain(
                batch.role, skills, aliases, terms, segment, contributions, query
            )
            out.append(Match(person_of(i), role_of(i), explanation.score, explanation))
        return tuple(out)

    # ---------------------------------------------------------------------------------- reverse

    def index_roles(self, roles: Iterable[RoleProfile | Opening]) -> None:
        """Replace the roles searched by :meth:`openings_for`."""
        self._roles = {}
        self._role_index = TextIndex(k1=self._k1, b=self._b)
        self._role_rows = {}
        self._role_ids = []
        for r in roles:
            self.add_role(r)

    def add_role(self, role: RoleProfile | Opening) -> None:
        r = role if isinstance(role, RoleProfile) else RoleProfile.from_opening(role)
        self.remove_role(r.id)
        row = len(self._role_ids)
        self._role_ids.append(r.id)
        self._role_rows[r.id] = row
        self._roles[r.id] = r
        self._role_index.add(row, r.terms())

    def remove_role(self, role_id: str) -> bool:
        row = self._role_rows.pop(role_id, None)
        if row is None:
            return False
        self._role_ids[row] = None
        self._roles.pop(role_id, None)
        self._role_index.remove(row)
        return True

    def openings_for(
        self,
        candidate: CandidateProfile | Person,
        limit: int = 20,
        *,
        now: datetime | None = None,
    ) -> MatchResults:
        """The roles (from :meth:`index_roles`) that suit ``candidate`` best, same signals."""
        p = (
            candidate
            if isinstance(candidate, CandidateProfile)
            else CandidateProfile.from_person(candidate)
        )
        now = now or datetime.now(UTC)
        live_ids = [rid for rid in self._role_ids if rid is not None]
        # The person's own filters hold back every role; "in process" holds back one.
        probe = MatchEngine(weights=self.weights, signals=self.signals[len(BUILTIN_SIGNALS()) :])
        probe.add(p)
        masks = probe._filter_masks(None, now, None, 1)
        for reason in FILTER_REASONS:
            if reason in masks and bool(masks[reason][0]):
                return MatchResults(matches=(), filtered={reason: len(live_ids)})
        rows = len(self._role_ids)
        text = self._role_index.scores(dict(p.terms), rows).astype(np.float64)
        order = [r for r in np.flatnonzero(text > 0).tolist() if self._role_ids[r] is not None]
        filtered: dict[str, int] = {}
        results: list[Match] = []
        top_text = float(text.max()) or 1.0
        for r in order:
            role_id = self._role_ids[r]
            assert role_id is not None
            if role_id in p.context.in_process_for:
                filtered["in_process"] = filtered.get("in_process", 0) + 1
                continue
            role = self._roles[role_id]
            batch = MatchBatch(
                role=role,
                profiles=[p],
                now=now,
                features={
                    "text": np.array([text[r] / top_text]),
                    "title": np.array([title_similarity(role.titles, p.titles)]),
                    "required_skills": probe._skill_coverage(role.required_skills, 1),
                    "nice_to_have_skills": probe._skill_coverage(role.nice_to_have_skills, 1),
                },
                columns={k: v[:1] for k, v in probe._cols.items()},
                codes=probe._codes,
            )
            results.extend(probe._rank(batch, 1, _const(p.person_id), _const(role_id)))
        results.sort(key=lambda m: (-m.score, m.role_id))
        return MatchResults(
            matches=tuple(results[:limit]), filtered=filtered, considered=len(order)
        )


#: Builds of at least this many people give their freed heap back (trimming walks the whole
#: heap of the process: not worth it for a small build).
_TRIM_AFTER = 50_000


def _return_freed_memory() -> None:
    """Hand the heap memory a build freed back to the operating system where the C library
    can (glibc's ``malloc_trim``): a build frees many temporaries between the arrays it keeps,
    and glibc would otherwise keep those pages, counted in the process's resident size."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _batch_skills(
    scanner: Any, ids: np.ndarray[Any, Any], listed: list[tuple[str, ...]]
) -> list[tuple[tuple[str, str], ...]]:
    """Per person, :func:`canonical_skills` of their listed skills and the mentions in their
    texts: ``ids``, the token ids of everyone's texts end to end, each closed by the scanner's
    separator."""
    positions, found = scanner.scan(ids)
    ends = np.flatnonzero(ids == scanner.SEPARATOR)
    owner = np.searchsorted(ends, np.asarray(positions, dtype=np.int64)).tolist()
    mentions: list[list[tuple[str, str]]] = [[] for _ in listed]
    for d, pair in zip(owner, found, strict=True):
        mentions[d].append(pair)
    return [canonical_skills(s, mentions=m) for s, m in zip(listed, mentions, strict=True)]


def _explain(
    role: RoleProfile,
    skills: Sequence[str],
    aliases: Mapping[str, str],
    terms: Iterable[str],
    segment: str | None,
    contributions: tuple[Contribution, ...],
    query: Mapping[str, float],
) -> Explanation:
    from ._skills import skill_key

    have = set(skills)
    matched: list[SkillMatch] = []
    missing: list[str] = []
    for skill in role.required_skills:
        key = skill_key(skill)
        if key in have:
            matched.append(SkillMatch(skill, aliases.get(key) or display(key)))
            continue
        nearby = related(key)
        near = [r for r in nearby if r in have] if not have.isdisjoint(nearby) else []
        if near:
            matched.append(
                SkillMatch(skill, aliases.get(near[0]) or display(near[0]), partial=True)
            )
        else:
            missing.append(skill)
    shared = sorted((t for t in terms if t in query), key=lambda t: -query[t])
    return Explanation(
        contributions=contributions,
        matched_skills=tuple(matched),
        missing_skills=tuple(missing),
        matched_terms=tuple(shared[:10]),
        segment=segment,
    )


#: The per-row columns, in the order of :meth:`MatchEngine._column_values`.
_COLUMNS = (
    "seniority",
    "remote",
    "country",
    "city",
    "availability",
    "avail_code",
    "check_back",
    "warmth",
    "stage",
    "last_activity",
    "hired_at",
    "ctx_warmth",
    "ctx_milestone",
    "ctx_reason",
    "ctx_availability",
    "ctx_check_back",
    "segment",
)
#: People profiled together by :meth:`MatchEngine.index`.
_BATCH = 4096
_NO_CONTEXT = CandidateContext()


_MILESTONES: tuple[Milestone, ...] = tuple(Milestone)
_REASONS: tuple[ArchiveReasonType, ...] = tuple(ArchiveReasonType)
_AVAILABILITIES: tuple[Availability, ...] = tuple(Availability)
_SENIORITIES: tuple[Seniority, ...] = tuple(SENIORITY_ORDER)
_REMOTES: dict[int, RemotePolicy | None] = {v: k for k, v in REMOTE_CODE.items()}
#: The built-in signals computed from columns alone, and the columns they read.
_COLUMN_SIGNALS = frozenset(["seniority", "location", "availability", "warmth", "stage", "recency"])
_SIGNAL_COLUMNS = frozenset(
    ["seniority", "remote", "country", "city", "availability", "warmth", "stage", "last_activity"]
)
#: Columns only :meth:`MatchEngine.profile` reads (signals get the others).
_PROFILE_ONLY = frozenset(
    ["ctx_warmth", "ctx_milestone", "ctx_reason", "ctx_availability", "ctx_check_back", "segment"]
)
#: Columns that hold instants (epoch days) and need float64; the others are small codes.
_WIDE_COLUMNS = frozenset(
    ["check_back", "last_activity", "hired_at", "ctx_check_back", "ctx_warmth"]
)


def _code_of(values: tuple[Any, ...], value: Any) -> float:
    return _NAN if value is None else float(values.index(value))


def _value_of(values: tuple[Any, ...], code: float) -> Any:
    return None if math.isnan(code) else values[int(code)]


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _date_of(days: float) -> date | None:
    if math.isnan(days):
        return None
    return datetime.fromtimestamp(round(float(days) * 86400.0), UTC).date()


def _moment_of(days: float) -> datetime | None:
    if math.isnan(days):
        return None
    return datetime.fromtimestamp(round(float(days) * 86400.0, 6), UTC)


def _const(value: str) -> Callable[[int], str]:
    return lambda _: value


class _Rows(Sequence[CandidateProfile]):
    """The profiles of a batch, rebuilt lazily by row (signals that read whole profiles pay for
    the ones they read)."""

    def __init__(self, engine: MatchEngine, rows: np.ndarray[Any, Any]):
        self._engine = engine
        self._rows = rows

    @property
    def person_ids(self) -> list[str]:
        """The person ids of the batch, without rebuilding profiles."""
        return [self._engine._pid(r) for r in self._rows.tolist()]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._engine.profile(int(self._rows[i]))
