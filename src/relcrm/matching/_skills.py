"""Skill strings to comparable keys, with the skills taxonomy when it is installed.

Without :mod:`relcrm.matching.taxonomy`, a skill is its normalised string (``" Big  Data"`` ->
``"big data"``) and nothing is extracted from text. With it, skills become canonical ids (so
``"k8s"`` meets ``"kubernetes"``), free text contributes extracted mentions, and related skills get
partial credit. The taxonomy's API is read defensively so either side can evolve.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

from ..model import normalise_skill

__all__ = [
    "canonical_skills",
    "display",
    "related",
    "skill_key",
    "skill_scanner",
    "taxonomy",
]


@cache
def taxonomy() -> Any | None:
    """The taxonomy module, or None when it is not importable (lazy, once)."""
    try:
        return importlib.import_module("relcrm.matching.taxonomy")
    except ImportError:
        return None


def _id_of(found: Any) -> str | None:
    if found is None:
        return None
    if isinstance(found, str):
        return found
    for attr in ("id", "skill_id", "uri"):
        value = getattr(found, attr, None)
        if isinstance(value, str):
            return value
    return None


@cache
def skill_key(skill: str) -> str:
    """The comparable key of a skill: a taxonomy id when known, else the normalised string."""
    text = normalise_skill(skill)
    tax = taxonomy()
    normalise = getattr(tax, "normalise", None)
    if normalise is not None and text:
        try:
            key = _id_of(normalise(text))
        except Exception:  # a taxonomy bug must not break matching
            key = None
        if key:
            return key
    return text


@cache
def display(key: str) -> str:
    """A readable label for a skill key (the taxonomy's preferred label when it has one)."""
    tax = taxonomy()
    for name in ("label", "preferred_label"):
        fn = getattr(tax, name, None)
        if fn is not None:
            try:
                value = fn(key)
            except Exception:
                continue
            if isinstance(value, str) and value:
                return value
    return key


def _extract(text: str) -> list[tuple[str, str]]:
    tax = taxonomy()
    mentions = getattr(tax, "mentions", None)
    if mentions is not None:
        try:
            return list(mentions(text))
        except Exception:
            return []
    extract = getattr(tax, "extract", None)
    if extract is None or not text.strip():
        return []
    try:
        found = extract(text)
    except Exception:
        return []
    out = []
    for f in found:
        key = _id_of(f)
        if key:
            alias = getattr(f, "alias", None)
            out.append((key, alias if isinstance(alias, str) else key))
    return out


def split_tokens() -> Callable[[Iterable[str]], list[str]] | None:
    """The taxonomy's tokeniser of whitespace-separated chunks, when it has one that
    :func:`canonical_skills` can reuse."""
    tax = taxonomy()
    if getattr(tax, "mentions_in_tokens", None) is None:
        return None
    split = getattr(tax, "split_tokens", None)
    return split if callable(split) else None


def _extract_tokens(tokens: Sequence[str]) -> list[tuple[str, str]]:
    fn = getattr(taxonomy(), "mentions_in_tokens", None)
    if fn is None:
        return []
    try:
        return list(fn(tokens))
    except Exception:  # a taxonomy bug must not break matching
        return []


def skill_scanner() -> Any | None:
    """The taxonomy's batch extractor (:class:`~relcrm.matching.taxonomy.Scanner`), when it has
    one."""
    fn = getattr(taxonomy(), "scanner", None)
    if fn is None:
        return None
    try:
        return fn()
    except Exception:  # a taxonomy bug must not break matching
        return None


def canonical_skills(
    skills: Iterable[str],
    *,
    text: str = "",
    tokens: Sequence[str] | None = None,
    mentions: Iterable[tuple[str, str]] | None = None,
) -> tuple[tuple[str, str], ...]:
    """``(key, alias)`` of the listed skills, then of the skills mentioned in ``text`` or in
    ``tokens`` (a text split by :func:`split_tokens`; taxonomy only), or of ``mentions`` found
    already; the alias is what the person wrote."""
    keys: dict[str, str] = {}
    for s in skills:
        k = skill_key(s)
        if k:
            keys.setdefault(k, s)
    if mentions is not None:
        found: Iterable[tuple[str, str]] = mentions
    else:
        found = _extract(text) if tokens is None else _extract_tokens(tokens)
    for k, alias in found:
        keys.setdefault(k, alias)
    # the same (key, alias) pairs recur across profiles: share one tuple of each
    pairs = _PAIRS
    if len(pairs) < 500_000:
        return tuple([pairs.setdefault(kv, kv) for kv in keys.items()])
    return tuple([pairs.get(kv, kv) for kv in keys.items()])


_PAIRS: dict[tuple[str, str], tuple[str, str]] = {}


@cache
def related(key: str) -> tuple[str, ...]:
    """Keys of skills related to ``key`` in the taxonomy hierarchy (empty without taxonomy),
    sorted: a taxonomy may give them as a set, whose order changes from process to process, and
    queries and explanations must not."""
    fn = getattr(taxonomy(), "related", None)
    if fn is None:
        return ()
    try:
        return tuple(sorted({k for k in (_id_of(r) for r in fn(key)) if k and k != key}))
    except Exception:
        return ()
