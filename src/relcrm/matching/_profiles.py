"""What matching reads: a candidate profile (a person plus relationship context) and a role profile
(an opening, or a role written directly). Demographic data is never part of either."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime

import attrs

from ..model import (
    ArchiveReasonType,
    Availability,
    Location,
    Milestone,
    Opening,
    Person,
    RemotePolicy,
    Seniority,
    normalise_skill,
)
from ._skills import canonical_skills, split_tokens
from ._stored import PersonFields
from ._text import analyse, analyse_chunks

__all__ = ["CandidateContext", "CandidateProfile", "RoleProfile", "title_tokens"]

#: Weight of a title (headline, position title, role title) against one sentence of body text.
TITLE_WEIGHT = 3.0
#: Weight of the free-text summary and of the current position's highlights.
BODY_WEIGHT = 1.0
#: Floor of the recency weight of a past position's text.
PAST_FLOOR = 0.2
#: Years after which a past position's weight has halved (before the floor).
PAST_HALF_LIFE_YEARS = 2.0

_SENIORITY_WORDS: tuple[tuple[Seniority, tuple[str, ...]], ...] = (
    (Seniority.EXECUTIVE, ("chief", "vp", "vice", "president", "director", "head", "cto", "ceo")),
    (Seniority.LEAD, ("lead", "principal", "staff", "manager", "supervisor")),
    (Seniority.SENIOR, ("senior", "sr")),
    (Seniority.JUNIOR, ("junior", "jr", "graduate", "entry", "assistant", "trainee")),
    (Seniority.INTERN, ("intern", "internship", "apprentice")),
)
_WORD = re.compile(r"[a-z]+")


def _union(sets: set[frozenset[str]]) -> frozenset[str]:
    if len(sets) == 1:
        return next(iter(sets))
    return frozenset().union(*sets) if sets else NO_STRINGS


def infer_seniority(title: str) -> Seniority | None:
    """A seniority guessed from the words of a title (``"Senior Data Engineer"`` -> senior)."""
    words = set(_WORD.findall(title.casefold()))
    for level, markers in _SENIORITY_WORDS:
        if words.intersection(markers):
            return level
    return None


_SENIORITY: dict[str, Seniority | None] = {}


def _seniority_of(title: str) -> Seniority | None:
    """:func:`infer_seniority`, memoised (titles repeat)."""
    try:
        return _SENIORITY[title]
    except KeyError:
        found = _SENIORITY[title] = infer_seniority(title)
        if len(_SENIORITY) > 200_000:
            _SENIORITY.clear()
        return found


def _analyse_fields(
    fields: list[tuple[str, float]], listed: Iterable[str]
) -> tuple[dict[str, float], tuple[tuple[str, str], ...]]:
    """The weighted bag of terms of ``(text, weight)`` fields, and the canonical skills of the
    ``listed`` ones plus those mentioned in the texts. Each text is split once, for both."""
    bag: dict[str, float] = {}
    get = bag.get
    split = split_tokens()
    if split is None:  # no taxonomy: plain analysis, skills from the list only
        for text, weight in fields:
            if text and weight > 0:
                for term, n in Counter(analyse(text)).items():
                    bag[term] = get(term, 0.0) + n * weight
        return bag, canonical_skills(listed)
    chunks: list[str] = []
    for text, weight in fields:
        if not text:
            continue
        mine = text.split()
        chunks.extend(mine)
        if weight > 0:
            for term, n in Counter(analyse_chunks(mine)).items():
                bag[term] = get(term, 0.0) + n * weight
    return bag, canonical_skills(listed, tokens=split(chunks))


def profile_fields(
    person: PersonFields, today: date
) -> tuple[list[tuple[str, float]], frozenset[str], str]:
    """What a profile reads of a person's text: the ``(text, weight)`` fields (titles and the
    current position count most, past positions fade with the time since they ended), the
    title tokens of the headline and current positions, and the title shown."""
    headline = person.headline
    titles = [headline] if headline else []
    current_title = ""
    fields: list[tuple[str, float]] = [(headline, TITLE_WEIGHT), (person.summary, BODY_WEIGHT)]
    for exp in person.experience:
        if exp.end is None:
            weight: float = 1.0
            current_title = current_title or exp.title
            titles.append(exp.title)
        else:
            years = max(0.0, (today - exp.end).days / 365.25)
            weight = max(PAST_FLOOR, 0.5 * 0.5 ** (years / PAST_HALF_LIFE_YEARS))
        fields.append((exp.title, TITLE_WEIGHT * weight))
        fields.append((exp.summary, BODY_WEIGHT * weight))
        fields.extend((h, BODY_WEIGHT * weight) for h in exp.highlights)
    return fields, _union({title_tokens(t) for t in titles}), headline or current_title


_TITLES: dict[str, frozenset[str]] = {}


def title_tokens(title: str) -> frozenset[str]:
    """The normalised (stemmed, stopword-free) tokens of a title, compared as a set (memoised:
    titles repeat, and equal sets are then one object)."""
    found = _TITLES.get(title)
    if found is None:
        found = frozenset(analyse(title))
        if len(_TITLES) < 200_000:
            _TITLES[title] = found
    return found


def _add(bag: dict[str, float], text: str | Iterable[str], weight: float) -> None:
    if weight <= 0:
        return
    for term in analyse(text):
        bag[term] = bag.get(term, 0.0) + weight


_SETS: dict[frozenset[str], frozenset[str]] = {}
#: The empty set every empty field shares (an empty frozenset is not a singleton any more).
NO_STRINGS: frozenset[str] = frozenset()


def _frozen(values: Iterable[str]) -> frozenset[str]:
    """A frozenset, one object per distinct small set (consent purposes, openings in process:
    a few combinations shared by many people)."""
    found = frozenset(values)
    if not found:
        return NO_STRINGS
    if len(found) > 4:
        return found
    shared = _SETS.get(found)
    if shared is None:
        if len(_SETS) >= 10_000:
            return found
        shared = _SETS[found] = found
    return shared


@attrs.frozen
class CandidateContext:
    """What the organisation knows about its relationship with a person, beyond the profile.

    Every field is optional; the CRM fills them from relationships, candidacies, consents and
    employment episodes.
    """

    warmth: float | None = None
    furthest_milestone: Milestone | None = None
    archive_reason: ArchiveReasonType | None = None
    availability: Availability | None = None  # overrides the person's own preference
    check_back_on: date | None = None
    last_activity_at: datetime | None = None
    segment: str | None = None
    consents: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    in_process_for: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    hired_at: datetime | None = None


@attrs.frozen
class CandidateProfile:
    """The matchable view of a person: weighted text, titles, skills and structured fits."""

    person_id: str
    title: str = ""
    titles: frozenset[str] = NO_STRINGS
    terms: tuple[tuple[str, float], ...] = ()
    skills: tuple[str, ...] = ()
    skill_aliases: tuple[tuple[str, str], ...] = ()  # (skill key, what the person wrote)
    seniority: Seniority | None = None
    location: Location | None = None
    remote: RemotePolicy | None = None
    availability: Availability = Availability.OPEN
    check_back_on: date | None = None
    context: CandidateContext = CandidateContext()

    @classmethod
    def from_person(
        cls, person: Person, context: CandidateContext | None = None, *, today: date | None = None
    ) -> CandidateProfile:
        """Build a profile: titles and the current position count most, past positions fade with
        the time since they ended."""
        context = context or CandidateContext()
        fields, titles, title = profile_fields(person, today or date.today())
        bag, skills = _analyse_fields(fields, person.skills)
        availability = context.availability or person.preferences.availability
        return cls(
            person_id=person.id,
            title=title,
            titles=titles,
            terms=tuple(bag.items()),
            skills=tuple(k for k, _ in skills),
            skill_aliases=skills,
            seniority=_seniority_of(title),
            location=person.location,
            remote=person.preferences.remote,
            availability=availability,
            check_back_on=context.check_back_on or person.preferences.check_back_on,
            context=context,
        )


def _skill_list(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for k in (normalise_skill(s) for s in values) if k))


@attrs.frozen
class RoleProfile:
    """What a role asks for. Built from an :class:`~relcrm.Opening` or written directly, for a role
    that has no opening yet."""

    id: str
    title: str
    description: str = ""
    responsibilities: tuple[str, ...] = ()
    qualifications: tuple[str, ...] = ()
    required_skills: tuple[str, ...] = attrs.field(default=(), converter=_skill_list)
    nice_to_have_skills: tuple[str, ...] = attrs.field(default=(), converter=_skill_list)
    seniority: Seniority | None = None
    location: Location | None = None
    remote: RemotePolicy = RemotePolicy.ONSITE

    @classmethod
    def from_opening(cls, opening: Opening) -> RoleProfile:
        return cls(
            id=opening.id,
            title=opening.title,
            description=opening.description,
            responsibilities=opening.responsibilities,
            qualifications=opening.qualifications,
            required_skills=opening.required_skills,
            nice_to_have_skills=opening.nice_to_have_skills,
            seniority=opening.seniority,
            location=opening.location,
            remote=opening.remote,
        )

    @property
    def titles(self) -> frozenset[str]:
        return title_tokens(self.title)

    def terms(self) -> dict[str, float]:
        """The weighted bag of terms the role is searched with (and indexed as, in reverse)."""
        bag: dict[str, float] = {}
        _add(bag, self.title, TITLE_WEIGHT)
        _add(bag, self.description, BODY_WEIGHT)
        _add(bag, self.responsibilities, BODY_WEIGHT)
        _add(bag, self.qualifications, BODY_WEIGHT * 0.5)
        _add(bag, [*self.required_skills, *self.nice_to_have_skills], BODY_WEIGHT)
        return dict(bag)

    def text(self) -> str:
        return " \n ".join(
            [self.title, self.description, *self.responsibilities, *self.qualifications]
        )
