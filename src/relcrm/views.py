"""Read models shaped for one audience: what a candidate sees of their own relationship."""

from datetime import date, datetime

import attrs

from .model import Availability, LawfulBasis

__all__ = ["CandidacyView", "CandidateView", "ConsentView"]


@attrs.frozen
class CandidacyView:
    """One of the candidate's candidacies, in candidate-facing words (no internal stage names,
    no archive reason)."""

    candidacy_id: str
    opening_id: str
    opening_title: str
    stage: str
    active: bool
    actions: tuple[str, ...]


@attrs.frozen
class ConsentView:
    purpose: str
    granted: bool
    lawful_basis: LawfulBasis
    recorded_at: datetime
    expires_at: datetime | None


@attrs.frozen
class CandidateView:
    """Everything a candidate may see and do about themselves."""

    person_id: str
    name: str
    availability: Availability
    check_back_on: date | None
    hear_about_openings: bool
    candidacies: tuple[CandidacyView, ...]
    consents: tuple[ConsentView, ...]
    actions: tuple[str, ...]
