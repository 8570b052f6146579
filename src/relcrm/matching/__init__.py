"""Explainable candidate matching: hard filters, BM25 retrieval and weighted signals.

Build a :class:`MatchEngine`, index :class:`CandidateProfile` objects (or people), and call
:meth:`MatchEngine.match` with a :class:`RoleProfile` or an opening. Every match carries an
:class:`Explanation` whose signal contributions add up to its score. See ``docs/matching.md``.
"""

from ._engine import (
    FILTER_REASONS,
    Contribution,
    Explanation,
    Match,
    MatchEngine,
    MatchResults,
    SkillMatch,
)
from ._profiles import CandidateContext, CandidateProfile, RoleProfile
from ._signals import DEFAULT_WEIGHTS, MatchBatch, MatchSignal
from ._text import analyse

__all__ = [
    "DEFAULT_WEIGHTS",
    "FILTER_REASONS",
    "CandidateContext",
    "CandidateProfile",
    "Contribution",
    "Explanation",
    "Match",
    "MatchBatch",
    "MatchEngine",
    "MatchResults",
    "MatchSignal",
    "RoleProfile",
    "SkillMatch",
    "analyse",
]
