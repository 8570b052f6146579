"""Match signals: each scores a batch of candidates for one role with numbers in [0, 1].

A signal returns ``None`` when it does not apply to the role (no required skills, no seniority
asked); its weight then goes to the signals that do apply. The built-in signals read the
engine's precomputed arrays in :attr:`MatchBatch.features` and :attr:`MatchBatch.columns`; a
plugin signal can read :attr:`MatchBatch.profiles` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np

from ..model import ArchiveReasonType, Availability, Milestone, RemotePolicy, Seniority
from ._profiles import CandidateProfile, RoleProfile

__all__ = [
    "BUILTIN_SIGNALS",
    "DEFAULT_WEIGHTS",
    "MatchBatch",
    "MatchSignal",
    "stage_value",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Default weights of the built-in signals (relative: they are renormalised over the signals that
#: apply to a role).
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "text": 0.45,
    "title": 0.20,
    "required_skills": 0.15,
    "nice_to_have_skills": 0.05,
    "seniority": 0.05,
    "location": 0.05,
    "availability": 0.03,
    "warmth": 0.04,
    "stage": 0.05,
    "recency": 0.03,
}

#: How much an archive reason keeps of the furthest stage reached: a finalist hired elsewhere is a
#: strong lead; someone not eligible is not.
ARCHIVE_FACTOR: Mapping[ArchiveReasonType, float] = {
    ArchiveReasonType.HIRED_ELSEWHERE: 1.0,
    ArchiveReasonType.POSITION_CLOSED: 1.0,
    ArchiveReasonType.THEY_DECLINED: 0.8,
    ArchiveReasonType.WITHDREW: 0.6,
    ArchiveReasonType.OTHER: 0.5,
    ArchiveReasonType.WE_DECLINED: 0.4,
    ArchiveReasonType.UNRESPONSIVE: 0.3,
    ArchiveReasonType.NOT_ELIGIBLE: 0.1,
}

SENIORITY_ORDER = {s: i for i, s in enumerate(Seniority)}
AVAILABILITY_VALUE = {
    Availability.OPEN: 1.0,
    Availability.NOT_NOW: 0.5,
    Availability.NOT_LOOKING: 0.0,
    Availability.DO_NOT_CONTACT: 0.0,
}
REMOTE_CODE = {None: 0, RemotePolicy.ONSITE: 1, RemotePolicy.HYBRID: 2, RemotePolicy.REMOTE: 3}
#: Days for the recency signal to halve.
RECENCY_HALF_LIFE_DAYS = 365.0


def stage_value(milestone: Milestone | None, reason: ArchiveReasonType | None) -> float:
    """How far the person got in a past process, in [0, 1], discounted by why it ended."""
    if milestone is None or milestone is Milestone.ARCHIVED:
        return 0.0
    value = max(milestone.rank, 0) / Milestone.HIRED.rank
    if reason is not None:
        value *= ARCHIVE_FACTOR.get(reason, 0.5)
    return value


@attrs.frozen
class MatchBatch:
    """The candidates one role is scored against, in one go.

    ``features`` holds the engine's retrieval features per candidate (``text``: BM25 normalised
    to [0, 1] for this query, ``title``: title similarity, ``required_skills`` and
    ``nice_to_have_skills``: idf-weighted coverage); ``columns`` the structured fields as arrays.
    """

    role: RoleProfile
    profiles: Sequence[CandidateProfile]
    now: datetime
    features: Mapping[str, FloatArray]
    columns: Mapping[str, np.ndarray[Any, Any]]
    codes: Mapping[str, int]


@runtime_checkable
class MatchSignal(Protocol):
    """A scorer: ``score`` returns one value in [0, 1] per candidate, or None when the signal does
    not apply to the role. ``name`` keys its weight and its line in explanations."""

    @property
    def name(self) -> str: ...

    def score(self, batch: MatchBatch) -> FloatArray | None: ...


@attrs.frozen
class _Feature:
    """A signal read from a retrieval feature the engine computed."""

    name: str

    def score(self, batch: MatchBatch) -> FloatArray | None:
        if self.name == "required_skills" and not batch.role.required_skills:
            return None
        if self.name == "nice_to_have_skills" and not batch.role.nice_to_have_skills:
            return None
        return batch.features[self.name]


@attrs.frozen
class _SeniorityFit:
    name: str = "seniority"

    def score(self, batch: MatchBatch) -> FloatArray | None:
        if batch.role.seniority is None:
            return None
        want = SENIORITY_ORDER[batch.role.seniority]
        have = batch.columns["seniority"].astype(np.float64)
        fit = np.clip(1.0 - np.abs(have - want) / 2.0, 0.0, 1.0)
        return np.where(have < 0, 0.5, fit)  # unknown: neither fit nor misfit


@attrs.frozen
class _LocationFit:
    name: str = "location"

    def score(self, batch: MatchBatch) -> FloatArray | None:
        role = batch.role
        n = len(batch.profiles)
        wants_remote = batch.columns["remote"]
        if role.remote is RemotePolicy.REMOTE:
            return np.ones(n)
        if role.location is None:
            return None
        country = batch.codes.get("country:" + role.location.country_code.casefold(), -1)
        city = batch.codes.get("city:" + role.location.city.casefold(), -1)
        same_country = (batch.columns["country"] == country) & (country > 0)
        same_city = (batch.columns["city"] == city) & (city > 0)
        unknown = batch.columns["country"] == 0
        fit = np.where(same_city, 1.0, np.where(same_country, 0.6, np.where(unknown, 0.3, 0.0)))
        if role.remote is RemotePolicy.ONSITE:
            fit = np.where(wants_remote == REMOTE_CODE[RemotePolicy.REMOTE], fit * 0.5, fit)
        else:  # hybrid: the same country is nearly as good
            fit = np.where(same_country & ~same_city, 0.8, fit)
        return fit


@attrs.frozen
class _Column:
    """A signal that is a stored column already in [0, 1]."""

    name: str

    def score(self, batch: MatchBatch) -> FloatArray | None:
        return batch.columns[self.name].astype(np.float64)


@attrs.frozen
class _Recency:
    name: str = "recency"

    def score(self, batch: MatchBatch) -> FloatArray | None:
        last = batch.columns["last_activity"]  # epoch days, NaN when unknown
        days = np.maximum(batch.now.timestamp() / 86400.0 - last, 0.0)
        value = np.exp2(-days / RECENCY_HALF_LIFE_DAYS)
        return np.where(np.isnan(last), 0.0, value)


def BUILTIN_SIGNALS() -> tuple[MatchSignal, ...]:
    """Fresh instances of the built-in signals, in the order explanations list them."""
    signals: tuple[MatchSignal, ...] = (
        _Feature("text"),
        _Feature("title"),
        _Feature("required_skills"),
        _Feature("nice_to_have_skills"),
        _SeniorityFit(),
        _LocationFit(),
        _Column("availability"),
        _Column("warmth"),
        _Column("stage"),
        _Recency(),
    )
    return signals


def title_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Cosine similarity of two title token sets."""
    if not a or not b:
        return 0.0
    return len(a & b) / math.sqrt(len(a) * len(b))
